"""Baskets: products bought together, products bought next, per-customer recommendations.

Bought together (association rules on orders)
    Over the ``N`` purchases (non-cancelled orders up to ``as_of``) that have
    at least one product line: ``support(X, Y) = n(X and Y) / N``,
    ``confidence(X → Y) = n(X and Y) / n(X)``,
    ``lift(X → Y) = confidence(X → Y) / (n(Y) / N)``, where ``n`` counts
    orders.
Bought next (sequences of a customer's orders)
    ``n(X → Y)`` counts customers who bought Y in the order right after an
    order containing X.  ``confidence = n(X → Y) / n(X)`` with ``n(X)`` the
    customers who bought X in an order that has a next order;
    ``lift = confidence / (n(·→Y) / C)`` with ``n(·→Y)`` the customers who
    bought Y in a next order and ``C`` the customers with a next order.

Scale: items below the minimum count are dropped before pairs are formed
(a pair can never be more frequent than either item), and orders with more
than ``max_items_per_order`` distinct items (wholesale or test orders) form
no pairs, so the self-join stays linear in the number of lines.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from crm_core.analytics.value import (
    PRODUCT_MASTER_CTE,
    PURCHASES_CTE,
    bound,
    has_table,
    latest_order_date,
    period_params,
    product_names_cte,
    query_df,
)
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.purchases import is_customer_purchase

LEVELS = ("product", "category")

REASON_NEXT = "「{}」を購入したお客様が次の注文でよく購入している商品です"
REASON_TOGETHER = "「{}」と一緒によく購入されている商品です"
REASON_POPULAR = "最近よく売れている人気商品です"


def _baskets_sql(level: str, item_ids: bool = False) -> str:
    """CTEs up to the basket tables, all keyed by integers.

    With ``item_ids`` (product level) the items are integers too: ``item_dict``
    numbers the product ids in their sort order, so comparisons and ties
    between items come out as between the ids, and the joins over millions of
    basket lines hash integers instead of text.

    ``customer_keys``: the purchasing customers numbered ``ck`` (in no
    particular order).  ``order_keys``: one row per purchase, ``ok`` =
    ``ck * 2^32`` + the purchase's place in the customer's history (time,
    then source and order id), so the next order of a customer is
    ``ok + 1``; ``has_next`` / ``has_prev`` tell whether the customer has an
    order after / before it.  The window is partitioned by customer: a
    window over the whole shop runs on one core (30 s for 5 M purchases).
    ``order_items``: distinct (order, item) pairs; ``basket_lines``: the same with the order's keys;
    ``basket_sizes``: items per order; ``baskets``: basket lines of orders
    with at most ``$max_items`` items.
    """
    if level not in LEVELS:
        raise InputError("集計の単位は「商品」か「カテゴリ」を選んでください。", detail=f"level={level!r}")
    if level == "product" and item_ids:
        item, master = "d.iid", "JOIN item_dict d ON d.product_id = l.product_id"
    elif level == "product":
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
"""
        + (
            """
        item_dict AS MATERIALIZED (
            SELECT product_id, CAST(row_number() OVER (ORDER BY product_id) AS INTEGER) AS iid
            FROM (SELECT DISTINCT product_id FROM order_lines WHERE product_id IS NOT NULL)
        ),"""
            if item_ids
            else ""
        )
        + """
        customer_keys AS MATERIALIZED (
            SELECT customer_id, CAST(row_number() OVER () AS BIGINT) AS ck
            FROM (SELECT DISTINCT customer_id FROM purchases)
        ),
        order_keys AS MATERIALIZED (
            SELECT p.source, p.order_id, p.ordered_at, c.ck,
                   (c.ck << 32) + row_number() OVER w AS ok,
                   lead(p.order_id) OVER w IS NOT NULL AS has_next,
                   row_number() OVER w > 1 AS has_prev
            FROM purchases p JOIN customer_keys c USING (customer_id)
            WINDOW w AS (PARTITION BY c.ck ORDER BY p.ordered_at, p.source, p.order_id)
        ),
        order_items AS (
            SELECT DISTINCT k.ok, """
        + item  # allowlisted expression
        + """ AS item
            FROM order_lines l
            JOIN order_keys k ON k.source = l.source AND k.order_id = l.order_id
            """
        + master
        + """
            WHERE """
        + item
        + """ IS NOT NULL
        ),
        -- two steps: a DISTINCT over the pair alone keeps its hash table small (2 M customers spill less)
        basket_lines AS MATERIALIZED (
            SELECT i.ok, i.item, k.ck, k.ordered_at, k.has_next, k.has_prev
            FROM order_items i JOIN order_keys k USING (ok)
        ),
        basket_sizes AS MATERIALIZED (SELECT ok, count(*) AS k FROM basket_lines GROUP BY ok),
        baskets AS (
            SELECT b.* FROM basket_lines b JOIN basket_sizes s USING (ok) WHERE s.k <= $max_items
        )"""
    )


