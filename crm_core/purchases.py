"""What counts as a purchase and what it is worth: the one definition every stage reads.

A *purchase* is an order that is not cancelled and has an order time; a
*customer's purchase* also has a customer id (the importer gives every order
one; hand-made stores may not).  Its *revenue* is the order's total (``total_amount``: Rakuten 合計金額 —
items + tax + shipping, before points and coupons — or Shopify ``Total``); a
generic file without a total falls back to the items amount, and an order with
neither counts 0 yen (the model build warns about those).  Cancelled orders
stay in the store, flagged, and are never counted.

The model build, the analyses, the home page and the sidebar all take these
fragments, so their numbers agree.

*Gross profit* (粗利) of a purchase, per line: ``line_amount − cost``
(merchandise only: shipping, points and coupons are not in it; a coupon is a
campaign cost).  The cost is, first match wins: the product master's
``unit_cost × quantity`` or ``line_amount × (1 − margin_rate)`` for the line's
product id, else for its SKU, else for its JAN code (so a Rakuten item and a
Shopify variant with the same SKU or JAN share one cost), else ``line_amount ×
(1 − category margin rate)``.  A line with none of these has an *unknown*
cost: it is left out of gross profit and counted in ``coverage = costed line
revenue / line revenue`` -- never costed at 0 (:data:`GROSS_PROFIT_CTE`).
"""

from __future__ import annotations

__all__ = ["GROSS_PROFIT_CTE", "PURCHASES_CTE", "gross_profit_cte", "is_customer_purchase", "is_purchase", "revenue", "revenue_unknown"]


def _col(alias: str, name: str) -> str:
    return f"{alias}.{name}" if alias else name


def is_purchase(alias: str = "") -> str:
    """SQL predicate: the order (table alias ``alias``) is a purchase (shop-level sales)."""
    return f"{_col(alias, 'ordered_at')} IS NOT NULL AND NOT coalesce({_col(alias, 'cancelled')}, FALSE)"


def is_customer_purchase(alias: str = "") -> str:
    """SQL predicate: a purchase with a customer (the customer model and the analyses)."""
    return f"{_col(alias, 'customer_id')} IS NOT NULL AND {is_purchase(alias)}"


def revenue(alias: str = "") -> str:
    """SQL expression: the order's revenue in yen (never NULL)."""
    return f"coalesce({_col(alias, 'total_amount')}, {_col(alias, 'item_amount')}, 0)"


def revenue_unknown(alias: str = "") -> str:
    """SQL predicate: neither a total nor an items amount is known (the order counts 0 yen)."""
    return f"({_col(alias, 'total_amount')} IS NULL AND {_col(alias, 'item_amount')} IS NULL)"


# Purchases on or before the as-of day: the CTE every analysis starts from.
# Parameters: $end (the first instant after the as-of day).
PURCHASES_CTE = f"""
purchases AS (
    SELECT o.source, o.order_id, o.customer_id, o.ordered_at,
           CAST(o.ordered_at AS DATE) AS order_date,
           CAST({revenue('o')} AS DOUBLE) AS revenue,
           o.subscription_id, o.subscription_seq
    FROM orders o
    WHERE {is_customer_purchase('o')}
      AND o.ordered_at < $end
)"""  # noqa: S608 - constant fragments

# Gross profit: the one definition (see the module docstring).
# CTEs ``line_profit`` (one row per line of a non-cancelled order) and ``order_profit``
# (one row per such order).  No parameters.  :func:`gross_profit_cte` restricts it to some orders.
_GROSS_PROFIT_CTE = f"""
pm_cost AS (
    SELECT product_id, upper(trim(sku)) AS sku, trim(jan) AS jan,
           CAST(unit_cost AS DOUBLE) AS unit_cost, margin_rate, coalesce(import_id, 0) AS import_id
    FROM products WHERE unit_cost IS NOT NULL OR margin_rate IS NOT NULL
),
pm_by_id AS (SELECT * FROM pm_cost WHERE product_id IS NOT NULL
             QUALIFY row_number() OVER (PARTITION BY product_id ORDER BY import_id DESC) = 1),
pm_by_sku AS (SELECT * FROM pm_cost WHERE sku IS NOT NULL
              QUALIFY row_number() OVER (PARTITION BY sku ORDER BY import_id DESC, product_id) = 1),
pm_by_jan AS (SELECT * FROM pm_cost WHERE jan IS NOT NULL
              QUALIFY row_number() OVER (PARTITION BY jan ORDER BY import_id DESC, product_id) = 1),
pm_category AS (SELECT product_id, arg_max(category, coalesce(import_id, 0)) AS category
                FROM products WHERE product_id IS NOT NULL GROUP BY product_id),
line_profit AS (
    SELECT l.source, l.order_id, l.line_no, l.product_id,
           coalesce(pc.category, l.category) AS category,
           CAST(coalesce(l.line_amount, 0) AS DOUBLE) AS line_revenue,
           CASE
             WHEN coalesce(m1.unit_cost, m2.unit_cost, m3.unit_cost, m4.unit_cost) IS NOT NULL
               THEN coalesce(m1.unit_cost, m2.unit_cost, m3.unit_cost, m4.unit_cost) * coalesce(l.quantity, 1)
             WHEN coalesce(m1.margin_rate, m2.margin_rate, m3.margin_rate, m4.margin_rate) IS NOT NULL
               THEN CAST(coalesce(l.line_amount, 0) AS DOUBLE)
                    * (1 - coalesce(m1.margin_rate, m2.margin_rate, m3.margin_rate, m4.margin_rate))
             WHEN cm.margin_rate IS NOT NULL THEN CAST(coalesce(l.line_amount, 0) AS DOUBLE) * (1 - cm.margin_rate)
           END AS cost
    FROM order_lines l
    JOIN {{orders}} o ON o.source = l.source AND o.order_id = l.order_id AND {is_purchase('o')}
    LEFT JOIN pm_by_id m1 ON m1.product_id = l.product_id
    LEFT JOIN pm_by_sku m2 ON m2.sku = upper(trim(coalesce(l.sku, l.product_id)))
    LEFT JOIN pm_by_jan m3 ON m3.jan = trim(coalesce(l.sku, l.product_id))
    LEFT JOIN pm_by_sku m4 ON m4.sku = upper(trim(l.product_id))
    LEFT JOIN pm_category pc ON pc.product_id = l.product_id
    LEFT JOIN category_margins cm ON cm.category = coalesce(pc.category, l.category)
),
order_profit AS (
    SELECT source, order_id,
           sum(line_revenue) AS line_revenue,
           sum(line_revenue) FILTER (WHERE cost IS NOT NULL) AS covered_revenue,
           sum(line_revenue - cost) FILTER (WHERE cost IS NOT NULL) AS gross_profit,
           bool_and(cost IS NOT NULL) AS fully_costed
    FROM line_profit GROUP BY source, order_id
)"""  # noqa: S608 - constant fragments


def gross_profit_cte(orders: str = "orders") -> str:
    """:data:`GROSS_PROFIT_CTE` over the lines of the orders ``orders`` (a table, or a constant subquery of
    ``orders`` in parentheses, e.g. some customers' orders)."""
    return _GROSS_PROFIT_CTE.replace("{orders}", orders)


GROSS_PROFIT_CTE = gross_profit_cte()
