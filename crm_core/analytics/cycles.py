"""Repurchase cycles: how many days customers take to buy the same product again.

An *interval* is the number of days between two consecutive purchase days on
which the same customer bought the same product (or a product of the same
category).  Per product (category) the cycle is the median interval, its
spread the inter-quartile range.

A customer is *due* for a product when their last purchase of it plus their
cycle falls within the next ``within_days`` days of ``as_of`` (both ends
included).  The cycle is the customer's own median interval when they have
at least ``personal_min_intervals`` intervals for it, otherwise the
product's median (FACTS.md §7: measure the real interval per customer).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from crm_core.analytics.value import PRODUCT_MASTER_CTE, PURCHASES_CTE, period_params, product_name_map, query_df
from crm_core.db import Store
from crm_core.errors import InputError

LEVELS = ("product", "category")
PERSONAL = "本人の周期"
ITEM_MEDIAN = "商品の中央値"


def _check(level: str, within_days: int, min_intervals: int) -> None:
    if level not in LEVELS:
        raise InputError("集計の単位は「商品」か「カテゴリ」を選んでください。", detail=f"level={level!r}")
    if within_days < 0 or min_intervals < 1:
        raise InputError("日数は0以上、購入間隔の件数は1以上を指定してください。")


def cycles_sql(level: str) -> str:
    """CTEs up to ``due_dates``: one row per (customer, item) of items with a cycle.

    ``seq`` numbers each customer's purchase days of an item (``gap`` = days
    since the previous one, ``is_last`` marks the latest); ``items`` holds the
    per-item statistics, ``own`` the customers' own median intervals.
    """
    if level == "product":
        item, master = "l.product_id", ""
    else:
        item = "coalesce(m.category, l.category)"
        master = "LEFT JOIN product_master m ON m.product_id = l.product_id"
    return (
        "WITH "  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + PURCHASES_CTE
        + ","
        + PRODUCT_MASTER_CTE
        + """,
        buys AS (
            SELECT DISTINCT p.customer_id, """
        + item  # allowlisted expression
        + """ AS item, p.order_date
            FROM order_lines l
            JOIN purchases p ON p.source = l.source AND p.order_id = l.order_id
            """
        + master
        + """
            WHERE """
        + item
        + """ IS NOT NULL
        ),
        seq AS MATERIALIZED (
            SELECT customer_id, item, order_date,
                   order_date - lag(order_date) OVER w AS gap,
                   lead(order_date) OVER w IS NULL AS is_last,
                   count(*) OVER (PARTITION BY customer_id, item) - 1 AS own_intervals
            FROM buys
            WINDOW w AS (PARTITION BY customer_id, item ORDER BY order_date)
        ),
        items AS MATERIALIZED (
            SELECT item,
                   count(gap) AS intervals,
                   count(*) FILTER (WHERE is_last) AS buyers,
                   count(*) FILTER (WHERE is_last AND own_intervals > 0) AS repeat_customers,
                   median(gap) AS median_days,
                   quantile_cont(gap, 0.25) AS q1_days,
                   quantile_cont(gap, 0.75) AS q3_days
            FROM seq
            GROUP BY item
            HAVING count(gap) >= $min_intervals
        ),
        own AS (
            SELECT customer_id, item, median(gap) AS own_median
            FROM seq
            WHERE own_intervals >= $personal_min AND gap IS NOT NULL
            GROUP BY customer_id, item
        ),
        due_dates AS MATERIALIZED (
            SELECT s.customer_id, s.item, s.order_date AS last_date, i.median_days,
                   s.own_intervals >= $personal_min AS personal,
                   coalesce(o.own_median, i.median_days) AS cycle_days,
                   CAST(s.order_date + CAST(round(coalesce(o.own_median, i.median_days)) AS INTEGER) AS DATE)
                       AS due_date
            FROM seq s
            JOIN items i ON i.item = s.item
            LEFT JOIN own o ON o.customer_id = s.customer_id AND o.item = s.item
            WHERE s.is_last
        )"""
    )


def repurchase_cycles(
    store: Store,
    as_of: dt.date | str,
    level: str = "product",
    min_intervals: int = 3,
    within_days: int = 14,
    personal_min_intervals: int = 2,
) -> pd.DataFrame:
    """Repurchase cycle per product (or category) and the share of buyers due now.

    Parameters
    ----------
    store : Store
    as_of : date
    level : {"product", "category"}
        Product: ``order_lines.product_id``; category:
        ``coalesce(products.category, order_lines.category)``.
    min_intervals : int
        Items with fewer intervals in total are left out (too few to tell).
    within_days : int
        Horizon of "due now" in days from ``as_of``.
    personal_min_intervals : int
        Intervals a customer needs for their own cycle to be used.

    Returns
    -------
    DataFrame
        One row per item, most intervals first: ``product_id`` and
        ``product_name`` (or ``category``), ``intervals``, ``buyers``,
        ``repeat_customers``, ``repeat_share`` (of buyers), ``median_days``,
        ``q1_days``, ``q3_days``, ``iqr_days``, ``due_customers``,
        ``due_share`` (of buyers).
    """
    _check(level, within_days, min_intervals)
    params = period_params(as_of)
    params.update({"min_intervals": int(min_intervals), "personal_min": int(personal_min_intervals), "within": int(within_days)})
    df = query_df(
        store,
        cycles_sql(level)  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + """,
        due_counts AS (
            SELECT item, count(*) AS due_customers FROM due_dates
            WHERE due_date BETWEEN $as_of AND $as_of + $within
            GROUP BY item
        )
        SELECT i.item, i.intervals, i.buyers, i.repeat_customers,
               i.median_days, i.q1_days, i.q3_days, coalesce(d.due_customers, 0) AS due_customers
        FROM items i
        LEFT JOIN due_counts d ON d.item = i.item
        ORDER BY i.intervals DESC, i.item
        """,
        params,
    )
    if level == "product" and not df.empty:  # names in a second statement (see product_name_map)
        known = product_name_map(store, df["item"])
        df["item_name"] = [known.get(i) or i for i in df["item"]]
    base = ["intervals", "buyers", "repeat_customers", "repeat_share", "median_days", "q1_days", "q3_days"]
    tail = ["iqr_days", "due_customers", "due_share"]
    keys = ["product_id", "product_name"] if level == "product" else ["category"]
    if df.empty:
        return pd.DataFrame(columns=keys + base + tail)
    for col in ("intervals", "buyers", "repeat_customers", "due_customers"):
        df[col] = df[col].astype("int64")
    for col in ("median_days", "q1_days", "q3_days"):
        df[col] = df[col].astype("float64")
    df["repeat_share"] = df["repeat_customers"] / df["buyers"]
    df["iqr_days"] = df["q3_days"] - df["q1_days"]
    df["due_share"] = df["due_customers"] / df["buyers"]
    if level == "product":
        df = df.rename(columns={"item": "product_id", "item_name": "product_name"})
    else:
        df = df.rename(columns={"item": "category"})
    return df[keys + base + tail].reset_index(drop=True)


def _with_names(store: Store, df: pd.DataFrame, level: str) -> pd.DataFrame:
    """Add the customer's ``name`` and (for products) ``item_name`` to due rows."""
    names = query_df(
        store,
        """
        SELECT customer_id, any_value(name) AS name FROM customers
        WHERE customer_id IN (SELECT unnest($ids::VARCHAR[]))
        GROUP BY customer_id
        """,
        {"ids": df["customer_id"].drop_duplicates().tolist()},
    )
    out = df.merge(names, on="customer_id", how="left")
    known = product_name_map(store, out["item"]) if level == "product" else {}
    out["item_name"] = [known.get(i) or i for i in out["item"]]
    return out