# Needs the basket CTEs; defines order_total(n), frequent(item, n_x) and
# together(x, y, n_xy, n_x, n_y, support, confidence, lift) in both directions.
_TOGETHER_SQL = """,
order_total AS (SELECT count(*) AS n FROM basket_sizes),
min_orders AS (SELECT greatest($min_orders, ceil($min_support * n)) AS m FROM order_total),
item_orders AS (SELECT item, count(*) AS n_x FROM basket_lines GROUP BY item),
frequent AS (SELECT item, n_x FROM item_orders WHERE n_x >= (SELECT m FROM min_orders)),
pair_lines AS MATERIALIZED (
    SELECT b.ok, b.item
    FROM baskets b
    JOIN basket_sizes s ON s.ok = b.ok AND s.k >= 2
    SEMI JOIN frequent f ON f.item = b.item
),
pairs AS (
    SELECT a.item AS x, b.item AS y, count(*) AS n_xy
    FROM pair_lines a JOIN pair_lines b ON a.ok = b.ok AND a.item < b.item
    GROUP BY ALL
    HAVING count(*) >= (SELECT m FROM min_orders)
),
directed AS (SELECT x, y, n_xy FROM pairs UNION ALL SELECT y AS x, x AS y, n_xy FROM pairs),
together AS (
    SELECT d.x, d.y, d.n_xy, fx.n_x, fy.n_x AS n_y,
           d.n_xy / t.n AS support,
           d.n_xy / fx.n_x AS confidence,
           d.n_xy * t.n / (fx.n_x * fy.n_x) AS lift
    FROM directed d
    JOIN frequent fx ON fx.item = d.x
    JOIN frequent fy ON fy.item = d.y
    CROSS JOIN order_total t
)"""

# Needs the basket CTEs; defines next_rules(x, y, n_xy, n_x, n_y, confidence, lift).
_NEXT_SQL = """,
next_customers AS (SELECT count(DISTINCT ck) AS c FROM order_keys WHERE has_next),
n_before AS (
    SELECT item, count(DISTINCT ck) AS n FROM baskets WHERE has_next
    GROUP BY item HAVING count(DISTINCT ck) >= $min_customers
),
n_after AS (
    SELECT item, count(DISTINCT ck) AS n FROM baskets WHERE has_prev
    GROUP BY item HAVING count(DISTINCT ck) >= $min_customers
),
before_lines AS (SELECT b.ok, b.ck, b.item FROM baskets b SEMI JOIN n_before n ON n.item = b.item WHERE b.has_next),
after_lines AS (SELECT b.ok, b.item FROM baskets b SEMI JOIN n_after n ON n.item = b.item WHERE b.has_prev),
transitions AS (
    SELECT DISTINCT b1.ck, b1.item AS x, b2.item AS y
    FROM before_lines b1
    JOIN after_lines b2 ON b2.ok = b1.ok + 1
    WHERE $include_same OR b1.item <> b2.item
),
next_pairs AS (
    SELECT x, y, count(*) AS n_xy FROM transitions GROUP BY ALL HAVING count(*) >= $min_customers
),
next_rules AS (
    SELECT p.x, p.y, p.n_xy, nb.n AS n_x, na.n AS n_y,
           p.n_xy / nb.n AS confidence,
           (p.n_xy / nb.n) / (na.n / c.c) AS lift
    FROM next_pairs p
    JOIN n_before nb ON nb.item = p.x
    JOIN n_after na ON na.item = p.y
    CROSS JOIN next_customers c
)"""


