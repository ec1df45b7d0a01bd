"""The basket queries give the same tables as before purchases were numbered per customer.

``tests/analytics/basket_before.py`` is a frozen copy of the earlier algorithm (one window over
every purchase of the shop); random small shops (ties in time, two sources, cancelled orders,
orders without lines) and a seeded shop must give identical results.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
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