def due_customers(
    store: Store,
    as_of: dt.date | str,
    level: str = "product",
    within_days: int = 14,
    min_intervals: int = 3,
    personal_min_intervals: int = 2,
    limit: int | None = 5000,
) -> pd.DataFrame:
    """Customers due to buy a product (category) again in the next ``within_days`` days.

    Parameters
    ----------
    store : Store
    as_of : date
    level : {"product", "category"}
    within_days, min_intervals, personal_min_intervals : int
        As in :func:`repurchase_cycles`.
    limit : int or None
        Most rows returned (earliest due first); None for all.

    Returns
    -------
    DataFrame
        ``customer_id``, ``name`` (from ``customers``, may be missing),
        ``product_id`` and ``product_name`` (or ``category``),
        ``last_purchased_on`` (date), ``cycle_days``, ``cycle_basis``
        ('本人の周期' | '商品の中央値'), ``due_date``, ``days_until_due``;
        earliest due first.
    """
    _check(level, within_days, min_intervals)
    params = period_params(as_of)
    params.update(
        {
            "min_intervals": int(min_intervals),
            "personal_min": int(personal_min_intervals),
            "within": int(within_days),
            "limit": None if limit is None else int(limit),
            "personal_label": PERSONAL,
            "item_label": ITEM_MEDIAN,
        }
    )
    # Two statements: the due rows first (the window over every purchase day is the
    # heavy part and its memory is released when it ends), then names for those rows
    # only.  As one statement, a 2 M-customer shop ran out of DuckDB's memory limit.
    df = query_df(
        store,
        cycles_sql(level)  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + """
        SELECT customer_id, item, last_date AS last_purchased_on, cycle_days,
               CASE WHEN personal THEN $personal_label ELSE $item_label END AS cycle_basis,
               due_date, due_date - $as_of AS days_until_due
        FROM due_dates
        WHERE due_date BETWEEN $as_of AND $as_of + $within
        ORDER BY due_date, customer_id, item
        LIMIT $limit
        """,
        params,
    )
    if not df.empty:
        df = _with_names(store, df, level)
    keys = ["product_id", "product_name"] if level == "product" else ["category"]
    columns = [
        "customer_id",
        "name",
        *keys,
        "last_purchased_on",
        "cycle_days",
        "cycle_basis",
        "due_date",
        "days_until_due",
    ]
    if df.empty:
        return pd.DataFrame(columns=columns)
    if level == "product":
        df = df.rename(columns={"item": "product_id", "item_name": "product_name"})
    else:
        df = df.rename(columns={"item": "category"})
    df["last_purchased_on"] = pd.to_datetime(df["last_purchased_on"]).dt.date
    df["due_date"] = pd.to_datetime(df["due_date"]).dt.date
    df["cycle_days"] = df["cycle_days"].astype("float64")
    df["days_until_due"] = df["days_until_due"].astype("int64")
    return df[columns].reset_index(drop=True)
