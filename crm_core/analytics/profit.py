"""Gross profit per order, per customer (historic and predicted), shop coverage.

The definition (what a line costs, in which order the product master,
SKU / JAN links and category rates are tried, and that an unknown cost is
unknown, not 0) is :data:`crm_core.analytics.value.GROSS_PROFIT_CTE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from crm_core.db import Store, quote_ident
from crm_core.purchases import GROSS_PROFIT_CTE, gross_profit_cte

# Per-customer gross profit over all non-cancelled orders (CTE ``customer_profit``; needs GROSS_PROFIT_CTE).
CUSTOMER_PROFIT_CTE = """
customer_profit AS (
    SELECT o.customer_id,
           sum(p.line_revenue) AS line_revenue,
           sum(p.covered_revenue) AS covered_revenue,
           sum(p.gross_profit) AS gross_profit
    FROM order_profit p JOIN orders o ON o.source = p.source AND o.order_id = p.order_id
    GROUP BY o.customer_id
)"""

# :data:`CUSTOMER_PROFIT_CTE` written as a table at refresh (:mod:`crm_core.analytics.summaries` keeps its version),
# so a segment's gross profit is a sum over its customers instead of a join of its every order line to the costs.
STORED_CUSTOMER_PROFIT = "customer_profit_stored"
_TOUCHED_TABLES = ("refresh_touched",)


def store_customer_profit(cur: Any, touched: str | None = None) -> int:
    """Write every customer's gross profit (``customer_profit`` of :data:`CUSTOMER_PROFIT_CTE`) to
    :data:`STORED_CUSTOMER_PROFIT` on the connection ``cur``; returns how many customers were computed.

    With ``touched`` (a table of customer ids, ``refresh_touched``) only those customers' rows are
    replaced, from their own orders' lines; the caller checks that the rest is still current (same costs,
    written by the last refresh).  Only :func:`crm_core.analytics.summaries.write` calls it.
    """
    cols = " SELECT customer_id, line_revenue, covered_revenue, gross_profit FROM customer_profit"
    if touched is None:
        cur.execute("CREATE OR REPLACE TABLE " + STORED_CUSTOMER_PROFIT + " AS WITH "  # noqa: S608 - constant SQL
                    + GROSS_PROFIT_CTE + ", " + CUSTOMER_PROFIT_CTE + cols)
        return int(cur.execute("SELECT count(*) FROM " + STORED_CUSTOMER_PROFIT).fetchone()[0])  # noqa: S608
    ids = "(SELECT customer_id FROM " + quote_ident(touched, _TOUCHED_TABLES) + " WHERE customer_id IS NOT NULL)"  # noqa: S608
    cur.execute("DELETE FROM " + STORED_CUSTOMER_PROFIT + " WHERE customer_id IN " + ids)  # noqa: S608 - constant SQL
    orders = "(SELECT * FROM orders WHERE customer_id IN " + ids + ")"  # noqa: S608 - allowlisted table name
    cur.execute("INSERT INTO " + STORED_CUSTOMER_PROFIT + " WITH "  # noqa: S608 - constant SQL
                + gross_profit_cte(orders) + ", " + CUSTOMER_PROFIT_CTE + cols)
    return int(cur.execute("SELECT count(DISTINCT customer_id) FROM " + ids).fetchone()[0])  # noqa: S608


def order_profit(store: Store, order_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Gross profit per non-cancelled order.

    Returns
    -------
    DataFrame
        ``source, order_id, line_revenue, covered_revenue, gross_profit``
        (None when no line has a known cost), ``fully_costed``.
    """
    return store.df(
        "WITH " + GROSS_PROFIT_CTE  # noqa: S608 - constant SQL
        + " SELECT source, order_id, line_revenue, covered_revenue, gross_profit, fully_costed FROM order_profit"
        " WHERE $ids IS NULL OR list_contains($ids, order_id) ORDER BY source, order_id",
        {"ids": list(order_ids) if order_ids is not None else None},
    )


