"""Shop-level figures for the home page and the sidebar (purchases as :mod:`crm_core.purchases` defines them)."""

from __future__ import annotations

from crm_core.db import Store
from crm_core.purchases import is_purchase, revenue


def shop_overview(store: Store) -> dict:
    """Headline numbers as of the last order date (JST).

    Returns
    -------
    dict
        ``as_of`` (date), ``customers``, ``orders``, ``orders_30d``,
        ``revenue_30d``, ``repeat_rate``, ``aov``, ``dormant_90d``,
        ``cancel_rate``.  Cancelled orders are excluded except in
        ``cancel_rate``.
    """
    row = store.fetchone(
        """
        WITH o AS (SELECT * FROM orders),
        ok AS (SELECT *, """ + revenue() + """ AS revenue FROM o WHERE """ + is_purchase() + """),
        lim AS (SELECT max(ordered_at) AS as_of FROM ok),
        per AS (SELECT customer_id, count(*) AS n, max(ordered_at) AS last FROM ok GROUP BY customer_id)
        SELECT
            CAST((SELECT as_of FROM lim) AS DATE),
            (SELECT count(*) FROM per),
            (SELECT count(*) FROM ok),
            (SELECT count(*) FROM ok, lim WHERE ordered_at > as_of - INTERVAL 30 DAY),
            (SELECT coalesce(sum(revenue), 0) FROM ok, lim WHERE ordered_at > as_of - INTERVAL 30 DAY),
            (SELECT avg(CASE WHEN n >= 2 THEN 1.0 ELSE 0.0 END) FROM per),
            (SELECT avg(revenue) FROM ok),
            (SELECT count(*) FROM per, lim WHERE last <= as_of - INTERVAL 90 DAY),
            (SELECT avg(CASE WHEN cancelled THEN 1.0 ELSE 0.0 END) FROM o)
        """  # noqa: S608 - constant fragments of crm_core.purchases
    )
    keys = ("as_of", "customers", "orders", "orders_30d", "revenue_30d", "repeat_rate", "aov", "dormant_90d", "cancel_rate")
    return dict(zip(keys, row, strict=True))


def sidebar_counts(store: Store) -> tuple[int, int, object]:
    """Customers, orders and the last order time over non-cancelled orders (the sidebar's figures)."""
    customers, orders, last = store.fetchone(
        "SELECT count(DISTINCT customer_id), count(*), max(ordered_at) FROM orders WHERE " + is_purchase()  # noqa: S608
    )
    return customers, orders, last