def _params(as_of: dt.date | str, **values: Any) -> dict[str, Any]:
    params = period_params(as_of)
    params.update(values)
    return params


def _named(df: pd.DataFrame, level: str) -> pd.DataFrame:
    """Rename the generic item columns to product_* or category columns."""
    if level == "product":
        mapping = {
            "item": "product_id",
            "item_name": "product_name",
            "other": "other_product_id",
            "other_name": "other_product_name",
        }
    else:
        mapping = {"item": "category", "other": "other_category"}
    return df.rename(columns=mapping)


def _item_columns(level: str) -> list[str]:
    if level == "product":
        return ["product_id", "product_name", "other_product_id", "other_product_name"]
    return ["category", "other_category"]


# Final part of the pair queries: names for the ids in ``result(x, y, ...)``.
_RESULT_IDS_SQL = """,
    result_ids AS (SELECT x AS product_id FROM result UNION SELECT y FROM result),"""
_RESULT_NAMES_SQL = _RESULT_IDS_SQL + product_names_cte("result_ids")


def bought_together(
    store: Store,
    as_of: dt.date | str,
    level: str = "product",
    min_support: float = 0.001,
    min_orders: int = 2,
    max_items_per_order: int = 50,
    limit: int = 200,
) -> pd.DataFrame:
    """Pairs of products (categories) bought in the same order.

    Parameters
    ----------
    store : Store
    as_of : date
    level : {"product", "category"}
    min_support : float
        Least share of orders containing both items (0.001 = 0.1%).
    min_orders : int
        Least number of orders containing both items (guards small shops).
    max_items_per_order : int
        Orders with more distinct items form no pairs (they still count in
        ``N`` and in ``n(X)``).
    limit : int
        Most rows returned.

    Returns
    -------
    DataFrame
        One row per direction X → Y, highest lift first: ``product_id``,
        ``product_name``, ``other_product_id``, ``other_product_name`` (or
        ``category``, ``other_category``), ``orders_together`` (n(X and Y)),
        ``orders_with_item`` (n(X)), ``orders_with_other`` (n(Y)),
        ``support``, ``confidence``, ``lift``.
    """
    if not 0 <= min_support <= 1 or min_orders < 1 or max_items_per_order < 2:
        raise InputError("最小支持度は0〜1、最小注文数は1以上、1注文の商品数上限は2以上を指定してください。")
    params = _params(
        as_of,
        min_support=float(min_support),
        min_orders=int(min_orders),
        max_items=int(max_items_per_order),
        limit=int(limit),
    )
    df = query_df(
        store,
        _baskets_sql(level)  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + _TOGETHER_SQL
        + """,
        result AS (SELECT * FROM together ORDER BY lift DESC, n_xy DESC, x, y LIMIT $limit)"""
        + _RESULT_NAMES_SQL
        + """
        SELECT r.x AS item, nx.product_name AS item_name, r.y AS other, ny.product_name AS other_name,
               r.n_xy AS orders_together, r.n_x AS orders_with_item, r.n_y AS orders_with_other,
               r.support, r.confidence, r.lift
        FROM result r
        LEFT JOIN product_names nx ON nx.product_id = r.x
        LEFT JOIN product_names ny ON ny.product_id = r.y
        ORDER BY r.lift DESC, r.n_xy DESC, r.x, r.y
        """,
        params,
    )
    stats = ["orders_together", "orders_with_item", "orders_with_other", "support", "confidence", "lift"]
    columns = _item_columns(level) + stats
    if df.empty:
        return pd.DataFrame(columns=columns)
    for col in stats[:3]:
        df[col] = df[col].astype("int64")
    return _named(df, level)[columns].reset_index(drop=True)


