"""Tests of crm_core.analytics.value (RFM views, rank movement, CLV views); the fixture builders
they share with the other analytics tests live in ``tests/analytics_shop.py``.

Fixtures are tiny and written out row by row so every expected number can be
checked by hand; ``seeded_shop`` generates a bigger shop for smoke and speed
tests (seeded, nothing generated is committed).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from crm_core.analytics import value as analytics
from crm_core.db import Store
from crm_core.errors import InputError
from tests.analytics_shop import (
    add_model,
    add_order,
    assert_table,
    frame,
    seeded_shop,
)

# --------------------------------------------------------------------------
# Shared definitions
# --------------------------------------------------------------------------


def test_bound_keeps_only_used_parameters_and_names_missing_ones():
    assert analytics.bound("SELECT $a + $a", {"a": 1, "b": 2}) == {"a": 1}
    with pytest.raises(KeyError, match="c"):
        analytics.bound("SELECT $c", {"a": 1})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.date(2026, 11, 22), dt.date(2026, 11, 22)),
        (dt.datetime(2026, 11, 22, 23, 59), dt.date(2026, 11, 22)),
        ("2026-11-22", dt.date(2026, 11, 22)),
    ],
    ids=["date", "datetime", "iso-string"],
)
def test_as_of_date(value, expected):
    assert analytics.as_of_date(value) == expected


def test_as_of_date_rejects_garbage_in_japanese():
    with pytest.raises(InputError, match="基準日"):
        analytics.as_of_date("11月22日")


def test_latest_order_date_ignores_cancelled(store):
    add_order(store, "o1", "A", "2026-03-01", 1000)
    add_order(store, "o2", "A", "2026-04-01", 1000, cancelled=True)
    assert analytics.latest_order_date(store) == dt.date(2026, 3, 1)


# --------------------------------------------------------------------------
# RFM views
# --------------------------------------------------------------------------

SEG_COLUMNS = [
    "segment",
    "customers",
    "customer_share",
    "revenue",
    "revenue_share",
    "revenue_per_customer",
    "revenue_12m",
    "revenue_12m_share",
]


def test_rfm_segment_summary_sizes_and_revenue_share(store):
    add_model(
        store,
        [
            {"customer_id": "A", "rfm_segment": "優良顧客", "revenue": 100, "revenue_12m": 50},
            {"customer_id": "B", "rfm_segment": "優良顧客", "revenue": 200, "revenue_12m": 50},
            {"customer_id": "C", "rfm_segment": "優良顧客", "revenue": 300, "revenue_12m": 0},
            {"customer_id": "D", "rfm_segment": "離反", "revenue": 400, "revenue_12m": 0},
        ],
    )
    nan = float("nan")
    zero = ("", 0, 0.0, 0.0, 0.0, nan, 0.0, 0.0)
    expected = frame(
        [("優良顧客", 3, 0.75, 600.0, 0.6, 200.0, 100.0, 1.0)]
        + [(name, *zero[1:]) for name in ("安定顧客", "新規顧客", "育成中", "要注意", "休眠予備軍", "休眠")]
        + [("離反", 1, 0.25, 400.0, 0.4, 400.0, 0.0, 0.0)],
        SEG_COLUMNS,
    )
    assert_table(analytics.rfm_segment_summary(store), expected)


def test_rf_heatmap_fills_the_grid(store):
    add_model(
        store,
        [
            {"customer_id": "A", "r_score": 5, "f_score": 5, "revenue": 900},
            {"customer_id": "B", "r_score": 5, "f_score": 5, "revenue": 100},
            {"customer_id": "C", "r_score": 1, "f_score": 2, "revenue": 50},
            {"customer_id": "D", "r_score": None, "f_score": None, "revenue": 10},
        ],
    )
    df = analytics.rf_heatmap(store)
    assert len(df) == 25
    cells = {(r.r_score, r.f_score): (r.customers, r.revenue) for r in df.itertuples()}
    assert cells[(5, 5)] == (2, 1000.0)
    assert cells[(1, 2)] == (1, 50.0)
    assert sum(c for c, _ in cells.values()) == 3
    assert df.loc[(df.r_score == 5) & (df.f_score == 5), "customer_share"].item() == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "fn",
    [
        analytics.rfm_segment_summary,
        analytics.rf_heatmap,
        analytics.clv_distribution,
        analytics.churn_risk_summary,
    ],
    ids=["segments", "rf-heatmap", "clv", "churn"],
)
def test_model_views_are_empty_without_customer_model(store, fn):
    add_order(store, "o1", "A", "2026-03-01", 1000)
    df = fn(store)
    assert df.empty and len(df.columns) > 0


# --------------------------------------------------------------------------
# Rank movement
# --------------------------------------------------------------------------


@pytest.fixture
def rank_store(store):
    # Date A = 2026-03-31 (365-day window 2025-04-01 .. 2026-03-31), date B = 2026-09-30.
    add_order(store, "c1", "C1", "2025-06-01", 60_000)  # A: プラチナ, B: nothing in window -> レギュラー
    add_order(store, "c2a", "C2", "2026-01-10", 10_000)  # A: シルバー
    add_order(store, "c2b", "C2", "2026-08-01", 15_000)  # B: 25,000 -> ゴールド
    add_order(store, "c3", "C3", "2026-05-01", 8_000)  # first purchase after A: 未購入 -> シルバー
    add_order(store, "c4", "C4", "2026-02-01", 3_000)  # レギュラー -> レギュラー
    add_order(store, "c5", "C5", "2026-02-01", 100_000, cancelled=True)  # cancelled: not a customer
    add_order(store, "c6", "C6", "2026-10-05", 50_000)  # after date B: not counted
    add_order(store, "c7a", "C7", "2025-03-31", 50_000)  # one day before A's window
    add_order(store, "c7b", "C7", "2025-04-01", 20_000)  # first day of A's window: ゴールド
    return store


def test_rank_movement_matrix(rank_store):
    df = analytics.rank_movement(rank_store, dt.date(2026, 3, 31), dt.date(2026, 9, 30))
    assert list(dict.fromkeys(df["from_rank"])) == ["未購入", "プラチナ", "ゴールド", "シルバー", "レギュラー"]
    assert list(dict.fromkeys(df["to_rank"])) == ["プラチナ", "ゴールド", "シルバー", "レギュラー"]
    nonzero = {(r.from_rank, r.to_rank): r.customers for r in df.itertuples() if r.customers}
    assert nonzero == {
        ("プラチナ", "レギュラー"): 1,
        ("ゴールド", "レギュラー"): 1,
        ("シルバー", "ゴールド"): 1,
        ("未購入", "シルバー"): 1,
        ("レギュラー", "レギュラー"): 1,
    }
    moves = {(r.from_rank, r.to_rank): r.movement for r in df.itertuples()}
    assert moves[("シルバー", "ゴールド")] == "昇格"
    assert moves[("プラチナ", "レギュラー")] == "降格"
    assert moves[("レギュラー", "レギュラー")] == "維持"
    assert moves[("未購入", "プラチナ")] == "新規"
    summary = analytics.rank_movement_summary(df)
    assert_table(
        summary,
        frame([("昇格", 1, 0.2), ("維持", 1, 0.2), ("降格", 2, 0.4), ("新規", 1, 0.2)], ["movement", "customers", "share"]),
    )


def test_rank_movement_custom_thresholds(rank_store):
    df = analytics.rank_movement(rank_store, "2026-03-31", "2026-09-30", thresholds=(("VIP", 20_000), ("一般", 0)))
    nonzero = {(r.from_rank, r.to_rank): r.customers for r in df.itertuples() if r.customers}
    assert nonzero == {("VIP", "一般"): 2, ("一般", "VIP"): 1, ("未購入", "一般"): 1, ("一般", "一般"): 1}
    assert df.loc[(df.from_rank == "一般") & (df.to_rank == "VIP"), "share_of_from"].item() == pytest.approx(0.5)


def test_rank_movement_by_number_of_orders(rank_store):
    # 365-day windows: A has one purchase each for C1, C2, C4, C7 (一般); B has C2's two (常連) and
    # one each for C3, C4; C3's first purchase comes after A (未購入).
    df = analytics.rank_movement(rank_store, "2026-03-31", "2026-09-30", thresholds=(("常連", 2), ("一般", 0)),
                                 basis="orders_12m")
    nonzero = {(r.from_rank, r.to_rank): r.customers for r in df.itertuples() if r.customers}
    assert nonzero == {("一般", "一般"): 3, ("一般", "常連"): 1, ("未購入", "一般"): 1}
    with pytest.raises(InputError):
        analytics.rank_movement(rank_store, "2026-03-31", "2026-09-30", basis="lifetime")


def test_shop_rank_basis_follows_the_rank_setting(store):
    assert analytics.shop_rank_basis(store) == "revenue_12m"
    store.set_setting("rank_thresholds", [{"name": "常連", "min_orders_12m": 5}, {"name": "一般", "min_orders_12m": 0}])
    assert analytics.shop_rank_basis(store) == "orders_12m"
    assert analytics.shop_rank_thresholds(store) == (("常連", 5.0), ("一般", 0.0))


def test_shop_rank_thresholds_come_from_the_rank_setting(store):
    assert analytics.shop_rank_thresholds(store) == analytics.RANK_THRESHOLDS
    store.set_setting("rank_thresholds", [{"name": "一般", "min_revenue_12m": 0}, {"name": "VIP", "min_revenue_12m": 30000}])
    assert analytics.shop_rank_thresholds(store) == (("VIP", 30000.0), ("一般", 0.0))
    store.set_setting("rank_thresholds", "garbage")
    assert analytics.shop_rank_thresholds(store) == analytics.RANK_THRESHOLDS


@pytest.mark.parametrize(
    ("thresholds", "date_from", "date_to"),
    [
        ((("A", 100), ("B", 200)), "2026-01-01", "2026-02-01"),
        ((("A", 100), ("A", 0)), "2026-01-01", "2026-02-01"),
        ((), "2026-01-01", "2026-02-01"),
        (analytics.RANK_THRESHOLDS, "2026-03-01", "2026-02-01"),
    ],
    ids=["ascending", "duplicate-name", "empty", "dates-reversed"],
)
def test_rank_movement_rejects_bad_input_in_japanese(store, thresholds, date_from, date_to):
    with pytest.raises(InputError) as err:
        analytics.rank_movement(store, date_from, date_to, thresholds=thresholds)
    assert any("\u3040" <= ch <= "\u30ff" for ch in err.value.message)


# --------------------------------------------------------------------------
# CLV and churn views
# --------------------------------------------------------------------------


def test_clv_distribution_bins(store):
    add_model(
        store,
        [
            {"customer_id": "A", "predicted_clv_365d": 500},
            {"customer_id": "B", "predicted_clv_365d": 999.99},
            {"customer_id": "C", "predicted_clv_365d": 1000},
            {"customer_id": "D", "predicted_clv_365d": 4000},
            {"customer_id": "E", "predicted_clv_365d": 7000},
            {"customer_id": "F", "predicted_clv_365d": None},
        ],
    )
    nan = float("nan")
    expected = frame(
        [(0.0, 1000.0, 2, 0.4, 1499.99), (1000.0, 5000.0, 2, 0.4, 5000.0), (5000.0, nan, 1, 0.2, 7000.0)],
        ["bin_start", "bin_end", "customers", "share", "predicted_clv"],
    )
    assert_table(analytics.clv_distribution(store, edges=(0, 1000, 5000)), expected)


def test_churn_risk_summary(store):
    add_model(
        store,
        [
            {
                "customer_id": "A",
                "churn_risk": "低",
                "churn_probability_90d": 0.1,
                "p_alive": 0.9,
                "revenue_12m": 1000,
                "predicted_clv_365d": 5000,
            },
            {
                "customer_id": "B",
                "churn_risk": "低",
                "churn_probability_90d": 0.3,
                "p_alive": 0.7,
                "revenue_12m": 3000,
                "predicted_clv_365d": 1000,
            },
            {
                "customer_id": "C",
                "churn_risk": "高",
                "churn_probability_90d": 0.9,
                "p_alive": 0.2,
                "revenue_12m": 0,
                "predicted_clv_365d": 100,
            },
        ],
    )
    nan = float("nan")
    expected = frame(
        [
            ("低", 2, 2 / 3, 0.2, 0.8, 4000.0, 6000.0),
            ("中", 0, 0.0, nan, nan, 0.0, 0.0),
            ("高", 1, 1 / 3, 0.9, 0.2, 0.0, 100.0),
        ],
        ["churn_risk", "customers", "share", "avg_churn_probability", "avg_p_alive", "revenue_12m", "predicted_clv"],
    )
    assert_table(analytics.churn_risk_summary(store), expected)


# --------------------------------------------------------------------------
# Cancelled orders never count, whatever the analysis
# --------------------------------------------------------------------------

AS_OF = dt.date(2026, 10, 31)


def _all_analyses(store: Store) -> dict[str, pd.DataFrame]:
    from crm_core.analytics import basket, cohorts, cycles, repeat, subscription

    return {
        "rank_movement": analytics.rank_movement(store, dt.date(2026, 4, 30), AS_OF),
        "repeat_conversion": repeat.repeat_conversion(store, AS_OF),
        "days_to_second": repeat.days_to_second_purchase(store, AS_OF),
        "new_vs_repeat": repeat.revenue_new_vs_repeat(store, AS_OF),
        "cohort_retention": cohorts.cohort_retention(store, AS_OF),
        "event_cohorts": cohorts.event_cohort_retention(store, AS_OF),
        "sub_by_delivery": subscription.continuation_by_delivery(store, AS_OF),
        "sub_by_month": subscription.continuation_by_month(store, AS_OF),
        "cycles": cycles.repurchase_cycles(store, AS_OF, min_intervals=1),
        "due": cycles.due_customers(store, AS_OF, min_intervals=1),
        "together": basket.bought_together(store, AS_OF, min_support=0.0, min_orders=1),
        "next": basket.bought_next(store, AS_OF, min_customers=1),
    }


def test_cancelled_orders_change_no_analysis():
    s = Store(":memory:")
    seeded_shop(s, customers=150, seed=3)
    before = _all_analyses(s)
    # A cancelled order for an existing customer (new product, repeat purchase, subscription
    # delivery) and a cancelled-only new customer.
    add_order(
        s,
        "X1",
        "C00001",
        "2026-10-20",
        99_999,
        [("P99", "幻の商品", "幻", 99_999), ("P01", "化粧水", None, 1)],
        cancelled=True,
        subscription=("S00001", 99),
    )
    add_order(s, "X2", "CNEW", "2026-06-01", 55_555, [("P01", "化粧水", None, 1), ("P02", "乳液", None, 1)], cancelled=True)
    after = _all_analyses(s)
    for name, df in before.items():
        pd.testing.assert_frame_equal(df, after[name], obj=name)
    s.close()
