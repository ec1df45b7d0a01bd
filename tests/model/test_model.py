"""Customer model (crm_core.model.build) on tiny hand-checkable stores.

The main fixture has eight customers A-H, as_of 2026-06-30 (12-month window
2025-07-01 .. 2026-06-30).  Every expected number below was worked out by hand
from the orders in :func:`small_store`; the derivations are in the comments.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from crm_core import model
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.model import build, predict
from crm_core.model import export as model_export

AS_OF = date(2026, 6, 30)


def add_order(
    store: Store,
    order_id: str,
    customer_id: str | None,
    ordered_at: datetime,
    total: float,
    lines: list[tuple[str, str, str, float]] | None = None,
    *,
    source: str = "rakuten",
    cancelled: bool = False,
    subscription: tuple[str, int] | None = None,
    coupon: str | None = None,
    discount: float | None = None,
) -> None:
    """Insert one order and its lines (product_id, name, category, amount)."""
    store.execute(
        """
        INSERT INTO orders (order_id, source, customer_id, ordered_at, status, cancelled, total_amount,
                            coupon_code, discount_amount, subscription_id, subscription_seq)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        [order_id, source, customer_id, ordered_at, "900" if cancelled else "500", cancelled, total,
         coupon, discount, subscription[0] if subscription else None, subscription[1] if subscription else None],
    )
    for no, (pid, name, cat, amount) in enumerate(lines or [("P-X", "商品X", "その他", total)], start=1):
        store.execute(
            """
            INSERT INTO order_lines (source, order_id, line_no, product_id, product_name, category,
                                     unit_price, quantity, line_amount)
            VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)
            """,
            [source, order_id, no, pid, name, cat, amount, amount],
        )


def add_customer(store: Store, customer_id: str, name: str, birthday: date | None = None,
                 line_user_id: str | None = None, email_opt_in: bool = False) -> None:
    store.execute(
        """
        INSERT INTO customers (customer_id, source, name, email, gender, birthday, prefecture,
                               email_opt_in, line_user_id)
        VALUES (?, 'rakuten', ?, ?, '女', ?, '東京都', ?, ?)
        """,
        [customer_id, name, customer_id.lower() + "@example.jp", birthday, email_opt_in, line_user_id],
    )


def small_store() -> Store:
    s = Store(":memory:")
    # A: three orders; the last one has two lines (counted once); a cancelled order is ignored.
    add_order(s, "A1", "A", datetime(2025, 12, 1, 9, 0), 5000)
    add_order(s, "A2", "A", datetime(2026, 3, 10, 12, 0), 8000)
    add_order(s, "A3", "A", datetime(2026, 6, 25, 10, 0), 12000,
              [("P-LOTION", "化粧水", "スキンケア", 3960), ("P-SERUM", "美容液", "スキンケア", 8040)])
    add_order(s, "A4", "A", datetime(2026, 6, 28, 10, 0), 99999, cancelled=True)
    # B: one order inside the June 2026 スーパーSALE window.
    add_order(s, "B1", "B", datetime(2026, 6, 5, 21, 0), 3000)
    # C: two orders on one day inside the confirmed 2026-02 マラソン; last order's lines tie.
    add_order(s, "C1", "C", datetime(2026, 2, 5, 10, 0), 4000)
    add_order(s, "C2", "C", datetime(2026, 2, 5, 15, 0), 6000,
              [("P-A", "化粧水A", "スキンケア", 3000), ("P-B", "乳液B", "スキンケア", 3000)])
    # D: monthly subscription still running (cycle 30.5 days, last delivery 29 days ago).
    for seq, day in enumerate([date(2026, 4, 1), date(2026, 5, 1), date(2026, 6, 1)], start=1):
        add_order(s, f"D{seq}", "D", datetime.combine(day, datetime.min.time()) + timedelta(hours=10), 3000,
                  subscription=("S-1", seq))
    # E: subscription stopped (cycle 29.5 days, last delivery 112 days ago); deliveries numbered 4-6.
    for seq, day in enumerate([date(2026, 1, 10), date(2026, 2, 10), date(2026, 3, 10)], start=4):
        add_order(s, f"E{seq}", "E", datetime.combine(day, datetime.min.time()) + timedelta(hours=10), 2000,
                  subscription=("S-2", seq))
    # F: an old Shopify customer with a coupon.
    add_order(s, "F1", "F", datetime(2024, 5, 1, 10, 0), 30000, source="shopify", coupon="SUMMER")
    add_order(s, "F2", "F", datetime(2024, 8, 1, 10, 0), 30000, source="shopify")
    # G: one order at the very start of the 12-month window; an order after as_of is ignored.
    add_order(s, "G1", "G", datetime(2025, 7, 1, 0, 0), 50000)
    add_order(s, "G2", "G", datetime(2026, 7, 5, 12, 0), 1000)
    # H: only sale orders (Sept 2025 confirmed スーパーSALE, Nov 2025 pattern マラソン); not in customers.
    add_order(s, "H1", "H", datetime(2025, 9, 5, 22, 0), 7000, discount=500)
    add_order(s, "H2", "H", datetime(2025, 11, 20, 21, 0), 1000)
    # X: only a cancelled order -> not a customer of the model.  An order without customer is ignored.
    add_order(s, "X1", "X", datetime(2026, 6, 1, 10, 0), 5000, cancelled=True)
    add_order(s, "N1", None, datetime(2026, 6, 1, 10, 0), 5000)
    add_order(s, "Z1", "G", datetime(2026, 7, 10, 10, 0), 1000, cancelled=True)
    for cid, name, bday, line in [
        ("A", "青木 彩", date(1990, 7, 1), "U-A"), ("B", "馬場 文", date(1990, 6, 30), ""),
        ("C", "千葉 千尋", None, None), ("D", "土屋 大", date(2000, 2, 29), "U-D"),
        ("E", "江口 恵", date(1985, 12, 31), None), ("F", "藤田 風", None, None),
        ("G", "後藤 剛", None, None),
    ]:
        add_customer(s, cid, name, bday, line)
    return s