def bought_next(
    store: Store,
    as_of: dt.date | str,
    level: str = "product",
    min_customers: int = 2,
    include_same: bool = False,
    max_items_per_order: int = 50,
    limit: int = 200,
) -> pd.DataFrame:
    """Items of the order right after one containing X ("customers who bought X next bought Y").

    Parameters
    ----------
    store : Store
    as_of : date
    level : {"product", "category"}
    min_customers : int
        Least number of customers behind a pair (and behind each item).
    include_same : bool
        Keep X → X (buying the same item again; see :mod:`crm_core.analytics.cycles`).
    max_items_per_order : int
        Orders with more distinct items are ignored.
    limit : int
        Most rows returned.

    Returns
    -------
    DataFrame
        Highest confidence first: ``product_id``, ``product_name``,
        ``other_product_id``, ``other_product_name`` (or ``category``,
        ``other_category``), ``customers`` (n(X → Y)), ``customers_with_item``
        (n(X)), ``customers_with_other`` (n(·→Y)), ``confidence``, ``lift``.
    """
    if min_customers < 1 or max_items_per_order < 1:
        raise InputError("最小顧客数と1注文の商品数上限は1以上を指定してください。")
    params = _params(
        as_of,
        min_customers=int(min_customers),
        include_same=bool(include_same),
        max_items=int(max_items_per_order),
        limit=int(limit),
    )
    df = query_df(
        store,
        _baskets_sql(level)  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + _NEXT_SQL
        + """,
        result AS (SELECT * FROM next_rules ORDER BY confidence DESC, n_xy DESC, x, y LIMIT $limit)"""
        + _RESULT_NAMES_SQL
        + """
        SELECT r.x AS item, nx.product_name AS item_name, r.y AS other, ny.product_name AS other_name,
               r.n_xy AS customers, r.n_x AS customers_with_item, r.n_y AS customers_with_other,
               r.confidence, r.lift
        FROM result r
        LEFT JOIN product_names nx ON nx.product_id = r.x
        LEFT JOIN product_names ny ON ny.product_id = r.y
        ORDER BY r.confidence DESC, r.n_xy DESC, r.x, r.y
        """,
        params,
    )
    stats = ["customers", "customers_with_item", "customers_with_other", "confidence", "lift"]
    columns = _item_columns(level) + stats
    if df.empty:
        return pd.DataFrame(columns=columns)
    for col in stats[:3]:
        df[col] = df[col].astype("int64")
    return _named(df, level)[columns].reset_index(drop=True)


