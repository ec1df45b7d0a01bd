"""The basket queries give the same tables as before purchases were numbered per customer.

``tests/analytics/basket_before.py`` is a frozen copy of the earlier algorithm (one window over
every purchase of the shop); random small shops (ties in time, two sources, cancelled orders,
orders without lines) and a seeded shop must give identical results.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_core.analytics import basket
from crm_core.db import Store
from tests.analytics import basket_before
from tests.analytics_shop import add_order, add_product, seeded_shop

PRODUCTS = [("P1", "一", "A"), ("P2", "二", "A"), ("P3", "三", "B"), ("P4", "四", "B"), ("P5", "五", None)]

_order = st.tuples(
    st.integers(0, 7),  # customer
    st.integers(0, 5),  # day
    st.sampled_from(["10:00:00", "10:00:00", "23:59:59"]),  # equal times are common
    st.sampled_from(["rms", "shopify"]),
    st.lists(st.integers(0, len(PRODUCTS) - 1), max_size=4),
    st.booleans(),  # cancelled (every third order that draws it)
)


def _shop(orders: list[tuple]) -> Store:
    s = Store(":memory:")
    for pid, name, category in PRODUCTS[:3]:
        add_product(s, pid, name, category)
    for i, (customer, day, time, source, items, cancelled) in enumerate(orders):
        lines = [(PRODUCTS[k][0], PRODUCTS[k][1], PRODUCTS[k][2], 100 * (k + 1)) for k in items]
        stamp = f"2026-03-{day + 1:02d} {time}"
        # order ids out of time order, so ties are broken by source and id, not by insertion
        add_order(s, f"o{(i * 7) % 23:02d}-{i}", f"c{customer}", stamp, 100.0, lines,
                  cancelled=cancelled and i % 3 == 0, source=source)
    return s


def _table(store: Store, name: str) -> pd.DataFrame:
    return store.df(f"SELECT * FROM {name} ORDER BY customer_id")  # noqa: S608 - test constant


def assert_same_recommendations(store: Store, as_of: dt.date, **kwargs) -> None:
    n_new = basket.build_recommendations(store, as_of, **kwargs)
    n_old = basket_before.build_recommendations_before(store, as_of, **kwargs)
    assert n_new == n_old
    pd.testing.assert_frame_equal(_table(store, "customer_recommendations"),
                                  _table(store, "customer_recommendations_before"))


def assert_same_rules(store: Store, as_of: dt.date, level: str) -> None:
    pd.testing.assert_frame_equal(
        basket.bought_together(store, as_of, level=level, min_orders=1),
        basket_before.bought_together_before(store, as_of, level=level, min_orders=1),
    )
    pd.testing.assert_frame_equal(
        basket.bought_next(store, as_of, level=level, min_customers=1, include_same=True),
        basket_before.bought_next_before(store, as_of, level=level, min_customers=1, include_same=True),
    )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_order, min_size=1, max_size=25), st.integers(0, 6))
def test_random_shops_give_the_same_recommendations_and_rules(orders, as_of_day):
    store = _shop(orders)
    try:
        as_of = dt.date(2026, 3, 1) + dt.timedelta(days=as_of_day)
        assert_same_recommendations(store, as_of, min_orders=1, min_customers=1, popular=2)
        assert_same_recommendations(store, as_of)
        for level in basket.LEVELS:
            assert_same_rules(store, as_of, level)
    finally:
        store.close()


def test_a_seeded_shop_gives_the_same_recommendations():
    store = Store(":memory:")
    try:
        seeded_shop(store, customers=1500, seed=5)
        as_of = dt.date(2026, 10, 31)
        assert_same_recommendations(store, as_of)
        assert_same_recommendations(store, as_of, min_orders=1, min_customers=1, rules_per_item=2, popular=3)
        assert_same_rules(store, as_of, "product")
    finally:
        store.close()


A = ("PA", "商品A", None, 100)
B = ("PB", "商品B", None, 200)
C = ("PC", "商品C", None, 300)
D = ("PD", "商品D", None, 400)


def _owners_shop() -> Store:
    """Customers who own the product of their best rule, checked by hand.

    Seven purchases on 2026-02-01 (c1 {A,B}, c2 {A,B}, c3 {C,D}, c4 {D}, c5 {A}, c6 {A}, c7 {A,C}) and
    c6's cancelled {B}.  N = 7, n(A) = 5, n(B) = n(C) = n(D) = 2, n(A,B) = 2, n(C,D) = 1, n(A,C) = 1.
    Bought-together rules with lift > 1, ranked: B→A (confidence 1.0), D→C and C→D (0.5, lift 1.75;
    y = C sorts first), A→B (0.4); A–C has lift 0.7.  Most popular: A (5 of 7 customers).
    """
    s = Store(":memory:")
    for i, (cid, items) in enumerate(
        [("c1", [A, B]), ("c2", [A, B]), ("c3", [C, D]), ("c4", [D]), ("c5", [A]), ("c6", [A]), ("c7", [A, C])], start=1
    ):
        add_order(s, f"o{i}", cid, "2026-02-01 10:00:00", 100.0, list(items))
    add_order(s, "o8", "c6", "2026-02-02 10:00:00", 200.0, [B], cancelled=True)
    return s


def test_customers_who_own_their_best_candidate_get_the_next_one():
    store = _owners_shop()
    try:
        as_of = dt.date(2026, 3, 31)
        n = basket.build_recommendations(store, as_of, min_orders=1, popular=1)
        got = {r[0]: r[1:] for r in store.fetchall(
            "SELECT customer_id, product_id, score, reason FROM customer_recommendations")}
        # c1, c2: own A and B, the only candidates.  c3: D→C and C→D lead to products it owns, so the
        # popular A (5/7).  c4: D→C.  c5: A→B.  c6: owns B through its cancelled order, and A.  c7: C→D
        # (rank 3) before A→B (rank 4).
        assert n == 4
        assert set(got) == {"c3", "c4", "c5", "c7"}
        assert got["c3"][:2] == ("PA", pytest.approx(5 / 7))
        assert got["c3"][2] == basket.REASON_POPULAR
        assert got["c4"] == ("PC", pytest.approx(0.5), "「商品D」と一緒によく購入されている商品です")
        assert got["c5"] == ("PB", pytest.approx(0.4), "「商品A」と一緒によく購入されている商品です")
        assert got["c7"] == ("PD", pytest.approx(0.5), "「商品C」と一緒によく購入されている商品です")
        assert_same_recommendations(store, as_of, min_orders=1, popular=1)
        assert_same_recommendations(store, as_of, min_orders=1, popular=0)
    finally:
        store.close()


def test_a_medium_shop_gives_the_same_recommendations_in_slices(monkeypatch):
    """The customers who own their best candidate are handled a slice at a time; a few per slice here."""
    store = Store(":memory:")
    try:
        seeded_shop(store, customers=4000, seed=23)
        as_of = dt.date(2026, 10, 31)
        monkeypatch.setattr(basket, "RETRY_SLICE", 40)
        assert_same_recommendations(store, as_of, min_orders=1, min_customers=1, rules_per_item=3, popular=4)
        assert_same_recommendations(store, as_of)
        assert_same_recommendations(store, as_of, popular=0)
    finally:
        store.close()


def test_a_store_without_product_lines_gets_an_empty_table_of_the_same_shape():
    store = Store(":memory:")
    try:
        add_order(store, "o1", "c1", "2026-02-01 10:00:00", 100.0)
        add_order(store, "o2", "c2", "2026-02-02 10:00:00", 100.0, [(None, "名前だけ", None, 100)])
        as_of = dt.date(2026, 3, 31)
        assert basket.build_recommendations(store, as_of) == 0
        new = store.fetchall("DESCRIBE customer_recommendations")
        assert basket_before.build_recommendations_before(store, as_of) == 0
        assert new == store.fetchall("DESCRIBE customer_recommendations_before")
    finally:
        store.close()
