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
"""

from __future__ import annotations

__all__ = ["PURCHASES_CTE", "is_customer_purchase", "is_purchase", "revenue", "revenue_unknown"]


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
