"""The sample shop's past campaigns (seeded) and the result charts."""

from __future__ import annotations

import pandas as pd
import pytest

from crm_core.db import SAMPLE_ORDER_HASH, Store
from crm_core.results import attribution as R
from crm_core.results import charts as RC
from crm_core.sample.campaigns import SAMPLE_CAMPAIGNS, load_sample_campaigns
from crm_core.sample.load import load_sample


def _shop() -> Store:
    store = Store(":memory:")
    load_sample(store)
    return store


@pytest.fixture(scope="module")
def shop():
    store = _shop()  # load_sample() seeds the past campaigns
    ids = [r[0] for r in store.fetchall("SELECT campaign_id FROM campaigns ORDER BY 1")]
    return store, ids


def test_sample_campaigns_are_seeded_and_meaningful(shop):
    store, ids = shop
    assert ids == [1, 2, 3, 4]
    assert load_sample_campaigns(store) == []  # once only
    names = R.campaign_summaries(store).set_index("campaign_id")["name"].to_dict()
    assert [names[i] for i in ids] == [s.name for s in SAMPLE_CAMPAIGNS]
    reports = {i: R.campaign_report(store, i) for i in ids}
    assert reports[1]["lift"]["verdict"] == R.VERDICT_YES  # the real effect is found
    assert reports[4]["lift"]["verdict"] != R.VERDICT_YES  # no effect
    assert reports[2]["ab"] is not None and reports[2]["ab"]["winner"] == "B"  # A/B winner without an overall effect
    assert reports[2]["lift"]["verdict"] != R.VERDICT_YES
    assert reports[3]["lift"]["verdict"] == R.VERDICT_SMALL
    assert not reports[3]["with_results"] and reports[3]["campaign"]["marked_only"]  # R-Mail: no per-recipient file
    assert reports[1]["with_results"] and reports[1]["cost"]["coupon_cost"] > 0
    # Extra orders are schema-consistent: every one has a line and a known source shape.
    bad = store.scalar(
        "SELECT count(*) FROM orders o WHERE content_hash = " + SAMPLE_ORDER_HASH + " AND NOT EXISTS "
        "(SELECT 1 FROM order_lines l WHERE l.source = o.source AND l.order_id = o.order_id)"
    )
    assert bad == 0
    assert store.scalar("SELECT count(*) FROM (SELECT source, order_id FROM orders GROUP BY ALL HAVING count(*) > 1)") == 0
    # The customer model was rebuilt with the extra orders.
    assert store.scalar("SELECT sum(orders) FROM customer_model") == store.scalar(
        "SELECT count(*) FROM orders WHERE NOT coalesce(cancelled, FALSE) AND customer_id IN (SELECT customer_id FROM customer_model)")


def test_sample_is_deterministic(shop):
    store, _ = shop
    other = _shop()
    load_sample_campaigns(other)
    a = R.campaign_summaries(store)[["campaign_id", "recipients", "buyers", "revenue"]]
    b = R.campaign_summaries(other)[["campaign_id", "recipients", "buyers", "revenue"]]
    pd.testing.assert_frame_equal(a, b)


def test_charts_build_and_handle_empty(shop):
    store, ids = shop
    rep = R.campaign_report(store, 2)
    charts = [
        RC.daily_sales_chart(R.daily_sales(store, 2)),
        RC.cumulative_chart(R.cumulative_revenue(store, 2)),
        RC.funnel_chart(R.funnel(rep)),
        RC.variant_chart(rep["ab"]["variants"]),
        RC.lift_chart(rep["lift"]),
        RC.trends_chart(R.campaign_summaries(store)),
    ]
    for chart in charts:
        spec = chart.to_dict()
        assert "$schema" in spec
    daily = charts[0].to_dict()
    assert any(layer.get("mark", {}).get("color") == "#d62728" for layer in daily["layer"])  # the send is marked
    assert RC.daily_sales_chart(pd.DataFrame()) is None
    assert RC.cumulative_chart(pd.DataFrame()) is None
    assert RC.funnel_chart(R.funnel(R.campaign_report(store, 3))) is None  # R-Mail: no results file
    assert RC.variant_chart([]) is None and RC.lift_chart(None) is None
    assert all(RC.CAPTIONS[k] for k in ("daily", "cumulative", "funnel", "variants", "lift", "list"))
