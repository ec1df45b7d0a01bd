"""Campaign gross profit and ROI on gross profit: only orders beyond the holdout's count (issue 17)."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_core.db import Store
from crm_core.ingest import products as PR
from crm_core.results import attribution as R
from crm_core.results import campaigns as C

SENT = dt.datetime(2026, 3, 1, 12)


def _order(store: Store, oid: str, cid: str, coupon: str | None, discount: float) -> None:
    store.execute(
        "INSERT INTO orders (order_id, source, customer_id, ordered_at, cancelled, total_amount, coupon_code, discount_amount) "
        "VALUES (?, 'rakuten', ?, ?, FALSE, 1000, ?, ?)",
        [oid, cid, SENT + dt.timedelta(days=1), coupon, discount],
    )
    store.execute("INSERT INTO order_lines VALUES ('rakuten', ?, 1, 'P', NULL, '商品P', NULL, 1000, 1, 1000)", [oid])


@pytest.fixture()
def shop():
    """80 recipients, half held out.  Every treated recipient buys once with the coupon (¥100 off);
    the first half of the holdout (by id) buys once without it.  Product P: ¥1,000, cost ¥600."""
    store = Store(":memory:")
    ids = [f"C{i:03d}" for i in range(80)]
    C.freeze_campaign(store, "クーポン", "email", SENT, customer_ids=ids, holdout_share=0.5, campaign_id=1, coupon_code="SAVE")
    rec = C.recipients(store, 1)
    treat = sorted(rec.loc[~rec["holdout"], "customer_id"])
    hold = sorted(rec.loc[rec["holdout"], "customer_id"])
    for cid in treat:
        _order(store, f"T{cid}", cid, "save", 100)
    buyers0 = hold[: len(hold) // 2]
    for cid in buyers0:
        _order(store, f"H{cid}", cid, None, 0)
    PR.set_product_costs(store, [{"product_id": "P", "unit_cost": 600}])
    yield store, len(treat), len(hold), len(buyers0)
    store.close()


def test_roi_on_gross_profit_counts_only_incremental_orders(shop):
    store, n1, n0, k0 = shop
    assert n1 >= 30 and n0 >= 30
    rep = R.campaign_report(store, 1)
    cost = rep["cost"]
    assert cost["coupon_cost"] == 100 * n1 and cost["total_cost"] == 100 * n1  # own e-mail: no message cost
    assert cost["gross_profit"] == 400 * n1 and cost["cost_coverage"] == 1.0
    incremental = (400 - 400 * k0 / n0) * n1
    assert cost["incremental_gross_profit"] == pytest.approx(incremental)
    assert cost["roi_gross_profit"] == pytest.approx((incremental - 100 * n1) / (100 * n1))
    # Before issue 17 every redeemed order counted: 400 × n1 of profit against the same cost.
    assert cost["incremental_gross_profit"] < 400 * n1
    assert cost["incremental_gross_profit_low"] < incremental < cost["incremental_gross_profit_high"]
    assert rep["groups"][1]["gross_profit"] == 400 * k0


def test_unknown_costs_give_no_profit_roi_and_say_why(shop):
    store, *_ = shop
    PR.set_product_costs(store, [{"product_id": "P"}])  # cost cleared: unknown, not 0
    rep = R.campaign_report(store, 1)
    assert rep["cost"]["roi_gross_profit"] is None and rep["cost"]["cost_coverage"] == 0
    assert any("原価が登録されていない" in n for n in rep["notes"])


def test_coupon_incremental_share_from_holdouts(shop):
    store, n1, n0, k0 = shop
    got = R.coupon_incremental_share(store)
    assert got["campaigns"] == 1 and got["coupon_orders"] == n1
    assert got["share"] == pytest.approx(1 - k0 / n0)
