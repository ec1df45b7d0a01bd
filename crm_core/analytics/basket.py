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


def _basket_ctes(level: str, item_ids: bool = False) -> list[tuple[str, str]]:
    """The basket CTEs in order, as ``(name, "AS [MATERIALIZED] (...)")`` (see :func:`_baskets_sql`)."""
    if level not in LEVELS:
        raise InputError("集計の単位は「商品」か「カテゴリ」を選んでください。", detail=f"level={level!r}")
    if level == "product" and item_ids:
        item, master = "d.iid", "JOIN item_dict d ON d.product_id = l.product_id"
    elif level == "product":
        item, master = "l.product_id", ""
    else:
        item = "coalesce(m.category, l.category)"
        master = "LEFT JOIN product_master m ON m.product_id = l.product_id"
    ctes = [
        ("item_dict", """AS MATERIALIZED (
            SELECT product_id, CAST(row_number() OVER (ORDER BY product_id) AS INTEGER) AS iid
            FROM (SELECT DISTINCT product_id FROM order_lines WHERE product_id IS NOT NULL)
        )"""),
        ("customer_keys", """AS MATERIALIZED (
            SELECT customer_id, CAST(row_number() OVER () AS BIGINT) AS ck, count(*) AS orders
            FROM purchases GROUP BY customer_id
        )"""),
        ("order_keys", """AS (
            SELECT p.source, p.order_id, p.ordered_at, c.ck,
                   (c.ck << 32) + row_number() OVER w AS ok,
                   lead(p.order_id) OVER w IS NOT NULL AS has_next,
                   row_number() OVER w > 1 AS has_prev
            FROM purchases p JOIN customer_keys c USING (customer_id)
            WINDOW w AS (PARTITION BY c.ck ORDER BY p.ordered_at, p.source, p.order_id)
        )"""),
        # One grouping by (order, item) carries the order's keys along (functions of the order), and a
        # window gives the order's size to every line: half the time of a DISTINCT, a group count and
        # two joins back (2.26 M customers).  first_line marks one line per order.  ck and has_prev are
        # read off ok after the grouping (ok = ck * 2^32 + place) rather than carried through it.
        ("basket_lines", "AS MATERIALIZED ("  # noqa: S608 - allowlisted expressions
            + """
            SELECT ok, item, ok >> 32 AS ck, ordered_at, has_next, (ok & 4294967295) > 1 AS has_prev,
                   count(*) OVER (PARTITION BY ok) AS k, row_number() OVER (PARTITION BY ok) = 1 AS first_line
            FROM (
                SELECT k.ok, """ + item + """ AS item, any_value(k.ordered_at) AS ordered_at,
                       any_value(k.has_next) AS has_next
                FROM order_lines l
                JOIN order_keys k ON k.source = l.source AND k.order_id = l.order_id
                """ + master + """
                WHERE """ + item + """ IS NOT NULL
                GROUP BY k.ok, """ + item + """
            )
        )"""),
        ("basket_sizes", "AS (SELECT ok, k FROM basket_lines WHERE first_line)"),
        ("baskets", "AS (SELECT * FROM basket_lines WHERE k <= $max_items)"),
    ]
    return ctes if item_ids else ctes[1:]


def _baskets_sql(level: str, item_ids: bool = False) -> str:
    """CTEs up to the basket tables, all keyed by integers.

    With ``item_ids`` (product level) the items are integers too: ``item_dict``
    numbers the product ids in their sort order, so comparisons and ties
    between items come out as between the ids, and the joins over millions of
    basket lines hash integers instead of text.

    ``customer_keys``: the purchasing customers numbered ``ck`` (in no
    particular order) with their number of purchases ``orders``.  ``order_keys``: one row per purchase, ``ok`` =
    ``ck * 2^32`` + the purchase's place in the customer's history (time,
    then source and order id), so the next order of a customer is
    ``ok + 1``; ``has_next`` / ``has_prev`` tell whether the customer has an
    order after / before it.  The window is partitioned by customer: a
    window over the whole shop runs on one core (30 s for 5 M purchases).
    ``basket_lines``: distinct (order, item) pairs with the order's keys, its size ``k`` and
    ``first_line`` (one per order); ``basket_sizes``: items per order; ``baskets``: basket lines of orders
    with at most ``$max_items`` items.
    """
    return (
        "WITH "  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + PURCHASES_CTE
        + ","
        + PRODUCT_MASTER_CTE
        + ","
        + ",".join(f"\n        {name} {body}" for name, body in _basket_ctes(level, item_ids))
    )