@pytest.fixture(scope="module")
def built():
    store = small_store()
    report = model.rebuild(store, AS_OF)
    table = model.customer_table(store).set_index("customer_id")
    return store, report, table


# recency = 2026-06-30 minus the last order day; tenure from the first order day.
# R (tie-aware quintile, N = 8): 1 + 5k // 8 with k = customers with larger recency
#   F 698 (k0) 1, G 364 (k1) 1, H 222 (k2) 2, C 145 (k3) 2, E 112 (k4) 3, D 29 (k5) 4, B 25 (k6) 4, A 5 (k7) 5
# F (default counts [2, 3, 5, 8]): 1 order -> 1, 2 -> 2, 3 -> 3
# M (quintile on revenue): B 3000 (k0) 1, E 6000 (k1) 1, H 8000 (k2) 2, D 9000 (k3) 2,
#   C 10000 (k4) 3, A 25000 (k5) 4, G 50000 (k6) 4, F 60000 (k7) 5
EXPECTED = [
    # id, orders, revenue, aov, recency, tenure, avg_days, orders_12m, revenue_12m, r, f, m, segment
    ("A", 3, 25000, 8333.33, 5, 211, 103.0, 3, 25000, 5, 3, 4, "安定顧客"),
    ("B", 1, 3000, 3000.00, 25, 25, None, 1, 3000, 4, 1, 1, "新規顧客"),
    ("C", 2, 10000, 5000.00, 145, 145, None, 2, 10000, 2, 2, 3, "休眠予備軍"),
    ("D", 3, 9000, 3000.00, 29, 90, 30.5, 3, 9000, 4, 3, 2, "安定顧客"),
    ("E", 3, 6000, 2000.00, 112, 171, 29.5, 3, 6000, 3, 3, 1, "安定顧客"),
    ("F", 2, 60000, 30000.00, 698, 790, 92.0, 0, 0, 1, 2, 5, "休眠"),
    ("G", 1, 50000, 50000.00, 364, 364, None, 1, 50000, 1, 1, 4, "離反"),
    ("H", 2, 8000, 4000.00, 222, 298, 76.0, 2, 8000, 2, 2, 2, "休眠予備軍"),
]


def test_table_has_the_contract_columns(built):
    store, report, table = built
    assert list(store.df("SELECT * FROM customer_model LIMIT 0").columns) == list(model.COLUMNS)
    assert set(model.COLUMN_LABELS) == set(model.COLUMNS)
    assert report.customers == 8
    assert report.as_of == AS_OF
    assert sorted(table.index) == list("ABCDEFGH")  # X (cancelled only) and the keyless order are out
    assert (table.as_of == pd.Timestamp(AS_OF)).all()
    assert set(report.seconds) >= {"aggregate", "orders", "subscriptions", "predict", "table"}


@pytest.mark.parametrize("row", EXPECTED, ids=[r[0] for r in EXPECTED])
def test_purchase_figures_and_scores(built, row):
    _, _, table = built
    cid, orders, revenue, aov, recency, tenure, avg_days, o12, r12, r, f, m, segment = row
    got = table.loc[cid]
    assert got.orders == orders
    assert got.revenue == revenue
    assert got.aov == pytest.approx(aov, abs=0.005)
    assert got.recency_days == recency
    assert got.tenure_days == tenure
    if avg_days is None:
        assert pd.isna(got.avg_days_between_orders)
    else:
        assert got.avg_days_between_orders == pytest.approx(avg_days)
    assert (got.orders_12m, got.revenue_12m) == (o12, r12)
    assert (got.r_score, got.f_score, got.m_score) == (r, f, m)
    assert got.rfm_segment == segment


RANKS = [
    ("A", "ゴールド", "プラチナ", 25000),
    ("B", "レギュラー", "シルバー", 5000),
    ("C", "シルバー", "ゴールド", 10000),
    ("D", "シルバー", "ゴールド", 11000),
    ("E", "レギュラー", "シルバー", 2000),
    ("F", "レギュラー", "シルバー", 8000),   # 12-month spend 0: the old orders do not count
    ("G", "プラチナ", None, None),          # 2025-07-01 00:00 is inside the window
    ("H", "シルバー", "ゴールド", 12000),    # exactly 8,000 reaches シルバー
]


@pytest.mark.parametrize("cid, rank, next_rank, gap", RANKS, ids=[r[0] for r in RANKS])
def test_ranks_and_gaps(built, cid, rank, next_rank, gap):
    got = built[2].loc[cid]
    assert got["rank"] == rank
    if next_rank is None:
        assert pd.isna(got.next_rank) and pd.isna(got.gap_to_next_rank)
    else:
        assert (got.next_rank, got.gap_to_next_rank) == (next_rank, gap)


