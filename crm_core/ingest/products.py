"""The product master's costs: read and edit what the gross-profit figures use.

Costs come from product imports (RMS item export, Shopify products export with
``Cost per item``, or a generic file) and from the console, where a marketer
fills in a cost per unit or a margin rate per product, or a margin rate per
category.  The gross-profit definition itself lives in
:data:`crm_core.analytics.value.GROSS_PROFIT_CTE`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from crm_core import clock
from crm_core.db import Store
from crm_core.errors import InputError

CONSOLE_SOURCE = "画面で入力"


def _number(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"「{value}」を数値として読めません。", "not a number") from None


def _rate(value: Any) -> float | None:
    """A margin rate given as 0-1 or as percent (35 means 35%)."""
    rate = _number(value)
    if rate is None:
        return None
    if rate > 1:
        rate /= 100
    if not 0 <= rate <= 1:
        raise InputError("粗利率は0〜100%の範囲で入力してください。", "margin rate out of range")
    return rate


def cost_table(store: Store, limit: int = 500) -> pd.DataFrame:
    """Products sold or in the master, best sellers first, with their costs.

    Returns
    -------
    DataFrame
        ``product_id, product_name, category, sku, jan, unit_cost,
        margin_rate, cost_source, revenue`` (line revenue of non-cancelled
        orders; 0 for products never sold).
    """
    return store.df(
        """
        WITH sold AS (
            SELECT l.product_id, arg_max(l.product_name, o.ordered_at) AS line_name,
                   arg_max(l.category, o.ordered_at) AS line_category, arg_max(l.sku, o.ordered_at) AS line_sku,
                   sum(CAST(coalesce(l.line_amount, 0) AS DOUBLE)) AS revenue
            FROM order_lines l JOIN orders o ON o.source = l.source AND o.order_id = l.order_id
            WHERE NOT coalesce(o.cancelled, FALSE) AND l.product_id IS NOT NULL
            GROUP BY l.product_id
        ),
        master AS (SELECT * FROM products WHERE product_id IS NOT NULL
                   QUALIFY row_number() OVER (PARTITION BY product_id ORDER BY coalesce(import_id, 0) DESC) = 1)
        SELECT coalesce(m.product_id, s.product_id) AS product_id,
               coalesce(m.product_name, s.line_name) AS product_name,
               coalesce(m.category, s.line_category) AS category,
               coalesce(m.sku, s.line_sku) AS sku, m.jan,
               CAST(m.unit_cost AS DOUBLE) AS unit_cost, m.margin_rate, m.cost_source,
               coalesce(s.revenue, 0) AS revenue
        FROM master m FULL JOIN sold s ON s.product_id = m.product_id
        ORDER BY revenue DESC, product_id
        LIMIT ?
        """,
        [int(limit)],
    )


def set_product_costs(store: Store, rows: Iterable[dict[str, Any]]) -> int:
    """Save costs entered in the console: ``{"product_id", "unit_cost", "margin_rate"}`` per row.

    Either value may be empty (unknown); a product not yet in the master is
    added with the name and category given in the row.  Returns the number of
    products written.
    """
    clean = []
    for row in rows:
        pid = str(row.get("product_id") or "").strip()
        if not pid:
            continue
        cost = _number(row.get("unit_cost"))
        if cost is not None and cost < 0:
            raise InputError("原価はマイナスにできません。", "negative cost")
        clean.append((pid, cost, _rate(row.get("margin_rate")), row.get("product_name"), row.get("category"),
                      row.get("sku"), row.get("jan")))
    if not clean:
        return 0
    with store.transaction() as cur:
        for pid, cost, rate, name, category, sku, jan in clean:
            exists = cur.execute("SELECT count(*) FROM products WHERE product_id = ?", [pid]).fetchone()[0]
            source = CONSOLE_SOURCE if cost is not None or rate is not None else None
            if exists:
                cur.execute(
                    "UPDATE products SET unit_cost = ?, margin_rate = ?, cost_source = ? WHERE product_id = ?",
                    [cost, rate, source, pid],
                )
            else:
                cur.execute(
                    "INSERT INTO products (product_id, product_name, category, sku, jan, unit_cost, margin_rate, cost_source) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [pid, name, category, sku, jan, cost, rate, source],
                )
    return len(clean)


def category_margins(store: Store) -> pd.DataFrame:
    """Categories seen in orders or the master, with their margin rate (None when not set)."""
    return store.df(
        """
        WITH cats AS (
            SELECT category FROM products WHERE category IS NOT NULL
            UNION SELECT category FROM order_lines WHERE category IS NOT NULL
            UNION SELECT category FROM category_margins
        )
        SELECT c.category, m.margin_rate FROM cats c LEFT JOIN category_margins m USING (category)
        ORDER BY c.category
        """
    )


def set_category_margin(store: Store, category: str, margin_rate: Any) -> None:
    """Set (or, with an empty value, clear) the margin rate of one category (0-1 or percent)."""
    category = str(category or "").strip()
    if not category:
        raise InputError("カテゴリを選んでください。", "empty category")
    rate = _rate(margin_rate)
    with store.transaction() as cur:
        cur.execute("DELETE FROM category_margins WHERE category = ?", [category])
        if rate is not None:
            cur.execute("INSERT INTO category_margins VALUES (?, ?, ?)", [category, rate, clock.now()])


def costs_version(store: Store) -> tuple:
    """Changes whenever a cost, margin rate or category rate changes (a cache key for pages)."""
    return store.fetchone(
        "SELECT (SELECT count(*) FROM products), (SELECT sum(unit_cost) FROM products), (SELECT sum(margin_rate) FROM products), "
        "(SELECT count(*) FROM category_margins), (SELECT sum(margin_rate) FROM category_margins), "
        "(SELECT max(updated_at) FROM category_margins)"
    )