# Needs the basket CTEs; defines order_total(n), frequent(item, n_x) and
# together(x, y, n_xy, n_x, n_y, support, confidence, lift) in both directions.
_TOGETHER_SQL = """,
order_total AS (SELECT count(*) AS n FROM basket_sizes),
min_orders AS (SELECT greatest($min_orders, ceil($min_support * n)) AS m FROM order_total),
item_orders AS (SELECT item, count(*) AS n_x FROM basket_lines GROUP BY item),
frequent AS (SELECT item, n_x FROM item_orders WHERE n_x >= (SELECT m FROM min_orders)),
pair_lines AS MATERIALIZED (
    SELECT b.ok, b.item FROM baskets b SEMI JOIN frequent f ON f.item = b.item WHERE b.k >= 2
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

# Needs the basket CTEs; defines next_items(ck, item, before, after): whether the customer has the item in
# a basket with a next (before) or a previous (after) purchase -- one grouping serves both counts of
# distinct customers.
_NEXT_ITEMS_SQL = """,
next_items AS (
    SELECT ck, item, bool_or(has_next) AS before, bool_or(has_prev) AS after
    FROM baskets WHERE has_next OR has_prev GROUP BY ck, item
)"""

# Needs the basket CTEs and next_items; defines next_rules(x, y, n_xy, n_x, n_y, confidence, lift).
_NEXT_SQL = """,
next_customers AS (SELECT count(*) AS c FROM customer_keys WHERE orders >= 2),
n_before AS (SELECT item, count(*) AS n FROM next_items WHERE before GROUP BY item HAVING count(*) >= $min_customers),
n_after AS (SELECT item, count(*) AS n FROM next_items WHERE after GROUP BY item HAVING count(*) >= $min_customers),
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
        + _NEXT_ITEMS_SQL
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
    with store.transaction() as cur:
        try:
            if cur.execute("SELECT count(*) FROM (FROM order_lines WHERE product_id IS NOT NULL LIMIT 1)").fetchone()[0]:
                _stage_picks(cur, params)
            else:  # nothing to recommend from (a narrow order file): an empty table, without numbering every order
                cur.execute(
                    "CREATE OR REPLACE TEMP TABLE rec_picks AS SELECT o.customer_id, l.product_id,"
                    " l.product_id AS because_of, CAST(NULL AS DOUBLE) AS score, 0 AS kind"
                    " FROM orders o, order_lines l LIMIT 0"
                )
            cur.execute("CREATE OR REPLACE TABLE customer_recommendations AS " + _NAMES_SQL, bound(_NAMES_SQL, params))
        finally:
            for name in _REC_TABLES:
                cur.execute("DROP TABLE IF EXISTS temp.main." + name)
        n = cur.execute("SELECT count(*) FROM customer_recommendations").fetchone()[0]
    return int(n)