BEHAVIOUR = [
    # id, acquisition, first_source, last product, subscription, deliveries, coupon, sale_only
    ("A", "通常", "rakuten", ("P-SERUM", "美容液", "スキンケア"), None, 0, False, False),
    ("B", "スーパーSALE", "rakuten", ("P-X", "商品X", "その他"), None, 0, False, False),
    ("C", "お買い物マラソン", "rakuten", ("P-A", "化粧水A", "スキンケア"), None, 0, False, True),
    ("D", "通常", "rakuten", ("P-X", "商品X", "その他"), "継続中", 3, False, False),
    ("E", "通常", "rakuten", ("P-X", "商品X", "その他"), "解約", 6, False, False),  # 01-10 10:00 is after the マラソン ended 01:59
    ("F", "通常", "shopify", ("P-X", "商品X", "その他"), None, 0, True, False),
    ("G", "通常", "rakuten", ("P-X", "商品X", "その他"), None, 0, False, False),
    ("H", "スーパーSALE", "rakuten", ("P-X", "商品X", "その他"), None, 0, True, True),
]


@pytest.mark.parametrize("row", BEHAVIOUR, ids=[r[0] for r in BEHAVIOUR])
def test_behaviour_columns(built, row):
    cid, acquisition, source, product, sub, deliveries, coupon, sale_only = row
    got = built[2].loc[cid]
    assert got.acquisition_event == acquisition
    assert got.first_source == source
    assert (got.last_product_id, got.last_product_name, got.last_category) == product
    assert (None if pd.isna(got.subscription_status) else got.subscription_status) == sub
    assert got.subscription_deliveries == deliveries
    assert bool(got.used_coupon) is coupon
    assert bool(got.sale_only_buyer) is sale_only


@pytest.mark.parametrize(
    "cid, age, month, has_line",
    [
        pytest.param("A", 35, 7, True, id="birthday-tomorrow"),
        pytest.param("B", 36, 6, False, id="birthday-today-empty-line-id"),
        pytest.param("C", None, None, False, id="no-birthday"),
        pytest.param("D", 26, 2, True, id="leap-day"),
        pytest.param("H", None, None, False, id="not-in-customers"),
    ],
)
def test_profile_fields(built, cid, age, month, has_line):
    got = built[2].loc[cid]
    assert (None if pd.isna(got.age) else got.age) == age
    assert (None if pd.isna(got.birthday_month) else got.birthday_month) == month
    assert bool(got.has_line) is has_line


def test_profile_copied_from_customers(built):
    got = built[2].loc["A"]
    assert (got["name"], got.email, got.prefecture, got.gender) == ("青木 彩", "a@example.jp", "東京都", "女")
    assert pd.isna(built[2].loc["H"]["name"])
    assert any("顧客テーブルにない顧客が1人" in w for w in built[1].warnings)


def test_too_little_data_leaves_predictions_empty_with_reason(built):
    _, report, table = built
    for col in ("p_alive", "churn_probability_90d", "churn_risk", "expected_orders_365d",
                "predicted_clv_365d", "expected_next_order_date"):
        assert table[col].isna().all(), col
    assert report.bg_params is None
    assert report.prediction_error  # Japanese reason from crm_core.model.clv
    assert any(report.prediction_error in w for w in report.warnings)
    assert model.last_report(built[0])["prediction_error"] == report.prediction_error


def test_as_of_default_ignores_cancelled_orders():
    store = small_store()
    assert model.as_of_default(store) == date(2026, 7, 5)
    report = model.rebuild(store)
    assert report.as_of == date(2026, 7, 5)
    assert model.stored_as_of(store) == date(2026, 7, 5)
    g = model.customer_table(store).set_index("customer_id").loc["G"]
    assert (g.orders, g.revenue, g.recency_days) == (2, 51000, 0)


def test_as_of_in_the_past_ignores_later_orders():
    store = small_store()
    model.rebuild(store, date(2026, 3, 10))
    table = model.customer_table(store).set_index("customer_id")
    assert "B" not in table.index and "D" not in table.index
    assert (table.loc["A"].orders, table.loc["A"].revenue, table.loc["A"].recency_days) == (2, 13000, 0)


def test_rebuild_is_repeatable(built):
    store = small_store()
    model.rebuild(store, AS_OF)
    first = model.customer_table(store)
    model.rebuild(store, AS_OF)
    pd.testing.assert_frame_equal(first, model.customer_table(store))
    assert store.scalar("SELECT count(*) FROM duckdb_tables() WHERE temporary") == 0


@pytest.mark.parametrize(
    "thresholds, expected_r",
    [
        # r: up to 30 days -> 5, 90 -> 4, 180 -> 3, 365 -> 2, longer -> 1
        pytest.param({"r": [30, 90, 180, 365]}, {"A": 5, "B": 5, "D": 5, "E": 3, "C": 3, "H": 2, "G": 2, "F": 1},
                     id="recency-days"),
        pytest.param({"r": [1, 2, 3, 4]}, {c: 1 for c in "ABCDEFGH"}, id="all-old"),
    ],
)
def test_user_thresholds_change_r_scores(thresholds, expected_r):
    store = small_store()
    model.set_rfm_thresholds(store, thresholds)
    model.rebuild(store, AS_OF)
    table = model.customer_table(store).set_index("customer_id")
    assert table.r_score.to_dict() == expected_r