def build_recommendations(
    store: Store,
    as_of: dt.date | str | None = None,
    min_support: float = 0.0,
    min_orders: int = 2,
    min_customers: int = 2,
    rules_per_item: int = 5,
    popular: int = 20,
    popular_days: int = 90,
    active_days: int = 365,
    max_items_per_order: int = 50,
) -> int:
    """Pick one product per customer that the customer has never bought.

    Candidates, best first:

    1. rules from the products the customer bought: "bought next"
       (:func:`bought_next`) and "bought together" (:func:`bought_together`)
       with lift > 1, the ``rules_per_item`` most confident per product and
       kind; score = confidence (ties: lift, then bought-next first);
    2. for customers no rule reaches, the most popular product (customers in
       the last ``popular_days`` days) they lack; score = its buyers' share of
       all customers.

    Products the customer ever ordered (cancelled orders and orders after
    ``as_of`` included) are never recommended, nor products unsold in the
    ``active_days`` days up to ``as_of``.

    Parameters
    ----------
    store : Store
    as_of : date, optional
        Orders after this day are ignored for the rules; defaults to the
        latest order day.
    min_support, min_orders : float, int
        Thresholds of the bought-together rules.
    min_customers : int
        Threshold of the bought-next rules.
    rules_per_item, popular, popular_days, active_days, max_items_per_order : int

    Returns
    -------
    int
        Rows written to ``customer_recommendations`` (``customer_id``,
        ``product_id``, ``product_name``, ``score``, ``reason``), which is
        replaced as a whole; one row per customer with any candidate left.
    """
    if as_of is None:
        as_of = latest_order_date(store) or dt.date(1970, 1, 1)
    if min(rules_per_item, popular, popular_days, active_days) < 0:
        raise InputError("おすすめの件数・日数は0以上を指定してください。")
    params = _params(
        as_of,
        min_support=float(min_support),
        min_orders=int(min_orders),
        min_customers=int(min_customers),
        include_same=False,
        max_items=int(max_items_per_order),
        per_item=int(rules_per_item),
        popular=int(popular),
        popular_days=int(popular_days),
        active_days=int(active_days),
        reason_next=REASON_NEXT.replace("{}", "\x00"),
        reason_together=REASON_TOGETHER.replace("{}", "\x00"),
        reason_popular=REASON_POPULAR,
    )
    select = (
        _baskets_sql("product", item_ids=True)  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + _TOGETHER_SQL
        + _NEXT_SQL
        + """,
        active_products AS (
            SELECT item FROM basket_lines GROUP BY item HAVING max(ordered_at) >= $end - to_days($active_days)
        ),
        rules AS (
            SELECT x, y, confidence, lift, 1 AS kind FROM next_rules WHERE lift > 1
            UNION ALL
            SELECT x, y, confidence, lift, 2 AS kind FROM together WHERE lift > 1
        ),
        top_rules AS MATERIALIZED (
            SELECT r.*, row_number() OVER (ORDER BY r.confidence DESC, r.lift DESC, r.kind, r.y, r.x) AS rule_rank
            FROM (
                SELECT r.* FROM rules r SEMI JOIN active_products a ON a.item = r.y
                QUALIFY row_number() OVER (PARTITION BY r.x, r.kind ORDER BY r.confidence DESC, r.lift DESC, r.y)
                        <= $per_item
            ) r
        ),
        customer_ids AS (SELECT ck, customer_id FROM customer_keys),
        customer_total AS (SELECT count(*) AS c FROM customer_ids),
        popular_products AS MATERIALIZED (
            SELECT *, row_number() OVER (ORDER BY recent DESC, buyers DESC, product_id) AS pop_rank
            FROM (
                SELECT b.item AS product_id,
                       count(DISTINCT b.ck) FILTER (WHERE b.ordered_at >= $end - to_days($popular_days)) AS recent,
                       count(DISTINCT b.ck) AS buyers
                FROM basket_lines b SEMI JOIN active_products a ON a.item = b.item
                GROUP BY b.item
                ORDER BY recent DESC, buyers DESC, b.item
                LIMIT $popular
            )
        ),
        candidate_products AS (
            SELECT y AS product_id FROM top_rules UNION SELECT product_id FROM popular_products
        ),
        -- (customer, product) as one integer: a join on one BIGINT hashes faster than on two columns.
        -- The purchases' products are in basket_lines already; only the lines of the customers'
        -- other orders (cancelled, undated, after as_of) are joined here.
        owned AS MATERIALIZED (
            SELECT DISTINCT owned_key FROM (
                SELECT (b.ck << 32) + b.item AS owned_key
                FROM basket_lines b
                WHERE b.item IN (SELECT product_id FROM candidate_products)
                UNION ALL
                SELECT (i.ck << 32) + d.iid
                FROM orders o
                JOIN order_lines l ON l.source = o.source AND l.order_id = o.order_id
                JOIN customer_ids i ON i.customer_id = o.customer_id
                JOIN item_dict d ON d.product_id = l.product_id
                WHERE NOT coalesce(""" + is_customer_purchase("o") + """ AND o.ordered_at < $end, FALSE)
                  AND d.iid IN (SELECT product_id FROM candidate_products)
            )
        ),
        customer_items AS (SELECT DISTINCT ck, item FROM basket_lines),
        rule_picks AS MATERIALIZED (
            SELECT ci.ck, min(r.rule_rank) AS rule_rank
            FROM customer_items ci
            JOIN top_rules r ON r.x = ci.item
            ANTI JOIN owned w ON w.owned_key = (ci.ck << 32) + r.y
            GROUP BY ci.ck
        ),
        popular_picks AS (
            SELECT i.ck, min(p.pop_rank) AS pop_rank
            FROM customer_ids i
            CROSS JOIN popular_products p
            ANTI JOIN rule_picks rp ON rp.ck = i.ck
            ANTI JOIN owned w ON w.owned_key = (i.ck << 32) + p.product_id
            GROUP BY i.ck
        ),
        picks AS MATERIALIZED (
            SELECT i.customer_id, dy.product_id, dx.product_id AS because_of, r.confidence AS score, r.kind
            FROM rule_picks rp JOIN top_rules r USING (rule_rank) JOIN customer_ids i USING (ck)
            JOIN item_dict dy ON dy.iid = r.y JOIN item_dict dx ON dx.iid = r.x
            UNION ALL
            SELECT i.customer_id, d.product_id, NULL AS because_of, p.buyers / t.c AS score, 3 AS kind
            FROM popular_picks pp
            JOIN popular_products p USING (pop_rank)
            JOIN item_dict d ON d.iid = p.product_id
            JOIN customer_ids i USING (ck)
            CROSS JOIN customer_total t
        ),
        SELECT customer_id, product_id, because_of, score, kind FROM picks
        """
    )
    # Names in a second statement over the picks only: in one statement the basket
    # tables stay in memory while every line is joined to its order for the names,
    # and a 2 M-customer shop spills gigabytes to disk.
    names = (
        "WITH "  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + PRODUCT_MASTER_CTE
        + """,
        pick_ids AS (SELECT product_id FROM rec_picks UNION SELECT because_of FROM rec_picks),"""
        + product_names_cte("pick_ids")
        + """
        SELECT p.customer_id, p.product_id, n.product_name, CAST(p.score AS DOUBLE) AS score,
               CASE p.kind
                   WHEN 1 THEN replace($reason_next, chr(0), coalesce(b.product_name, p.because_of))
                   WHEN 2 THEN replace($reason_together, chr(0), coalesce(b.product_name, p.because_of))
                   ELSE $reason_popular
               END AS reason
        FROM rec_picks p
        LEFT JOIN product_names n ON n.product_id = p.product_id
        LEFT JOIN product_names b ON b.product_id = p.because_of
        ORDER BY p.customer_id
        """
    )
    with store.transaction() as cur:
        try:
            cur.execute("CREATE OR REPLACE TEMP TABLE rec_picks AS " + select, bound(select, params))
            cur.execute("CREATE OR REPLACE TABLE customer_recommendations AS " + names, bound(names, params))
        finally:
            cur.execute("DROP TABLE IF EXISTS temp.main.rec_picks")
        n = cur.execute("SELECT count(*) FROM customer_recommendations").fetchone()[0]
    return int(n)


