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


def line_reach(store: Store) -> dict:
    """Customers reachable on LINE now, and after each import (oldest first).

    Returns
    -------
    dict
        ``customers``, ``line_customers`` (with a LINE user id now),
        ``share`` (None without customers), ``linked_by_files`` (customers
        whose id came from a LINE link file), ``history``: a list of
        ``{"import_id", "recorded_at", "file_names", "customers",
        "line_customers", "added"}`` (``added`` = change since the previous import).
    """
    customers, line = store.fetchone(
        "SELECT count(*), count(*) FILTER (WHERE line_user_id IS NOT NULL) FROM customers"
    )
    linked = store.scalar(
        "SELECT count(DISTINCT c.customer_id) FROM customers c JOIN line_links l ON l.line_user_id = c.line_user_id"
    )
    rows = store.fetchall(
        "SELECT import_id, recorded_at, file_names, customers, line_customers, "
        "line_customers - lag(line_customers, 1, 0) OVER (ORDER BY import_id) FROM line_reach ORDER BY import_id"
    )
    keys = ("import_id", "recorded_at", "file_names", "customers", "line_customers", "added")
    return {
        "customers": int(customers),
        "line_customers": int(line),
        "share": line / customers if customers else None,
        "linked_by_files": int(linked or 0),
        "history": [dict(zip(keys, r, strict=True)) for r in rows],
    }