def test_quintile_frequency_gives_tied_customers_one_score():
    store = small_store()
    model.set_rfm_thresholds(store, {"f": "quintile", "m": [5000, 10000, 30000, 60000]})
    model.rebuild(store, AS_OF)
    table = model.customer_table(store).set_index("customer_id")
    # orders: B, G = 1 (k0) -> 1; C, F, H = 2 (k2) -> 1 + 10 // 8 = 2; A, D, E = 3 (k5) -> 1 + 25 // 8 = 4
    assert table.f_score.to_dict() == {"A": 4, "B": 1, "C": 2, "D": 4, "E": 4, "F": 2, "G": 1, "H": 2}
    # revenue >= 5000 -> 2, >= 10000 -> 3, >= 30000 -> 4, >= 60000 -> 5
    assert table.m_score.to_dict() == {"A": 3, "B": 1, "C": 3, "D": 2, "E": 2, "F": 5, "G": 4, "H": 2}


def test_user_segments_are_data():
    store = small_store()
    hostile = "'); DROP TABLE orders; --"
    model.set_rfm_segments(store, [
        {"name": "最近の人", "r_min": 4, "r_max": 5, "f_min": 1, "f_max": 5, "description": "R4以上"},
        {"name": hostile, "r_min": 1, "r_max": 1, "f_min": 1, "f_max": 5},
        {"name": "高額で遠い", "r_min": 2, "r_max": 3, "m_min": 3, "m_max": 5},
    ])
    assert model.rfm_segments(store)[1]["name"] == hostile
    model.rebuild(store, AS_OF)
    seg = model.customer_table(store).set_index("customer_id").rfm_segment.to_dict()
    # R: A5 B4 C2 D4 E3 F1 G1 H2; M: A4 B1 C3 D2 E1 F5 G4 H2
    assert seg == {"A": "最近の人", "B": "最近の人", "D": "最近の人", "F": hostile, "G": hostile,
                   "C": "高額で遠い", "E": model.OTHER_SEGMENT, "H": model.OTHER_SEGMENT}
    assert store.table_count("orders") > 0


def test_default_segments_cover_every_cell():
    for r in range(1, 6):
        for f in range(1, 6):
            assert any(
                rule["r_min"] <= r <= rule["r_max"] and rule["f_min"] <= f <= rule["f_max"]
                for rule in model.DEFAULT_RFM_SEGMENTS
            ), (r, f)
    assert {rule["name"] for rule in model.DEFAULT_RFM_SEGMENTS} == {
        "優良顧客", "安定顧客", "新規顧客", "育成中", "要注意", "休眠予備軍", "休眠", "離反"}


def test_user_ranks_change_rank_and_gap():
    store = small_store()
    model.set_rank_thresholds(store, [{"name": "一般", "min_revenue_12m": 0},
                                      {"name": "VIP", "min_revenue_12m": 9500}])
    assert [r["name"] for r in model.rank_thresholds(store)] == ["VIP", "一般"]
    model.rebuild(store, AS_OF)
    t = model.customer_table(store).set_index("customer_id")
    assert t["rank"].to_dict() == {"A": "VIP", "B": "一般", "C": "VIP", "D": "一般", "E": "一般",
                                   "F": "一般", "G": "VIP", "H": "一般"}
    assert t.loc["D"].gap_to_next_rank == 500
    assert model.rank_gap_text(t.loc["D"]["rank"], t.loc["D"].next_rank, t.loc["D"].gap_to_next_rank) == "あと¥500でVIP"


@pytest.mark.parametrize(
    "setter, value",
    [
        pytest.param(model.set_rfm_thresholds, {"r": [90, 30, 180, 365]}, id="thresholds-not-ascending"),
        pytest.param(model.set_rfm_thresholds, {"f": [1, 2]}, id="thresholds-too-few"),
        pytest.param(model.set_rfm_thresholds, {"m": "median"}, id="thresholds-unknown-mode"),
        pytest.param(model.set_rfm_segments, [], id="segments-empty"),
        pytest.param(model.set_rfm_segments, [{"name": "x", "r_min": 0, "r_max": 5}], id="segments-score-0"),
        pytest.param(model.set_rfm_segments, [{"name": "x", "r_min": 4, "r_max": 2}], id="segments-min-over-max"),
        pytest.param(model.set_rfm_segments, [{"name": " ", "r_min": 1}], id="segments-blank-name"),
        pytest.param(model.set_rank_thresholds, [{"name": "A", "min_revenue_12m": 100}], id="ranks-no-zero"),
        pytest.param(model.set_rank_thresholds, [{"name": "A", "min_revenue_12m": 0},
                                                 {"name": "A", "min_revenue_12m": 5}], id="ranks-duplicate"),
        pytest.param(model.set_rank_thresholds, [{"name": "A", "min_revenue_12m": -1}], id="ranks-negative"),
    ],
)
def test_invalid_settings_are_refused_in_japanese(setter, value):
    store = Store(":memory:")
    with pytest.raises(InputError) as exc:
        setter(store, value)
    assert any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in exc.value.message)
    assert store.get_setting("rfm_thresholds") is None and store.get_setting("rfm_segments") is None


@pytest.mark.parametrize(
    "rank, next_rank, gap, text",
    [
        pytest.param("シルバー", "ゴールド", 3200, "あと¥3,200でゴールド", id="yen"),
        pytest.param("シルバー", "ゴールド", 3199.2, "あと¥3,200でゴールド", id="rounds-up"),
        pytest.param("レギュラー", "シルバー", 12000.0, "あと¥12,000でシルバー", id="thousands"),
        pytest.param("プラチナ", None, None, "最上位ランク（プラチナ）です", id="top"),
        pytest.param(None, None, None, "", id="none"),
    ],
)
def test_rank_gap_text(rank, next_rank, gap, text):
    assert model.rank_gap_text(rank, next_rank, gap) == text