def recommendation_summary(store: Store, limit: int = 20) -> pd.DataFrame:
    """The products recommended most often in ``customer_recommendations``.

    Returns
    -------
    DataFrame
        ``product_id``, ``product_name``, ``customers``, ``share`` (of
        customers with a recommendation), ``avg_score``, ``reason`` (the most
        common reason); most customers first.  Empty when the table is
        missing.
    """
    columns = ["product_id", "product_name", "customers", "share", "avg_score", "reason"]
    if not has_table(store, "customer_recommendations"):
        return pd.DataFrame(columns=columns)
    df = store.df(
        """
        SELECT product_id, any_value(product_name) AS product_name, count(*) AS customers,
               count(*) / sum(count(*)) OVER () AS share,
               avg(score) AS avg_score, mode(reason) AS reason
        FROM customer_recommendations
        GROUP BY product_id
        ORDER BY customers DESC, product_id
        LIMIT ?
        """,
        [int(limit)],
    )
    if df.empty:
        return pd.DataFrame(columns=columns)
    df["customers"] = df["customers"].astype("int64")
    return df[columns]


def recommended_customers(store: Store) -> int:
    """Number of rows (customers) in ``customer_recommendations`` (0 when missing)."""
    if not has_table(store, "customer_recommendations"):
        return 0
    return int(store.scalar("SELECT count(*) FROM customer_recommendations"))