def customer_profit(store: Store, customer_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Historic and predicted gross profit per customer.

    ``margin_rate = gross_profit / covered_revenue`` (the customer's own mix
    of products); ``predicted_gross_profit_365d = predicted_clv_365d ×
    margin_rate`` (None without a customer model, a prediction or any
    costed line); ``coverage = covered_revenue / line_revenue``.

    Returns
    -------
    DataFrame
        ``customer_id, line_revenue, covered_revenue, gross_profit,
        margin_rate, coverage, predicted_clv_365d, predicted_gross_profit_365d``.
    """
    has_model = store.has_table("customer_model")
    clv = "CAST(cm.predicted_clv_365d AS DOUBLE)" if has_model else "CAST(NULL AS DOUBLE)"
    join = "LEFT JOIN customer_model cm USING (customer_id)" if has_model else ""
    return store.df(
        "WITH " + GROSS_PROFIT_CTE + ", " + CUSTOMER_PROFIT_CTE  # noqa: S608 - constant SQL
        + f""", c AS (
            SELECT customer_id, line_revenue, covered_revenue, gross_profit,
                   gross_profit / nullif(covered_revenue, 0) AS margin_rate,
                   coalesce(covered_revenue, 0) / nullif(line_revenue, 0) AS coverage
            FROM customer_profit)
        SELECT c.*, {clv} AS predicted_clv_365d, {clv} * c.margin_rate AS predicted_gross_profit_365d
        FROM c {join}
        WHERE $ids IS NULL OR list_contains($ids, c.customer_id)
        ORDER BY c.customer_id""",  # noqa: S608 - constant SQL fragments chosen in code
        {"ids": list(customer_ids) if customer_ids is not None else None},
    )


def profit_overview(store: Store) -> dict[str, Any]:
    """Shop-level gross profit and how much of it rests on known costs.

    Returns
    -------
    dict
        ``line_revenue``, ``covered_revenue``, ``gross_profit`` (of costed
        lines), ``margin_rate`` (gross profit / costed revenue),
        ``coverage`` (costed / all line revenue; None without lines),
        ``products``, ``products_costed`` (products sold with a known cost).
    """
    row = store.fetchone(
        "WITH " + GROSS_PROFIT_CTE  # noqa: S608 - constant SQL
        + """ SELECT sum(line_revenue), coalesce(sum(line_revenue) FILTER (WHERE cost IS NOT NULL), 0),
                     sum(line_revenue - cost) FILTER (WHERE cost IS NOT NULL),
                     count(DISTINCT product_id), count(DISTINCT product_id) FILTER (WHERE cost IS NOT NULL)
              FROM line_profit"""
    )
    line_rev, covered, gp, products, costed = row
    line_rev = float(line_rev or 0)
    covered = float(covered or 0)
    return {
        "line_revenue": line_rev,
        "covered_revenue": covered,
        "gross_profit": None if gp is None else float(gp),
        "margin_rate": float(gp) / covered if gp is not None and covered else None,
        "coverage": covered / line_rev if line_rev else None,
        "products": int(products or 0),
        "products_costed": int(costed or 0),
    }


def profit_by_category(store: Store) -> pd.DataFrame:
    """Gross profit per line category (master category, else the order line's), largest revenue first.

    Returns
    -------
    DataFrame
        ``category`` ("（カテゴリなし）" when none), ``line_revenue``,
        ``covered_revenue``, ``gross_profit`` (None when no cost is known),
        ``margin_rate``, ``coverage``.
    """
    return store.df(
        "WITH " + GROSS_PROFIT_CTE  # noqa: S608 - constant SQL
        + """ SELECT coalesce(category, '（カテゴリなし）') AS category,
                     sum(line_revenue) AS line_revenue,
                     coalesce(sum(line_revenue) FILTER (WHERE cost IS NOT NULL), 0) AS covered_revenue,
                     sum(line_revenue - cost) FILTER (WHERE cost IS NOT NULL) AS gross_profit,
                     sum(line_revenue - cost) FILTER (WHERE cost IS NOT NULL)
                       / nullif(sum(line_revenue) FILTER (WHERE cost IS NOT NULL), 0) AS margin_rate,
                     coalesce(sum(line_revenue) FILTER (WHERE cost IS NOT NULL), 0) / nullif(sum(line_revenue), 0) AS coverage
              FROM line_profit GROUP BY 1 ORDER BY line_revenue DESC, category"""
    )