@pytest.mark.parametrize(
    "ordered_at, expected",
    [
        pytest.param(datetime(2026, 6, 4, 19, 59, 59), "通常", id="before-start"),
        pytest.param(datetime(2026, 6, 4, 20, 0, 0), "スーパーSALE", id="start"),
        pytest.param(datetime(2026, 6, 11, 1, 59, 59), "スーパーSALE", id="last-second"),
        pytest.param(datetime(2026, 6, 11, 2, 0, 0), "通常", id="after-end"),
        pytest.param(datetime(2026, 2, 19, 23, 0), "お買い物マラソン", id="confirmed-marathon"),
        pytest.param(datetime(2026, 5, 20, 12, 0), "お買い物マラソン", id="pattern-marathon"),
        pytest.param(datetime(2026, 5, 1, 12, 0), "通常", id="wonderful-day-is-not-a-sale"),
    ],
)
def test_acquisition_event_boundaries(ordered_at, expected):
    store = Store(":memory:")
    add_order(store, "O1", "Q", ordered_at, 1000)
    add_order(store, "O2", "Q", datetime(2026, 6, 20, 12, 0), 1000)  # a later, ordinary order
    model.rebuild(store, AS_OF)
    assert model.customer_table(store).acquisition_event.tolist() == [expected]


def test_empty_store_builds_an_empty_table():
    store = Store(":memory:")
    report = model.rebuild(store)
    assert report.customers == 0 and report.as_of is None
    assert list(model.customer_table(store).columns) == list(model.COLUMNS)
    assert report.warnings


def test_customer_table_before_build_is_an_input_error():
    with pytest.raises(InputError):
        model.customer_table(Store(":memory:"))


def test_export_csv_for_excel(tmp_path, built):
    store = small_store()
    store.execute("UPDATE customers SET name = ? WHERE customer_id = 'B'", ["=HYPERLINK(\"http://x\")"])
    out = tmp_path / "customers.csv"
    assert model.export_customers(store, out, as_of=AS_OF) == 8
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\xef\xbb\xbf") == 1
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0] == list(model.EXPORT_COLUMNS)
    assert [r[0] for r in rows[1:]] == list("ABCDEFGH")
    by_id = {r[0]: dict(zip(rows[0], r)) for r in rows[1:]}
    assert by_id["B"]["name"].startswith("'=")
    assert by_id["A"]["first_order_at"] == "2025-12-01 09:00:00"
    assert by_id["A"]["as_of"] == "2026-06-30"
    # another as_of is computed for the export only; cp932 works for Excel/R-Mail tools
    out2 = tmp_path / "customers_cp932.csv"
    # on 2026-03-10: A, C, E, F, G and H had ordered; B and D had not
    assert model.export_customers(store, out2, as_of=date(2026, 3, 10), encoding="cp932") == 6
    assert model.stored_as_of(store) is None  # an export never replaces the stored model (issue 11, item 4)
    assert out2.read_bytes().decode("cp932").splitlines()[0].startswith("customer_id,customer_key,name,")


def test_export_in_chunks(tmp_path, monkeypatch):
    store = small_store()
    monkeypatch.setattr(model_export, "_EXPORT_CHUNK_VECTORS", 1)
    # 2,100 one-order customers -> two chunks of 2,048 + 52 rows (plus the eight of the fixture)
    store.execute(
        """
        INSERT INTO orders (order_id, source, customer_id, ordered_at, cancelled, total_amount)
        SELECT 'M' || i, 'rakuten', 'M' || lpad(CAST(i AS VARCHAR), 5, '0'), TIMESTAMP '2026-01-15 10:00', FALSE, 1000
        FROM range(2100) t(i)
        """
    )
    out = tmp_path / "many.csv"
    assert model.export_customers(store, out, as_of=AS_OF) == 2108
    lines = out.read_bytes().decode("utf-8-sig").split("\r\n")
    assert lines[0].startswith("customer_id,") and sum(1 for ln in lines if ln.startswith("customer_id,")) == 1
    assert len([ln for ln in lines if ln]) == 2109


# ---------------------------------------------------------------------------
# Predictions on a seeded synthetic shop
# ---------------------------------------------------------------------------