# Names in a statement over the picks only: joining every line to its order for the names while
# the basket tables are being computed competes for memory (a 2 M-customer shop spilled gigabytes).
_NAMES_SQL = (
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

#: Customers whose candidates are listed in one statement (about 10 rows per product they bought):
#: small enough that no hash table of the statement spills with the default memory limit.
RETRY_SLICE = 250_000

# The temporary tables of one build (dropped at its end), in the order they are made.
_REC_TABLES = (
    "rec_item_dict", "rec_customer_keys", "rec_basket_lines",
    "rec_customer_items", "rec_active", "rec_top_rules", "rec_popular", "rec_candidates", "rec_first", "rec_other_owned", "rec_best",
    "rec_retry", "rec_retry_picks", "rec_picks",
)
# Basket CTEs made into temporary tables one statement each: DuckDB then knows their sizes and
# builds its hash tables on the small side (in one statement it misjudged a 48.8 M-row join as
# 28 rows, hashed that side and spilled 4.3 GB at 2.26 M customers).  order_keys is not kept: only
# basket_lines reads it, and its text keys would take a sixth of the memory limit from the later
# statements (they spilled); the customers with a next order are counted on customer_keys.
_STAGED = ("item_dict", "customer_keys", "basket_lines")


def _with_staged(upto: str | None = None) -> str:
    """``WITH`` purchases, product master and the basket CTEs: the staged ones read from their tables.

    With ``upto`` only the CTEs up to that one (the statement that makes its table).
    """
    parts = [PURCHASES_CTE, PRODUCT_MASTER_CTE]
    for name, body in _basket_ctes("product", item_ids=True):
        if name in _STAGED and name != upto:
            # NOT MATERIALIZED: read the table where it is used; DuckDB would otherwise copy a table read
            # by several CTEs (the basket lines: 8.9 M rows at 2 M customers) into memory first.
            parts.append(f"\n{name} AS NOT MATERIALIZED (FROM rec_{name})")  # noqa: S608 - names written in code
        else:
            parts.append(f"\n{name} {body}")
        if name == upto:
            break
    return "WITH " + ",".join(parts)


def _stage_picks(cur: Any, params: dict[str, Any]) -> None:
    """Fill the temporary table ``rec_picks`` (customer_id, product_id, because_of, score, kind).

    Every candidate of a customer has a rank ``pos``: the top rules (``rule_rank``) first, then the popular
    products (``rules + pop_rank``), so the pick is the best-ranked candidate the customer does not
    own — the same as "the best rule left, else the most popular product left".  Most customers own
    few products, so the best candidate overall (one join of the basket lines with each product's
    best rule, then one ownership check per customer) is usually left: only the customers who own
    it (``rec_retry``) have all their candidates listed, a slice of customers at a time.
    """

    def run(sql: str, **more: Any) -> None:
        cur.execute(sql, bound(sql, {**params, **more}))

    def make(name: str, sql: str) -> None:
        run(f"CREATE OR REPLACE TEMP TABLE {name} AS " + sql)

    for name in _STAGED:
        make(f"rec_{name}", _with_staged(name) + f"\nSELECT * FROM {name}")  # noqa: S608 - names written in code
    # Each customer's products, once: for the bought-next counts (next_items), the popular products,
    # the candidates and what the customer owns.
    make(
        "rec_customer_items",
        """
        SELECT ck, item, max(ordered_at) AS last_at,
               bool_or(has_next AND k <= $max_items) AS before, bool_or(has_prev AND k <= $max_items) AS after
        FROM rec_basket_lines GROUP BY ck, item
        """,
    )
    make(
        "rec_active",
        "SELECT item FROM rec_customer_items GROUP BY item HAVING max(last_at) >= $end - to_days($active_days)",
    )
    rules = (
        _with_staged()  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + """,
        next_items AS (SELECT ck, item, before, after FROM rec_customer_items WHERE before OR after),
        active_products AS (FROM rec_active)"""
        + _TOGETHER_SQL
        + _NEXT_SQL
        + """,
        rules AS (
            SELECT x, y, confidence, lift, 1 AS kind FROM next_rules WHERE lift > 1
            UNION ALL
            SELECT x, y, confidence, lift, 2 AS kind FROM together WHERE lift > 1
        )
        SELECT r.*, row_number() OVER (ORDER BY r.confidence DESC, r.lift DESC, r.kind, r.y, r.x) AS rule_rank
        FROM (
            SELECT r.* FROM rules r SEMI JOIN active_products a ON a.item = r.y
            QUALIFY row_number() OVER (PARTITION BY r.x, r.kind ORDER BY r.confidence DESC, r.lift DESC, r.y)
                    <= $per_item
        ) r
        """
    )
    make("rec_top_rules", rules)
    make(
        "rec_popular",
        """
        SELECT *, (SELECT count(*) FROM rec_top_rules) + row_number() OVER (ORDER BY recent DESC, buyers DESC, product_id) AS pos
        FROM (
            SELECT b.item AS product_id,
                   count(*) FILTER (WHERE b.last_at >= $end - to_days($popular_days)) AS recent,
                   count(*) AS buyers
            FROM rec_customer_items b SEMI JOIN rec_active a ON a.item = b.item
            GROUP BY b.item
            ORDER BY recent DESC, buyers DESC, b.item
            LIMIT $popular
        )
        """,
    )
    # Every candidate as (x = the product that leads to it or NULL for a popular one, y, pos).
    make(
        "rec_candidates",
        """
        SELECT x, y, rule_rank AS pos FROM rec_top_rules
        UNION ALL
        SELECT NULL, product_id, pos FROM rec_popular
        """,
    )
    make("rec_first", "SELECT x, min(pos) AS pos FROM rec_candidates WHERE x IS NOT NULL GROUP BY x")
    # Products of the customers' other orders (cancelled, undated, after as_of): owned, never recommended.
    make(
        "rec_other_owned",
        "SELECT DISTINCT"  # noqa: S608 - a fixed predicate from crm_core.purchases
        + """ (i.ck << 32) + d.iid AS owned_key
        FROM orders o
        JOIN order_lines l ON l.source = o.source AND l.order_id = o.order_id
        JOIN rec_customer_keys i ON i.customer_id = o.customer_id
        JOIN rec_item_dict d ON d.product_id = l.product_id
        WHERE NOT coalesce(""" + is_customer_purchase("o") + """ AND o.ordered_at < $end, FALSE)
          AND d.iid IN (SELECT y FROM rec_candidates)
        """,
    )
    # Each customer's best candidate, owned or not.
    make(
        "rec_best",
        """
        WITH by_rule AS (
            SELECT b.ck, min(f.pos) AS pos FROM rec_customer_items b JOIN rec_first f ON f.x = b.item GROUP BY b.ck
        )
        SELECT c.ck, least(r.pos, (SELECT min(pos) FROM rec_popular)) AS pos
        FROM rec_customer_keys c LEFT JOIN by_rule r USING (ck)
        WHERE r.pos IS NOT NULL OR EXISTS (SELECT 1 FROM rec_popular)
        """,
    )
    # The customers who own their best candidate.
    make(
        "rec_retry",
        """
        WITH best_keys AS (
            SELECT b.ck, (b.ck << 32) + c.y AS owned_key
            FROM rec_best b JOIN rec_candidates c USING (pos)
        )
        SELECT ck FROM best_keys k
        WHERE k.owned_key IN (SELECT owned_key FROM rec_other_owned)
           OR k.owned_key IN (SELECT (ck << 32) + item FROM rec_customer_items)
        """,
    )
    retry = cur.execute("SELECT count(*) FROM rec_retry").fetchone()[0]
    make("rec_retry_picks", "SELECT ck, pos FROM rec_best WHERE FALSE")
    # Their candidates (about 10 per product they bought, plus the popular ones) in slices that fit in memory.
    slices = max(1, -(-retry // RETRY_SLICE))
    for part in range(slices):
        run(
            """
            INSERT INTO rec_retry_picks
            WITH who AS (SELECT ck FROM rec_retry WHERE ck % $slices = $part),
            owned AS (
                SELECT DISTINCT owned_key FROM (
                    SELECT (b.ck << 32) + b.item AS owned_key FROM rec_customer_items b SEMI JOIN who w ON w.ck = b.ck
                    UNION ALL
                    SELECT owned_key FROM rec_other_owned WHERE (owned_key >> 32) % $slices = $part
                )
            ),
            items AS (SELECT b.ck, b.item FROM rec_customer_items b SEMI JOIN who w ON w.ck = b.ck),
            candidates AS (
                SELECT i.ck, c.y, c.pos FROM items i JOIN rec_candidates c ON c.x = i.item
                UNION ALL
                SELECT w.ck, p.product_id, p.pos FROM who w CROSS JOIN rec_popular p
            )
            SELECT c.ck, min(c.pos) AS pos
            FROM candidates c
            ANTI JOIN owned o ON o.owned_key = (c.ck << 32) + c.y
            GROUP BY c.ck
            """,
            slices=slices,
            part=part,
        )
    make(
        "rec_picks",
        """
        WITH picks AS (
            SELECT ck, pos FROM rec_best ANTI JOIN rec_retry USING (ck)
            UNION ALL
            SELECT ck, pos FROM rec_retry_picks
        )
        SELECT i.customer_id, dy.product_id,
               dx.product_id AS because_of,
               coalesce(r.confidence, p.buyers / (SELECT count(*) FROM rec_customer_keys)) AS score,
               coalesce(r.kind, 3) AS kind
        FROM picks k
        JOIN rec_customer_keys i USING (ck)
        JOIN rec_candidates c USING (pos)
        LEFT JOIN rec_top_rules r ON r.rule_rank = k.pos
        LEFT JOIN rec_popular p ON p.pos = k.pos
        JOIN rec_item_dict dy ON dy.iid = c.y
        LEFT JOIN rec_item_dict dx ON dx.iid = c.x
        """,
    )


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
