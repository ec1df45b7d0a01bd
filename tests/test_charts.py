"""Chart builders: Japanese titles, axes and formatted tooltips; None for empty data."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from crm_core.analytics import charts, cohorts, repeat, subscription
from crm_core.analytics import value as analytics
from crm_core.db import Store
from tests.analytics_shop import seeded_shop

AS_OF = dt.date(2026, 10, 31)


@pytest.fixture(scope="module")
def shop():
    s = Store(":memory:")
    seeded_shop(s, customers=300, seed=5)
    yield s
    s.close()


def spec(chart) -> dict:
    """The Vega-Lite dict (validated by Altair) of a chart."""
    assert chart is not None
    return chart.to_dict()


def records(d: dict) -> list[dict]:
    """The inline data rows of a chart spec."""
    (rows,) = d["datasets"].values()
    return rows


def encodings(d: dict) -> list[dict]:
    """Encodings of a chart or of every layer."""
    return [layer["encoding"] for layer in d.get("layer", [d])]


def title(d: dict) -> str:
    return d.get("title") or d["layer"][0]["title"]


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [
        (charts.yen_label, 1234.4, "¥1,234"),
        (charts.yen_label, None, "—"),
        (charts.pct_label, 0.1234, "12.3%"),
        (charts.pct_label, pd.NA, "—"),
        (charts.count_label, 1234, "1,234人"),
        (charts.days_label, 42.0, "42日"),
        (charts.days_label, 29.5, "29.5日"),
        (charts.month_label, dt.date(2026, 11, 1), "2026年11月"),
        (charts.month_label, "2026-01-15", "2026年1月"),
    ],
    ids=["yen", "yen-missing", "pct", "pct-missing", "count", "days", "days-half", "month", "month-str"],
)
def test_labels(fn, value, expected):
    assert fn(value) == expected


@pytest.mark.parametrize(
    ("unit", "expected"),
    [("month", "2026年11月"), ("quarter", "2026年Q4"), ("year", "2026年")],
    ids=["month", "quarter", "year"],
)
def test_cohort_label(unit, expected):
    assert charts.cohort_label(dt.date(2026, 11, 1), unit) == expected


def test_item_labels_add_the_id_where_names_repeat():
    labels = charts.item_labels(["ローション", "ローション", "美容液", None], ["ks-1", "KB-1", "ks-2", "ks-3"])
    assert labels == ["ローション（ks-1）", "ローション（KB-1）", "美容液", "ks-3"]


def _builders(shop):
    a = AS_OF
    return {
        "segments": lambda: charts.rfm_segment_chart(analytics.rfm_segment_summary(shop)),
        "rf": lambda: charts.rf_heatmap_chart(analytics.rf_heatmap(shop)),
        "ranks": lambda: charts.rank_movement_chart(
            analytics.rank_movement(shop, dt.date(2026, 4, 30), a), dt.date(2026, 4, 30), a
        ),
        "f2": lambda: charts.repeat_conversion_chart(repeat.repeat_conversion(shop, a)),
        "days2": lambda: charts.days_to_second_chart(repeat.days_to_second_purchase(shop, a)),
        "newrep": lambda: charts.new_vs_repeat_chart(repeat.revenue_new_vs_repeat(shop, a)),
        "retention": lambda: charts.retention_heatmap_chart(cohorts.cohort_retention(shop, a)),
        "ltv": lambda: charts.cohort_curve_chart(cohorts.ltv_curves(shop, a), unit="quarter"),
        "events": lambda: charts.cohort_curve_chart(cohorts.event_cohort_retention(shop, a), "retention", "acquisition_event"),
        "clv": lambda: charts.clv_distribution_chart(analytics.clv_distribution(shop)),
        "churn": lambda: charts.churn_risk_chart(analytics.churn_risk_summary(shop)),
        "sub-n": lambda: charts.subscription_delivery_chart(subscription.continuation_by_delivery(shop, a)),
        "sub-m": lambda: charts.subscription_monthly_chart(subscription.continuation_by_month(shop, a)),
    }


BUILDERS = ["segments", "rf", "ranks", "f2", "days2", "newrep", "retention", "ltv", "events", "clv", "churn", "sub-n", "sub-m"]


@pytest.mark.parametrize("name", BUILDERS, ids=BUILDERS)
def test_every_chart_has_japanese_title_axes_and_tooltips(shop, name):
    d = spec(_builders(shop)[name]())
    assert any("\u3040" <= ch <= "\u9fff" for ch in title(d))
    for enc in encodings(d):
        for channel in ("x", "y"):
            if channel in enc and enc[channel].get("title") is not None:
                assert any("\u3040" <= ch <= "\u9fff" or ch in "RF" for ch in enc[channel]["title"])
    tooltips = [t for enc in encodings(d) for t in enc.get("tooltip", [])]
    assert tooltips, "a chart needs tooltips"
    text = json.dumps(records(d), ensure_ascii=False)
    assert "¥" in text or "%" in text or "人" in text or "件" in text


def test_segment_chart_values(shop):
    seg = analytics.rfm_segment_summary(shop)
    d = spec(charts.rfm_segment_chart(seg))
    rows = records(d)
    assert len(rows) == 2 * len(seg)
    first = rows[0]
    assert first["セグメント"] == "優良顧客"
    assert first["構成比表示"] == charts.pct_label(seg["customer_share"].iloc[0])
    assert first["売上"].startswith("¥")
    assert d["encoding"]["y"]["axis"]["format"] == ".0%"
    assert d["encoding"]["x"]["sort"] == list(analytics.RFM_SEGMENTS)


def test_repeat_chart_leaves_out_immature_cohorts():
    conv = pd.DataFrame(
        {
            "cohort_month": [dt.date(2026, 1, 1), dt.date(2026, 2, 1)],
            "window_days": [30, 30],
            "customers": [10, 5],
            "mature": [True, False],
            "f2_customers": pd.array([3, pd.NA], dtype="Int64"),
            "f2_rate": pd.array([0.3, pd.NA], dtype="Float64"),
            "f3_customers": pd.array([1, pd.NA], dtype="Int64"),
            "f3_rate": pd.array([1 / 3, pd.NA], dtype="Float64"),
        }
    )
    rows = records(spec(charts.repeat_conversion_chart(conv)))
    assert [(r["初回購入月"], r["期間"], r["転換率表示"]) for r in rows] == [("2026年1月", "30日以内", "30%")]
    assert charts.repeat_conversion_chart(conv[~conv["mature"]]) is None


def test_new_vs_repeat_axis_is_in_yen():
    df = pd.DataFrame(
        {
            "month": [dt.date(2026, 11, 1)] * 2,
            "customer_type": ["新規", "リピート"],
            "orders": [2, 3],
            "customers": [2, 2],
            "revenue": [12345.0, 6000.0],
            "revenue_share": [12345 / 18345, 6000 / 18345],
        }
    )
    d = spec(charts.new_vs_repeat_chart(df))
    assert "'¥'" in d["encoding"]["y"]["axis"]["labelExpr"]
    assert [r["売上表示"] for r in records(d)] == ["¥12,345", "¥6,000"]
    assert records(d)[0]["月"] == "2026年11月"


def test_cycle_and_pair_charts():
    cyc = pd.DataFrame(
        {
            "product_id": ["P1"],
            "product_name": ["化粧水"],
            "intervals": [3],
            "buyers": [6],
            "repeat_customers": [2],
            "repeat_share": [1 / 3],
            "median_days": [50.0],
            "q1_days": [45.0],
            "q3_days": [52.0],
            "iqr_days": [7.0],
            "due_customers": [2],
            "due_share": [1 / 3],
        }
    )
    d = spec(charts.cycle_chart(cyc))
    row = records(d)[0]
    assert (row["商品"], row["中央値表示"], row["範囲表示"]) == ("化粧水", "50日", "45日〜52日")
    pairs = pd.DataFrame(
        {
            "product_id": ["PX"],
            "product_name": ["商品X"],
            "other_product_id": ["PY"],
            "other_product_name": [None],
            "orders_together": [3],
            "orders_with_item": [4],
            "orders_with_other": [4],
            "support": [0.5],
            "confidence": [0.75],
            "lift": [1.125],
        }
    )
    row = records(spec(charts.bought_together_chart(pairs)))[0]
    assert (row["組み合わせ"], row["確信度"], row["リフト表示"]) == ("商品X → PY", "75%", "1.12")


EMPTY_CASES = {
    "segments": (charts.rfm_segment_chart, ()),
    "rf": (charts.rf_heatmap_chart, ()),
    "ranks": (charts.rank_movement_chart, (AS_OF, AS_OF)),
    "f2": (charts.repeat_conversion_chart, ()),
    "days2": (charts.days_to_second_chart, ()),
    "newrep": (charts.new_vs_repeat_chart, ()),
    "retention": (charts.retention_heatmap_chart, ()),
    "curve": (charts.cohort_curve_chart, ()),
    "clv": (charts.clv_distribution_chart, ()),
    "churn": (charts.churn_risk_chart, ()),
    "sub-n": (charts.subscription_delivery_chart, ()),
    "sub-m": (charts.subscription_monthly_chart, ()),
    "cycles": (charts.cycle_chart, ()),
    "together": (charts.bought_together_chart, ()),
    "next": (charts.bought_next_chart, ()),
}


@pytest.mark.parametrize("name", list(EMPTY_CASES), ids=list(EMPTY_CASES))
def test_empty_data_gives_no_chart(name):
    fn, extra = EMPTY_CASES[name]
    assert fn(pd.DataFrame(), *extra) is None
    assert fn(None, *extra) is None


def test_empty_results_of_an_empty_store_give_no_chart():
    s = Store(":memory:")
    assert charts.retention_heatmap_chart(cohorts.cohort_retention(s, AS_OF)) is None
    assert charts.repeat_conversion_chart(repeat.repeat_conversion(s, AS_OF)) is None
    assert charts.subscription_delivery_chart(subscription.continuation_by_delivery(s, AS_OF)) is None
    assert charts.rfm_segment_chart(analytics.rfm_segment_summary(s)) is None