def synthetic_store(n: int = 600, seed: int = 7) -> tuple[Store, pd.DataFrame]:
    """Customers buying as a Poisson process until they drop out (BG/NBD-like)."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 1)
    rows = []
    for i in range(n):
        first = start + timedelta(days=int(rng.integers(0, 500)), hours=int(rng.integers(8, 23)))
        rate = rng.gamma(1.5, 1 / 60)  # purchases per day
        p_drop = rng.beta(2, 6)
        level = rng.gamma(4, 1500)
        t = first
        k = 0
        while t < datetime(2025, 12, 31) and k < 40:
            rows.append((f"S{i}-{k}", f"S{i:04d}", t, float(round(level * rng.uniform(0.5, 1.5)))))
            if i % 7 == 0 and k in (0, 2):  # a second order on the same day (first day and a repeat day)
                rows.append((f"S{i}-{k}b", f"S{i:04d}", t + timedelta(minutes=30), float(round(level / 3))))
            if k > 0 and rng.random() < p_drop:
                break
            t = t + timedelta(days=float(rng.exponential(1 / rate)))
            k += 1
    orders = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "amount"])
    store = Store(":memory:")
    store.cursor().executemany(
        "INSERT INTO orders (order_id, source, customer_id, ordered_at, cancelled, total_amount) "
        "VALUES (?, 'rakuten', ?, ?, FALSE, ?)",
        [tuple(r) for r in orders.itertuples(index=False)],
    )
    return store, orders


@pytest.fixture(scope="module")
def predicted():
    store, orders = synthetic_store()
    as_of = date(2025, 12, 31)
    report = model.rebuild(store, as_of)
    table = model.customer_table(store).set_index("customer_id")
    return store, orders, as_of, report, table


def test_predictions_present_with_enough_repeat_customers(predicted):
    _, _, as_of, report, table = predicted
    assert report.prediction_error is None
    assert set(report.bg_params) == {"r", "alpha", "a", "b"}
    assert set(report.gg_params) == {"p", "q", "v"}
    assert report.fit_customers == len(table)
    for col in ("p_alive", "churn_probability_90d", "expected_orders_365d", "predicted_clv_365d"):
        assert table[col].notna().all(), col
    assert table.p_alive.between(0, 1).all() and table.churn_probability_90d.between(0, 1).all()
    risk = pd.cut(table.churn_probability_90d, [-1, 0.33 - 1e-12, 0.66, 2], labels=["低", "中", "高"]).astype(str)
    assert (risk == table.churn_risk).all()
    assert table.churn_risk.nunique() >= 2
    dates = table.expected_next_order_date.dropna()
    assert len(dates) > 0 and table.expected_next_order_date.isna().any()
    assert ((dates > pd.Timestamp(as_of)) & (dates <= pd.Timestamp(as_of) + pd.Timedelta(days=365))).all()


def test_predictions_match_the_clv_module_on_an_independent_summary(predicted):
    from crm_core.model import clv

    _, orders, as_of, report, table = predicted
    summary = clv.summary_from_orders(orders.customer_id, orders.ordered_at, orders.amount, as_of)
    summary = summary.loc[table.index]
    # Our SQL summary agrees with the reference one.
    assert (table.tenure_days.to_numpy() == summary["T"].to_numpy()).all()
    repeat = summary.frequency > 0
    assert np.allclose(table.avg_days_between_orders[repeat], (summary.recency / summary.frequency)[repeat], atol=0.051)
    # Parameters as fitted directly; predictions as the module computes them.
    x, tx, T, m = (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T", "monetary"))
    bg = clv.fit_beta_geo(x, tx, T)
    assert report.bg_params == pytest.approx({"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b}, rel=1e-6)
    gg = clv.fit_gamma_gamma(x, m)
    assert np.allclose(table.p_alive, clv.p_alive(bg, x, tx, T), rtol=1e-6)
    assert np.allclose(table.churn_probability_90d, clv.prob_no_purchase(bg, 90, x, tx, T), rtol=1e-6)
    assert np.allclose(table.expected_orders_365d, clv.expected_purchases(bg, 365, x, tx, T), rtol=1e-6)
    assert np.allclose(table.predicted_clv_365d, clv.predicted_clv(bg, gg, 365, x, tx, T, m), rtol=1e-5, atol=0.51)


def test_expected_next_order_date_is_the_median_waiting_time(predicted):
    from crm_core.model import clv

    _, orders, as_of, report, table = predicted
    summary = clv.summary_from_orders(orders.customer_id, orders.ordered_at, orders.amount, as_of).loc[table.index]
    bg = clv.BetaGeoParams(**report.bg_params)
    x, tx, T = (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    has = table.expected_next_order_date.notna().to_numpy()
    d = (table.expected_next_order_date[has] - pd.Timestamp(as_of)).dt.days.to_numpy(dtype=float)
    assert (clv.prob_no_purchase(bg, d, x[has], tx[has], T[has]) <= 0.5 + 1e-9).all()
    assert (clv.prob_no_purchase(bg, d - 1, x[has], tx[has], T[has]) > 0.5 - 1e-9).all()
    assert (clv.prob_no_purchase(bg, 365.0, x[~has], tx[~has], T[~has]) > 0.5).all()


def test_count_distinct_fallback_gives_the_same_table(monkeypatch):
    store, _ = synthetic_store(n=300, seed=3)
    model.rebuild(store, date(2025, 12, 31))
    bitmap = model.customer_table(store)
    monkeypatch.setattr(build, "BITMAP_MAX_DAYS", 0)
    model.rebuild(store, date(2025, 12, 31))
    pd.testing.assert_frame_equal(bitmap, model.customer_table(store))


def test_same_second_orders_pick_the_later_inserted_as_last():
    store = Store(":memory:")
    add_order(store, "T1", "Q", datetime(2026, 6, 20, 12, 0), 1000, [("P-1", "一", "c", 1000)])
    add_order(store, "T2", "Q", datetime(2026, 6, 20, 12, 0), 2000, [("P-2", "二", "c", 2000)])
    model.rebuild(store, AS_OF)
    row = model.customer_table(store).iloc[0]
    assert (row.orders, row.revenue, row.last_product_id) == (2, 3000, "P-2")


def _first_order_label(store: Store, ordered_at: datetime, as_of: date = AS_OF) -> str:
    add_order(store, "O1", "Q", ordered_at, 1000)
    model.rebuild(store, as_of)
    return model.customer_table(store).acquisition_event.tolist()[0]


def test_calendar_corrections_reach_acquisition_event():
    from crm_core.events import calendar

    # The bundled 2026-06 スーパーSALE starts on the 4th at 20:00; the marketer
    # corrects it to the 5th, so an order on the 4th at 21:00 is an ordinary one.
    store = Store(":memory:")
    calendar.update_event(store, "super_sale-2026-06-04", starts_at=datetime(2026, 6, 5, 20, 0))
    assert _first_order_label(store, datetime(2026, 6, 4, 21, 0)) == "通常"
    store = Store(":memory:")
    calendar.update_event(store, "super_sale-2026-06-04", starts_at=datetime(2026, 6, 5, 20, 0))
    assert _first_order_label(store, datetime(2026, 6, 5, 20, 30)) == "スーパーSALE"


def test_hidden_and_own_sale_events_change_the_labels():
    from crm_core.events import calendar

    store = Store(":memory:")
    calendar.delete_event(store, "marathon-2026-05-19")  # hides the bundled row
    assert _first_order_label(store, datetime(2026, 5, 20, 12, 0)) == "通常"
    store = Store(":memory:")
    calendar.add_event(store, "super_sale", "自社で把握した特別SALE", datetime(2026, 4, 13, 0, 0),
                       datetime(2026, 4, 14, 23, 59, 59))
    assert _first_order_label(store, datetime(2026, 4, 14, 23, 59, 59)) == "スーパーSALE"


@pytest.mark.parametrize(
    "ordered_at, expected",
    [
        pytest.param(datetime(2026, 7, 1, 1, 59, 59), "お買い物マラソン", id="end-of-first-piece"),
        pytest.param(datetime(2026, 7, 1, 2, 0, 0), "通常", id="between-pieces"),
        pytest.param(datetime(2026, 7, 1, 19, 59, 59), "通常", id="before-second-piece"),
        pytest.param(datetime(2026, 7, 1, 20, 0, 0), "スーパーSALE", id="start-of-second-piece"),
    ],
)
def test_two_sale_windows_on_one_day(ordered_at, expected):
    from crm_core.events import calendar

    # A marathon ending at 01:59:59 and a sale starting at 20:00 on the same day:
    # the day has two pieces, looked up one after the other.
    store = Store(":memory:")
    calendar.add_event(store, "marathon", "前日からのマラソン", datetime(2026, 6, 30, 20, 0), datetime(2026, 7, 1, 1, 59, 59))
    calendar.add_event(store, "super_sale", "夜からのSALE", datetime(2026, 7, 1, 20, 0), datetime(2026, 7, 2, 1, 59, 59))
    assert _first_order_label(store, ordered_at, as_of=date(2026, 7, 31)) == expected


def test_sale_lookup_has_one_branch_per_piece_of_the_busiest_day():
    first = date(2026, 7, 1)
    pieces = {"d": [first, first, date(2026, 7, 3)], "t0": [0, 72_000_000_000, 0],
              "t1": [7_200_000_000, 86_400_000_000, 86_400_000_000], "k": [2, 1, 2]}
    sql, params = build._sale_lookup(pieces, first, span=3)
    assert sql.count("WHEN") == 2
    assert params["sale_k0"] == [2, 0, 2, 0] and params["sale_k1"] == [1, 0, 0, 0]
    assert build._sale_lookup({"d": [], "t0": [], "t1": [], "k": []}, first, 3) == ("CAST(0 AS TINYINT)", {})


@pytest.mark.parametrize("higher_is_better", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_quintile_scores_match_sql_rank(higher_is_better, seed):
    # Reference: the SQL definition 1 + 5 * (rank() - 1) // n, with many ties.
    values = np.random.default_rng(seed).integers(0, 40, size=997).astype(float)
    order = "ASC" if higher_is_better else "DESC"
    con = Store(":memory:")
    con.execute("CREATE TABLE v AS SELECT unnest($v::DOUBLE[]) AS v, unnest(range(997)) AS i", {"v": values.tolist()})
    expected = [r[0] for r in con.fetchall(
        f"SELECT CAST(1 + (5 * (rank() OVER (ORDER BY v {order}) - 1)) // 997 AS INTEGER) AS s FROM v ORDER BY i"  # noqa: S608
    )]
    assert predict._scores(model.QUINTILE, values, higher_is_better).tolist() == expected


def test_threshold_scores_at_the_boundaries():
    values = np.array([0, 1.9, 2, 3, 4.99, 5, 8, 100])
    assert predict._scores([2, 3, 5, 8], values, True).tolist() == [1, 1, 2, 3, 3, 4, 5, 5]
    # lower is better (recency): <= a scores 5 ... > d scores 1
    assert predict._scores([30, 60, 90, 180], np.array([0, 30, 31, 90, 180, 181]), False).tolist() == [5, 5, 4, 3, 2, 1]


def test_ranks_by_number_of_orders():
    store = Store(":memory:")
    # P: 3 orders in the last 12 months, Q: 1, R: one order 400 days ago (0 in the window)
    for i in range(3):
        add_order(store, f"P{i}", "P", datetime(2026, 3, 1 + i, 12), 1000)
    add_order(store, "Q0", "Q", datetime(2026, 6, 1, 12), 90000)
    add_order(store, "R0", "R", datetime(2025, 5, 20, 12), 1000)
    model.set_rank_thresholds(store, [{"name": "常連", "min_orders_12m": 3}, {"name": "一般", "min_orders_12m": 0},
                                      {"name": "リピーター", "min_orders_12m": 2}])
    assert model.rank_basis(model.rank_thresholds(store)) == "orders_12m"
    model.rebuild(store, AS_OF)
    t = model.customer_table(store).set_index("customer_id")
    got = {c: (t.loc[c]["rank"], t.loc[c].next_rank, t.loc[c].orders_to_next_rank) for c in "PQR"}
    assert got["P"][0] == "常連" and pd.isna(got["P"][1]) and pd.isna(got["P"][2])  # the top rank
    assert got["Q"] == ("一般", "リピーター", 1)  # big spend does not count: 1 order, 2 needed
    assert got["R"] == ("一般", "リピーター", 2)
    assert t.gap_to_next_rank.isna().all()
    assert model.rank_gap_text("一般", "リピーター", None, 1) == "あと1回のご購入でリピーター"


@pytest.mark.parametrize(
    "ranks, message",
    [
        ([{"name": "A", "min_orders_12m": 2.5}, {"name": "B", "min_orders_12m": 0}], "0以上の整数"),
        ([{"name": "A", "min_orders_12m": 3}, {"name": "B", "min_orders_12m": 1}], "0回"),
        ([{"name": "A", "min_orders_12m": 3}, {"name": "B", "min_orders_12m": 3}, {"name": "C", "min_orders_12m": 0}],
         "基準回数"),
    ],
)
def test_order_ranks_are_checked_in_japanese(ranks, message):
    with pytest.raises(InputError) as err:
        model.set_rank_thresholds(Store(":memory:"), ranks)
    assert message in err.value.message


def test_reading_the_calendar_creates_no_table():
    store = Store(":memory:")
    add_order(store, "O1", "Q", datetime(2026, 6, 4, 21, 0), 1000)
    model.rebuild(store, AS_OF)
    assert model.customer_table(store).acquisition_event.tolist() == ["スーパーSALE"]  # the bundled calendar
    assert not store.scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'calendar_events'")


def _add_day_of_orders(store: Store, day: datetime, customers: list[str]) -> None:
    store.cursor().executemany(
        "INSERT INTO orders (order_id, source, customer_id, ordered_at, cancelled, total_amount) "
        "VALUES (?, 'rakuten', ?, ?, FALSE, 3000)",
        [(f"D{day:%m%d}-{c}", c, day) for c in customers],
    )


def test_a_refresh_keeps_the_fit_and_predicts_everyone_on_the_new_day(monkeypatch):
    from crm_core.model import clv

    store, _ = synthetic_store(n=400, seed=5)
    monkeypatch.setattr(build, "_now_jst", lambda: datetime(2026, 1, 1, 9, 0))
    first = model.rebuild(store, reuse_fit=True)  # nothing to keep yet: fits
    assert not first.fit_reused and first.fitted_at == "2026-01-01T09:00:00" and first.fitted_customers == 400
    day = datetime.combine(model.stored_as_of(store) + timedelta(days=1), datetime.min.time()) + timedelta(hours=10)
    _add_day_of_orders(store, day, ["S0001", "S0002", "NEW1"])  # one new customer: +0.25 %
    monkeypatch.setattr(build, "_now_jst", lambda: datetime(2026, 1, 2, 9, 0))
    kept = model.rebuild(store, reuse_fit=True)
    assert kept.fit_reused and kept.as_of == day.date()
    assert kept.bg_params == first.bg_params and kept.gg_params == first.gg_params
    assert kept.fitted_at == first.fitted_at
    # every customer is predicted on the new day with the kept parameters -- the same numbers a build
    # that is handed those parameters computes
    table = model.customer_table(store).set_index("customer_id")
    bg = clv.BetaGeoParams(**first.bg_params)
    summary = store.df(
        "SELECT customer_id, count(DISTINCT CAST(ordered_at AS DATE)) - 1 AS x, "
        "date_diff('day', min(CAST(ordered_at AS DATE)), max(CAST(ordered_at AS DATE))) AS tx, "
        "date_diff('day', min(CAST(ordered_at AS DATE)), ?) AS T FROM orders GROUP BY 1", [day.date()]
    ).set_index("customer_id").loc[table.index]
    x, tx, T = (summary[c].to_numpy(dtype=float) for c in ("x", "tx", "T"))
    assert np.allclose(table.p_alive, clv.p_alive(bg, x, tx, T), rtol=1e-6)
    # a settings change (or any build not asking to keep) refits
    assert not model.rebuild(store).fit_reused


@pytest.mark.parametrize("days_later, new_customers, kept", [(6, 0, True), (7, 0, False), (1, 21, False), (1, 20, True)])
def test_the_fit_is_redone_weekly_or_when_customers_grew(monkeypatch, days_later, new_customers, kept):
    store, _ = synthetic_store(n=400, seed=5)
    monkeypatch.setattr(build, "_now_jst", lambda: datetime(2026, 1, 1, 9, 0))
    model.rebuild(store, reuse_fit=True)
    day = datetime.combine(model.stored_as_of(store) + timedelta(days=1), datetime.min.time()) + timedelta(hours=10)
    _add_day_of_orders(store, day, ["S0001"] + [f"NEW{i}" for i in range(new_customers)])
    monkeypatch.setattr(build, "_now_jst", lambda: datetime(2026, 1, 1, 9, 0) + timedelta(days=days_later))
    report = model.rebuild(store, reuse_fit=True)
    assert report.fit_reused is kept
    assert (report.fitted_at == "2026-01-01T09:00:00") is kept
