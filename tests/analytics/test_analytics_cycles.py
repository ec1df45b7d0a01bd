"""Repurchase cycles per product and category, customers due now."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_core.analytics import cycles
from crm_core.db import Store
from crm_core.errors import InputError
from tests.analytics_shop import add_order, add_product, assert_table, frame

AS_OF = dt.date(2026, 6, 1)
P1 = ("P1", "化粧水", "その他", 3300)  # the line says その他, the product master says スキンケア
P2 = ("P2", "乳液", None, 3520)


@pytest.fixture
def shop():
    """P1 purchase days: A Jan 1, Feb 20 (+50), Apr 15 (+54); B Feb 1, Mar 13 (+40); C Apr 20;
    D Jan 10 twice on one day; E Jan 5 (+ a cancelled May 20); F May 28 (+ Jun 10 after as_of).
    P2: A Jan 1 (same order as P1) and Mar 2 (+60).
    """
    s = Store(":memory:")
    add_product(s, "P1", "化粧水 しっとり", "スキンケア")
    add_product(s, "P2", "乳液", "スキンケア")
    orders = [
        ("a1", "A", "2026-01-01", [P1, P2], False),
        ("a2", "A", "2026-02-20", [P1], False),
        ("a3", "A", "2026-03-02", [P2], False),
        ("a4", "A", "2026-04-15", [P1], False),
        ("b1", "B", "2026-02-01", [P1], False),
        ("b2", "B", "2026-03-13", [P1], False),
        ("c1", "C", "2026-04-20", [P1], False),
        ("d1", "D", "2026-01-10 09:00:00", [P1], False),
        ("d2", "D", "2026-01-10 18:00:00", [P1], False),
        ("e1", "E", "2026-01-05", [P1], False),
        ("e2", "E", "2026-05-20", [P1], True),
        ("f1", "F", "2026-05-28", [P1], False),
        ("f2", "F", "2026-06-10", [P1], False),
    ]
    for oid, cid, day, lines, cancelled in orders:
        add_order(s, oid, cid, day, sum(p[3] for p in lines), [(p[0], p[1], p[2], p[3]) for p in lines], cancelled=cancelled)
    s.execute("INSERT INTO customers (customer_id, source, name) VALUES ('A', 'test', '青木 花子')")
    yield s
    s.close()


CYCLE_COLUMNS = [
    "intervals",
    "buyers",
    "repeat_customers",
    "repeat_share",
    "median_days",
    "q1_days",
    "q3_days",
    "iqr_days",
    "due_customers",
    "due_share",
]


def test_product_cycles(shop):
    # P1 intervals 50, 54, 40: median 50, quartiles 45 and 52 (linear interpolation).
    # Due Jun 1–15: A (own median 52: Apr 15 + 52 = Jun 6) and C (Apr 20 + 50 = Jun 9).
    expected = frame(
        [
            ("P1", "化粧水 しっとり", 3, 6, 2, 2 / 6, 50.0, 45.0, 52.0, 7.0, 2, 2 / 6),
            ("P2", "乳液", 1, 1, 1, 1.0, 60.0, 60.0, 60.0, 0.0, 0, 0.0),
        ],
        ["product_id", "product_name", *CYCLE_COLUMNS],
    )
    assert_table(cycles.repurchase_cycles(shop, AS_OF, level="product", min_intervals=1, within_days=14), expected)


def test_min_intervals_drops_thin_products(shop):
    df = cycles.repurchase_cycles(shop, AS_OF, min_intervals=2)
    assert list(df["product_id"]) == ["P1"]


def test_category_cycles_use_the_product_master(shop):
    # スキンケア purchase days: A Jan 1, Feb 20, Mar 2, Apr 15 (50, 10, 44); B (40); C, D, E, F once.
    # Intervals 10, 40, 44, 50: median 42, quartiles 32.5 and 45.5.  Due: C (Apr 20 + 42 = Jun 1);
    # A uses its own median 44 (Apr 15 + 44 = May 29, already past).
    expected = frame(
        [("スキンケア", 4, 6, 2, 2 / 6, 42.0, 32.5, 45.5, 13.0, 1, 1 / 6)],
        ["category", *CYCLE_COLUMNS],
    )
    assert_table(cycles.repurchase_cycles(shop, AS_OF, level="category", min_intervals=1, within_days=14), expected)


def test_due_customers_list(shop):
    expected = frame(
        [
            ("A", "青木 花子", "P1", "化粧水 しっとり", dt.date(2026, 4, 15), 52.0, "本人の周期", dt.date(2026, 6, 6), 5),
            ("C", None, "P1", "化粧水 しっとり", dt.date(2026, 4, 20), 50.0, "商品の中央値", dt.date(2026, 6, 9), 8),
        ],
        [
            "customer_id",
            "name",
            "product_id",
            "product_name",
            "last_purchased_on",
            "cycle_days",
            "cycle_basis",
            "due_date",
            "days_until_due",
        ],
    )
    assert_table(cycles.due_customers(shop, AS_OF, level="product", within_days=14, min_intervals=1), expected)


@pytest.mark.parametrize(
    ("within", "customers"),
    [(0, []), (5, ["A"]), (8, ["A", "C"])],
    ids=["today-only", "five-days", "eight-days"],
)
def test_due_window_is_inclusive(shop, within, customers):
    df = cycles.due_customers(shop, AS_OF, within_days=within, min_intervals=1)
    assert list(df["customer_id"]) == customers


def test_personal_cycle_threshold(shop):
    # With 3 own intervals required, A falls back to the product median: Apr 15 + 50 = Jun 4.
    df = cycles.due_customers(shop, AS_OF, within_days=14, min_intervals=1, personal_min_intervals=3)
    row = df[df["customer_id"] == "A"].iloc[0]
    assert (row["cycle_basis"], row["due_date"]) == ("商品の中央値", dt.date(2026, 6, 4))


def test_bad_level_is_refused(shop):
    with pytest.raises(InputError):
        cycles.repurchase_cycles(shop, AS_OF, level="sku")
