"""Bought together (support / confidence / lift), bought next, per-customer recommendations."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_core.analytics import basket
from crm_core.db import Store
from tests.analytics_shop import add_order, add_product, assert_table, frame, seeded_shop

AS_OF = dt.date(2026, 3, 31)
X = ("PX", "商品X", None, 1000)
Y = ("PY", "商品Y", None, 2000)
Z = ("PZ", "商品Z", None, 3000)
NAMES = {"PX": "商品X", "PY": "商品Y", "PZ": "商品Z"}


def put(store: Store, oid: str, cid: str, day: str, items: list[tuple], cancelled: bool = False) -> None:
    add_order(store, oid, cid, day, sum(i[3] for i in items), list(items), cancelled=cancelled)


@pytest.fixture
def baskets():
    """Six orders of different customers: {X,Y} {X,Y} {X,Z} {Y} {Z} {X,Y,Z}, plus a cancelled {X,Z}.

    n(X) = 4, n(Y) = 4, n(Z) = 3 of N = 6; n(X,Y) = 3, n(X,Z) = 2, n(Y,Z) = 1.
    """
    s = Store(":memory:")
    for pid, name, category in (("PX", "商品X", "A"), ("PY", "商品Y", "A"), ("PZ", "商品Z", "B")):
        add_product(s, pid, name, category)
    for i, items in enumerate([[X, Y], [X, Y], [X, Z], [Y], [Z], [X, Y, Z]], start=1):
        put(s, f"o{i}", f"c{i}", "2026-02-01", items)
    put(s, "o7", "c7", "2026-02-01", [X, Z], cancelled=True)
    yield s
    s.close()


TOGETHER = [
    "product_id",
    "product_name",
    "other_product_id",
    "other_product_name",
    "orders_together",
    "orders_with_item",
    "orders_with_other",
    "support",
    "confidence",
    "lift",
]


def test_bought_together_support_confidence_lift(baskets):
    # lift(X,Y) = 3·6 / (4·4) = 1.125; lift(X,Z) = 2·6 / (4·3) = 1.0; Y–Z appears once (< 2 orders).
    expected = frame(
        [
            ("PX", "商品X", "PY", "商品Y", 3, 4, 4, 0.5, 0.75, 1.125),
            ("PY", "商品Y", "PX", "商品X", 3, 4, 4, 0.5, 0.75, 1.125),
            ("PX", "商品X", "PZ", "商品Z", 2, 4, 3, 1 / 3, 0.5, 1.0),
            ("PZ", "商品Z", "PX", "商品X", 2, 3, 4, 1 / 3, 2 / 3, 1.0),
        ],
        TOGETHER,
    )
    assert_table(basket.bought_together(baskets, AS_OF, min_support=0.0, min_orders=2), expected)


@pytest.mark.parametrize(
    ("kwargs", "pairs"),
    [
        ({"min_support": 0.0, "min_orders": 1}, {("PX", "PY"), ("PX", "PZ"), ("PY", "PZ")}),
        ({"min_support": 0.4, "min_orders": 1}, {("PX", "PY")}),  # at least ceil(0.4 · 6) = 3 orders
        ({"min_support": 0.0, "min_orders": 3}, {("PX", "PY")}),
        ({"min_support": 0.0, "min_orders": 1, "max_items_per_order": 2}, {("PX", "PY"), ("PX", "PZ")}),
    ],
    ids=["everything", "min-support", "min-orders", "big-orders-form-no-pairs"],
)
def test_bought_together_thresholds(baskets, kwargs, pairs):
    df = basket.bought_together(baskets, AS_OF, **kwargs)
    assert {tuple(sorted(p)) for p in zip(df["product_id"], df["other_product_id"], strict=True)} == pairs


def test_big_orders_still_count_in_the_denominators(baskets):
    df = basket.bought_together(baskets, AS_OF, min_support=0.0, min_orders=1, max_items_per_order=2)
    row = df[(df["product_id"] == "PX") & (df["other_product_id"] == "PY")].iloc[0]
    # o6 (three items) forms no pair: n(X,Y) = 2, but n(X) = n(Y) = 4 and N = 6 still.
    assert (row["orders_together"], row["support"], row["confidence"], row["lift"]) == pytest.approx((2, 2 / 6, 0.5, 0.75))


def test_bought_together_by_category(baskets):
    # Categories: X, Y -> A, Z -> B.  Orders {A} {A} {A,B} {A} {B} {A,B}: n(A) 5, n(B) 3, n(A,B) 2.
    expected = frame(
        [("A", "B", 2, 5, 3, 1 / 3, 0.4, 0.8), ("B", "A", 2, 3, 5, 1 / 3, 2 / 3, 0.8)],
        ["category", "other_category", *TOGETHER[4:]],
    )
    assert_table(basket.bought_together(baskets, AS_OF, level="category", min_support=0.0, min_orders=1), expected)


@pytest.fixture
def sequences():
    """c1: X → Y → Z.  c2: X → {Y, Z}.  c3: X → X.  c4: Y → Z (a cancelled X in between).
    c5: Z only.  c6: Y only.
    """
    s = Store(":memory:")
    for pid, name, _, _ in (X, Y, Z):
        add_product(s, pid, name, None)
    put(s, "c1-1", "c1", "2026-01-01", [X])
    put(s, "c1-2", "c1", "2026-02-01", [Y])
    put(s, "c1-3", "c1", "2026-03-01", [Z])
    put(s, "c2-1", "c2", "2026-01-05", [X])
    put(s, "c2-2", "c2", "2026-02-05", [Y, Z])
    put(s, "c3-1", "c3", "2026-01-07", [X])
    put(s, "c3-2", "c3", "2026-02-07", [X])
    put(s, "c4-1", "c4", "2026-01-09", [Y])
    put(s, "c4-x", "c4", "2026-01-20", [X], cancelled=True)
    put(s, "c4-2", "c4", "2026-02-09", [Z])
    put(s, "c5-1", "c5", "2026-01-11", [Z])
    put(s, "c6-1", "c6", "2026-01-13", [Y])
    yield s
    s.close()


NEXT = [
    "product_id",
    "product_name",
    "other_product_id",
    "other_product_name",
    "customers",
    "customers_with_item",
    "customers_with_other",
    "confidence",
    "lift",
]


def test_bought_next_confidence_and_lift(sequences):
    # 4 customers have a next order.  Before an order: X c1 c2 c3, Y c1 c4.  In a next order: X c3, Y c1 c2,
    # Z c1 c2 c4.  X→Y: c1 c2 (2/3, lift (2/3)/(2/4)); Y→Z: c1 c4 (2/2, lift 1/(3/4)); X→Z: c2 (1/3).
    expected = frame(
        [
            ("PY", "商品Y", "PZ", "商品Z", 2, 2, 3, 1.0, 4 / 3),
            ("PX", "商品X", "PY", "商品Y", 2, 3, 2, 2 / 3, 4 / 3),
            ("PX", "商品X", "PZ", "商品Z", 1, 3, 3, 1 / 3, 4 / 9),
        ],
        NEXT,
    )
    assert_table(basket.bought_next(sequences, AS_OF, min_customers=1), expected)


def test_bought_next_counts_customers_with_a_next_order_without_product_lines(sequences):
    # c7 has two purchases without product lines: a customer with a next order all the same, so the lift's
    # denominator has 5 customers (X→Y: (2/3) / (2/5)); their orders still form no transition.
    put(sequences, "c7-1", "c7", "2026-01-15", [(None, "名前だけ", None, 500)])
    put(sequences, "c7-2", "c7", "2026-02-15", [(None, "名前だけ", None, 500)])
    df = basket.bought_next(sequences, AS_OF, min_customers=1)
    rows = {(r.product_id, r.other_product_id): (r.customers, r.lift) for r in df.itertuples()}
    assert rows == {("PY", "PZ"): (2, pytest.approx(5 / 3)), ("PX", "PY"): (2, pytest.approx(5 / 3)),
                    ("PX", "PZ"): (1, pytest.approx(5 / 9))}


def test_bought_next_thresholds_and_repurchase(sequences):
    df = basket.bought_next(sequences, AS_OF, min_customers=2)
    assert list(zip(df["product_id"], df["other_product_id"], strict=True)) == [("PY", "PZ"), ("PX", "PY")]
    same = basket.bought_next(sequences, AS_OF, min_customers=1, include_same=True)
    row = same[(same["product_id"] == "PX") & (same["other_product_id"] == "PX")].iloc[0]
    assert (row["customers"], row["confidence"], row["lift"]) == pytest.approx((1, 1 / 3, 4 / 3))


def recommendations(store: Store) -> dict[str, tuple]:
    rows = store.fetchall("SELECT customer_id, product_id, product_name, score, reason FROM customer_recommendations")
    return {r[0]: r[1:] for r in rows}


def test_build_recommendations(sequences):
    n = basket.build_recommendations(sequences, AS_OF)
    recs = recommendations(sequences)
    assert n == len(recs) == 3
    # c3 bought X: X→Y.  c6 bought Y: Y→Z.  c5 bought Z only: the most popular product it lacks
    # (Y and Z have 4 buyers each, Y sorts first).  c1, c2 own X, Y and Z; c4 owns X through a
    # cancelled order, so nothing is left for them.
    assert recs["c3"][:2] == ("PY", "商品Y")
    assert recs["c3"][2] == pytest.approx(2 / 3)
    assert recs["c3"][3] == "「商品X」を購入したお客様が次の注文でよく購入している商品です"
    assert recs["c6"][:2] == ("PZ", "商品Z")
    assert recs["c6"][2] == pytest.approx(1.0)
    assert recs["c5"][:2] == ("PY", "商品Y")
    assert recs["c5"][2] == pytest.approx(4 / 6)
    assert recs["c5"][3] == basket.REASON_POPULAR


def test_recommendations_use_bought_together_rules(baskets):
    basket.build_recommendations(baskets, AS_OF, min_orders=2, popular=0)
    recs = recommendations(baskets)
    # c4 bought Y alone: Y→X (lift 1.125) -> X.  c5 bought Z alone: Z→X has lift 1.0 (not > 1) -> nothing.
    assert recs["c4"][0] == "PX"
    assert recs["c4"][3] == "「商品Y」と一緒によく購入されている商品です"
    assert "c5" not in recs


def _owned(store: Store) -> set[tuple[str, str]]:
    rows = store.fetchall(
        """SELECT DISTINCT o.customer_id, l.product_id
           FROM orders o JOIN order_lines l ON l.source = o.source AND l.order_id = o.order_id"""
    )
    return set(rows)


@pytest.mark.parametrize("fixture_name", ["sequences", "baskets", "seeded"], ids=["sequences", "baskets", "seeded"])
def test_recommendations_never_include_a_bought_product(request, fixture_name):
    if fixture_name == "seeded":
        store = Store(":memory:")
        seeded_shop(store, customers=600, seed=11)
        as_of = dt.date(2026, 10, 31)
    else:
        store = request.getfixturevalue(fixture_name)
        as_of = AS_OF
    n = basket.build_recommendations(store, as_of, min_orders=1, min_customers=1)
    assert n > 0
    picked = set(store.fetchall("SELECT customer_id, product_id FROM customer_recommendations"))
    assert len(picked) == n  # one row per customer
    assert not picked & _owned(store)


def test_rebuild_replaces_the_table(sequences):
    basket.build_recommendations(sequences, AS_OF)
    put(sequences, "c3-3", "c3", "2026-03-10", [Y])  # c3 now owns Y
    basket.build_recommendations(sequences, AS_OF)
    recs = recommendations(sequences)
    assert recs["c3"][0] == "PZ"  # Z is the only product c3 lacks, reached through Y→Z
    assert recs["c3"][3] == "「商品Y」を購入したお客様が次の注文でよく購入している商品です"
    assert basket.recommended_customers(sequences) == len(recs)


def test_recommendation_summary(sequences):
    assert basket.recommendation_summary(sequences).empty
    basket.build_recommendations(sequences, AS_OF)
    df = basket.recommendation_summary(sequences)
    assert list(df["product_id"]) == ["PY", "PZ"]
    assert list(df["customers"]) == [2, 1]
    assert df["share"].tolist() == pytest.approx([2 / 3, 1 / 3])


def test_recommended_names_come_from_the_master_else_the_latest_line():
    # PA has a master name (its lines' names are never used); PB has none: the name on its latest line.
    s = Store(":memory:")
    add_product(s, "PA", "マスターの名前", None)
    add_order(s, "o1", "c1", "2026-01-01 10:00:00", 300.0, [("PA", "古い行の名前", None, 100), ("PB", "古いB", None, 200)])
    add_order(s, "o2", "c2", "2026-02-01 10:00:00", 300.0, [("PA", "新しい行の名前", None, 100), ("PB", "新しいB", None, 200)])
    add_order(s, "o3", "c3", "2026-01-15 10:00:00", 100.0, [("PA", "中ごろの名前", None, 100)])
    add_order(s, "o4", "c4", "2026-01-20 10:00:00", 200.0, [("PB", "中ごろのB", None, 200)])
    basket.build_recommendations(s, AS_OF, popular=2)
    assert recommendations(s)["c3"][:2] == ("PB", "新しいB")
    assert recommendations(s)["c4"][:2] == ("PA", "マスターの名前")
    s.close()
