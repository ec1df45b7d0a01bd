"""The customer model: one row per customer with RFM, ranks, events and predictions.

:func:`rebuild` computes the table ``customer_model`` from the store's
non-cancelled orders up to an ``as_of`` day and stores it; the analyses page,
the segment builder and message templates read that table.  Heavy work stays
in DuckDB; only small per-customer numeric arrays go to numpy for the
BG/NBD and Gamma-Gamma fits (:mod:`crm_core.model.clv`).

Columns of ``customer_model`` (the contract, :data:`COLUMNS`):

profile (from ``customers``)
    ``customer_id, name, email, prefecture, gender, birthday, age`` (full years
    on ``as_of``), ``birthday_month`` (1-12), ``email_opt_in, line_user_id,
    has_line``.
purchases (non-cancelled orders with ``ordered_at`` before ``as_of + 1 day``)
    ``first_order_at, last_order_at`` (JST timestamps), ``orders``,
    ``revenue`` (sum of ``orders.total_amount``, once per order; an empty
    total counts 0 and is reported), ``aov`` (revenue / orders),
    ``recency_days`` (``as_of`` minus the last order's day), ``tenure_days``
    (``as_of`` minus the first order's day), ``avg_days_between_orders``
    (days from the first to the last purchase day divided by the number of
    repeat purchase days; NULL with a single purchase day), ``orders_12m,
    revenue_12m`` (the 365 days ending on ``as_of``).
scores
    ``r_score, f_score, m_score`` (1-5, see :func:`rfm_thresholds`),
    ``rfm_segment`` (see :data:`DEFAULT_RFM_SEGMENTS`), ``rank, next_rank,
    gap_to_next_rank, orders_to_next_rank`` (see :data:`DEFAULT_RANK_THRESHOLDS`).
behaviour
    ``acquisition_event`` ('スーパーSALE', 'お買い物マラソン' or '通常': the sale
    window of the marketer's calendar, :func:`sale_windows`, the first order
    fell in),
    ``first_source`` (source of the first order), ``last_product_id,
    last_product_name, last_category`` (the line of the last order with the
    largest amount, ties by line number; of two orders in the same second
    the later imported one counts as last), ``subscription_status`` ('継続中' if
    any of the customer's subscriptions had a delivery within 1.5 cycles
    before ``as_of``, else '解約'; NULL without subscription orders; the cycle is
    the mean interval between that subscription's deliveries, 30 days with
    only one), ``subscription_deliveries`` (delivered subscription orders,
    at least the highest delivery number seen; 0 without), ``used_coupon``
    (an order with a coupon code or a discount), ``sale_only_buyer`` (at least
    two orders, all inside スーパーSALE / マラソン windows).
predictions (NULL when the models cannot be fitted; the reason is in the report)
    ``p_alive``, ``churn_probability_90d`` (P(no purchase in the next 90
    days)), ``churn_risk`` ('低' < 0.33 <= '中' <= 0.66 < '高'),
    ``expected_orders_365d`` (expected repeat purchase days in the next 365
    days), ``predicted_clv_365d`` (that times the Gamma-Gamma expected spend,
    yen, undiscounted), ``expected_next_order_date`` (``as_of`` + the median
    waiting time: the first day ``d`` in 1..365 with P(no purchase within
    ``d`` days) <= 0.5; NULL if a purchase within a year is less likely
    than not).
``as_of``
    The day the table describes.

BG/NBD inputs follow FACTS.md §8: ``x`` = purchase days - 1 (several orders on
one day count once), ``t_x`` = days from the first to the last purchase day,
``T`` = days from the first purchase day to ``as_of``; Gamma-Gamma uses the
mean spend of the repeat purchase days (day totals, first day excluded).
The fits use at most :data:`FIT_SAMPLE_MAX` customers (a fixed hash sample);
predictions cover everyone.

How it runs: one transaction (a consistent snapshot; the old table stays until
the new one commits) of temp-table steps — ``aggregate`` (one hash aggregation
over ``orders``, sale windows attached by list lookups on the day, purchase
days counted with a per-customer day bitmap), ``orders`` (last product),
``subscriptions``, ``predict`` (numpy: RFM scores by sorted search, and the
BG/NBD / Gamma-Gamma fits evaluated once per distinct ``(x, t_x, T)``) and
``table`` (one ``CREATE OR REPLACE``, the numpy columns paired with
``cm_agg`` by a positional join).
The other tables written are ``customer_model_meta`` (as_of, build time, the
report as JSON).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from crm_core import clock
from crm_core.db import Store, quote_ident
from crm_core.events import rakuten as events
from crm_core.model.predict import _per_customer, kept_fit
from crm_core.model.report import ModelReport, _Params, _Timer
from crm_core.model.settings import OTHER_SEGMENT, RANK_KEYS, rank_basis, rank_thresholds, rfm_segments, rfm_thresholds
from crm_core.model.table import _NOT_CANCELLED, TABLE, _as_date, as_of_default, last_report
from crm_core.purchases import is_customer_purchase, revenue, revenue_unknown

SUBSCRIPTION_GRACE_CYCLES = 1.5
SUBSCRIPTION_DEFAULT_CYCLE_DAYS = 30
SHORT_HISTORY_DAYS = 180

TEMP_TABLES = ("cm_agg", "cm_last", "cm_sub", "cm_touched")


# ---------------------------------------------------------------------------
# Step 1: per-customer aggregates
# ---------------------------------------------------------------------------


def sale_windows(store: Store | None, start: date, end: date,
                 kinds: Sequence[str] = events.SALE_KINDS) -> pd.DataFrame:
    """The calendar events of ``kinds`` overlapping ``start .. end``.

    By default the スーパーSALE and お買い物マラソン windows the model labels
    orders with; the segment builder asks for point days too.

    The calendar's effective events (bundled and generated rows, the
    marketer's corrections and own sale rows, hidden rows left out), so a
    sale date fixed on the calendar page reaches ``acquisition_event`` and
    ``sale_only_buyer`` at the next rebuild.  Without a store, the generated
    Rakuten calendar (:func:`crm_core.events.rakuten.rakuten_events`).
    """
    if store is None:
        df = events.rakuten_events(start, end)
    else:
        from crm_core.events import calendar

        df = calendar.list_events(store, start, end)
    return df[df["kind"].isin(list(kinds))].reset_index(drop=True)


def _sale_day_pieces(start: date, end: date, store: Store | None = None) -> dict[str, list]:
    """Sale-window pieces per day: (day, from_us, to_us, code) with µs of the day.

    Code 1 = スーパーSALE, 2 = マラソン.  Only days touching a window appear;
    pieces of a day are disjoint (:func:`crm_core.events.rakuten.sale_timeline`).
    """
    timeline = events.sale_timeline(sale_windows(store, start, end))
    codes = {"super_sale": 1, "marathon": 2}
    out: dict[str, list] = {"d": [], "t0": [], "t1": [], "k": []}
    day_us = 86_400_000_000
    for (seg_start, label), nxt in zip(timeline, timeline[1:] + [(datetime.max, None)]):
        if label is None:
            continue
        seg_end = nxt[0]
        day = max(seg_start.date(), start)
        while day <= end and datetime.combine(day, datetime.min.time()) < seg_end:
            midnight = datetime.combine(day, datetime.min.time())
            lo = max(seg_start, midnight)
            hi = min(seg_end, midnight + timedelta(days=1))
            if hi > lo:
                out["d"].append(day)
                out["t0"].append((lo - midnight) // timedelta(microseconds=1))
                out["t1"].append(min(day_us, (hi - midnight) // timedelta(microseconds=1)))
                out["k"].append(codes[label])
            day += timedelta(days=1)
    return out


def _sale_lookup(pieces: dict[str, list], first_day: date, span: int) -> tuple[str, dict[str, list]]:
    """A CASE expression labelling an order with its sale code by list lookups.

    Piece ``j`` of day ``i`` (1-based, counted from ``first_day``) is
    ``[$sale_a{j}[i], $sale_b{j}[i])`` in µs of the day with code
    ``$sale_k{j}[i]``; days without a piece hold empty ranges.  Reading a
    constant list by the order's day index is vectorised and cheaper than a
    join; the expression has as many branches as the busiest day has pieces
    (one or two for Rakuten's calendar).  Expects the columns ``i`` (day index)
    and ``us`` (µs since midnight).
    """
    days = span + 1
    per_day: dict[int, list[tuple[int, int, int]]] = {}
    for d, t0, t1, k in zip(pieces["d"], pieces["t0"], pieces["t1"], pieces["k"]):
        index = (d - first_day).days
        if 0 <= index < days:
            per_day.setdefault(index, []).append((t0, t1, k))
    if not per_day:
        return "CAST(0 AS TINYINT)", {}
    depth = max(len(v) for v in per_day.values())
    params: dict[str, list] = {}
    branches = []
    for j in range(depth):
        a, b, k = [0] * days, [0] * days, [0] * days
        for index, items in per_day.items():
            if j < len(items):
                a[index], b[index], k[index] = items[j]
        params[f"sale_a{j}"], params[f"sale_b{j}"], params[f"sale_k{j}"] = a, b, k
        branches.append(
            f"WHEN us >= ($sale_a{j}::BIGINT[])[i] AND us < ($sale_b{j}::BIGINT[])[i] "
            f"THEN ($sale_k{j}::TINYINT[])[i]"
        )
    return "CASE " + " ".join(branches) + " ELSE CAST(0 AS TINYINT) END", params


_AGGREGATE_SQL = """
CREATE OR REPLACE TEMP TABLE cm_agg AS
WITH f AS (
    SELECT rowid AS row_no, customer_id, source, ordered_at, CAST(ordered_at AS DATE) AS d,
           total_amount, item_amount, coupon_code, discount_amount,
           CAST(CAST(ordered_at AS DATE) - $d0 AS INTEGER) + 1 AS i,
           epoch_us(ordered_at) - epoch_us(date_trunc('day', ordered_at)) AS us
    FROM orders
    WHERE """ + is_customer_purchase() + """ AND ordered_at < $end_ts{scope}
),
o AS (
    SELECT row_no, customer_id, source, ordered_at, d,
           """ + revenue() + """ AS amt,
           CAST(""" + revenue_unknown() + """ AS INTEGER) AS amt_missing,
           coalesce(coupon_code, '') <> '' OR coalesce(discount_amount, 0) > 0 AS coupon,
           {sale_code} AS k
    FROM f
)
SELECT customer_id,
       count(*) AS orders,
       CAST(sum(amt) AS DECIMAL(18, 2)) AS revenue,
       min(ordered_at) AS first_at, max(ordered_at) AS last_at,
       CAST(min(ordered_at) AS DATE) AS first_d, CAST(max(ordered_at) AS DATE) AS last_d,
       {n_days} AS n_days,
       CAST(arg_min(amt, ordered_at) AS DOUBLE) AS first_day_amt,
       count(*) FILTER (WHERE d >= $start12) AS orders_12m,
       CAST(coalesce(sum(amt) FILTER (WHERE d >= $start12), 0) AS DECIMAL(18, 2)) AS revenue_12m,
       count(*) FILTER (WHERE k > 0) AS sale_n,
       bool_or(coupon) AS coupon,
       arg_min(k, ordered_at) AS first_k,
       arg_min(source, ordered_at) AS first_source,
       -- the last order's row id, ties broken by row id: (µs since 1970) * 2^40 + rowid
       max((CAST(epoch_us(ordered_at) AS HUGEINT) << 40) + row_no) AS last_key,
       sum(amt_missing) AS amt_missing
FROM o GROUP BY customer_id
"""  # noqa: S608 - constant fragments of crm_core.purchases
# Rows of cm_agg are keyed by the temp table's rowid ("rid" below): a window
# row_number() over 2 M customers would cost a second in one thread.
# Purchase days per customer: a bitmap of days is exact and several times
# faster than count(DISTINCT); beyond ten years of history its state
# (one bit per day per customer) grows large, so count(DISTINCT) is used.
_DAYS_BITMAP = "bit_count(bitstring_agg(CAST(d - $d0 AS INTEGER), 0, $span))"
_DAYS_DISTINCT = "count(DISTINCT d)"
BITMAP_MAX_DAYS = 3660

# Spend of the first purchase day, for customers with several orders on one day
# (the aggregate above took the first order's amount).
_FIRST_DAY_FIX_SQL = """
UPDATE cm_agg SET first_day_amt = f.amt
FROM (
    SELECT o.customer_id, CAST(sum(""" + revenue("o") + """) AS DOUBLE) AS amt
    FROM orders AS o
    JOIN cm_agg AS a
      ON a.customer_id = o.customer_id AND a.orders > a.n_days
     AND CAST(o.ordered_at AS DATE) = a.first_d
    WHERE """ + is_customer_purchase("o") + """
    GROUP BY o.customer_id
) AS f
WHERE cm_agg.customer_id = f.customer_id
"""  # noqa: S608 - constant fragments of crm_core.purchases


def _events_range_start(store: Store, end_ts: datetime) -> date | None:
    return store.scalar(
        "SELECT CAST(min(ordered_at) AS DATE) FROM orders WHERE " + _NOT_CANCELLED + " AND ordered_at < ?",  # noqa: S608
        [end_ts],
    )


_SCOPE = " AND customer_id IN (SELECT customer_id FROM cm_touched)"
"""Restricts a scan of ``orders`` to the customers in the temp table ``cm_touched``."""


def aggregate_orders(store: Store, as_of: date, scoped: bool = False) -> int:
    """Step 1 of :func:`rebuild`: per-customer aggregates into the temp table ``cm_agg``.

    One hash aggregation over ``orders``: non-cancelled orders before
    ``as_of + 1 day`` are labelled with the sale window they fall in and
    summed per customer (orders, revenue, first/last order, purchase days,
    12-month figures, sale orders, coupon use, first source, last order).
    A small second pass fixes the first-day spend of customers who ordered
    several times on one day.  ``scoped``: only the customers of the temp
    table ``cm_touched``.  Exposed for the benchmark.

    Returns
    -------
    int
        Number of customers.
    """
    end_ts = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
    first_day = _events_range_start(store, end_ts) or as_of
    span = max((as_of - first_day).days, 0)
    sale_code, sale_params = _sale_lookup(_sale_day_pieces(first_day, as_of, store), first_day, span)
    params: dict[str, Any] = {
        **sale_params, "end_ts": end_ts, "start12": as_of - timedelta(days=364), "d0": first_day,
    }
    sql = _AGGREGATE_SQL.replace("{sale_code}", sale_code).replace("{scope}", _SCOPE if scoped else "")
    if span <= BITMAP_MAX_DAYS:
        sql = sql.replace("{n_days}", _DAYS_BITMAP)
        params["span"] = max(span, 1)
    else:
        sql = sql.replace("{n_days}", _DAYS_DISTINCT)
    store.execute(sql, params)
    store.execute(_FIRST_DAY_FIX_SQL)
    return int(store.scalar("SELECT count(*) FROM cm_agg"))


# ---------------------------------------------------------------------------
# Step 2: last product, subscriptions
# ---------------------------------------------------------------------------

_ORDERS_SQL = """
CREATE OR REPLACE TEMP TABLE cm_last AS
WITH last_order AS (
    SELECT a.rowid AS rid, o.source, o.order_id
    FROM orders AS o
    JOIN cm_agg AS a ON o.rowid = CAST(a.last_key - ((a.last_key >> 40) << 40) AS BIGINT)
)
SELECT lo.rid,
       arg_max({'product_id': l.product_id, 'product_name': l.product_name, 'category': l.category},
               {'amount': coalesce(l.line_amount, l.unit_price * l.quantity, 0), 'line': -l.line_no}) AS p
FROM last_order AS lo
JOIN order_lines AS l ON l.source = lo.source AND l.order_id = lo.order_id
GROUP BY lo.rid
"""
# The line's own name and category are stored with the aggregates; the product
# master's (the latest import's) fills the gaps when the model table is written,
# so a products file imported since is used for every customer.
_PRODUCTS_SQL = """
    SELECT product_id,
           arg_max(product_name, coalesce(import_id, 0)) AS product_name,
           arg_max(category, coalesce(import_id, 0)) AS category
    FROM products WHERE product_id IS NOT NULL GROUP BY product_id
"""

_SUBSCRIPTIONS_SQL = """
CREATE OR REPLACE TEMP TABLE cm_sub AS
WITH s AS (
    SELECT customer_id, source, subscription_id,
           count(*) AS n, max(subscription_seq) AS max_seq,
           min(CAST(ordered_at AS DATE)) AS first_d, max(CAST(ordered_at AS DATE)) AS last_d
    FROM orders
    WHERE """ + is_customer_purchase() + """
      AND ordered_at < $end_ts AND coalesce(subscription_id, '') <> ''{scope}
    GROUP BY customer_id, source, subscription_id
)
-- a subscription is active on the as-of day when as_of - last_d <= grace * cycle, i.e.
-- (whole days) as_of <= last_d + floor(grace * cycle): the last such day is stored
SELECT customer_id,
       max(last_d + CAST(floor($grace * CASE
           WHEN n >= 2 AND last_d > first_d THEN date_diff('day', first_d, last_d) / (n - 1)
           ELSE $default_cycle END) AS INTEGER)) AS active_until,
       sum(greatest(n, coalesce(max_seq, 0))) AS deliveries
FROM s GROUP BY customer_id
"""  # noqa: S608 - constant fragments of crm_core.purchases


# ---------------------------------------------------------------------------
# Step 4: scores, segments, ranks and the final table
# ---------------------------------------------------------------------------


def _segment_sql(p: _Params, rules: Sequence[dict[str, Any]]) -> str:
    parts = ["CASE"]
    for rule in rules:
        parts.append(
            f" WHEN r_score BETWEEN {p(rule['r_min'])} AND {p(rule['r_max'])}"
            f" AND f_score BETWEEN {p(rule['f_min'])} AND {p(rule['f_max'])}"
            f" AND m_score BETWEEN {p(rule['m_min'])} AND {p(rule['m_max'])}"
            f" THEN {p(rule['name'])}"
        )
    parts.append(f" ELSE {p(OTHER_SEGMENT)} END")
    return "".join(parts)


def _rank_sql(p: _Params, ranks: Sequence[dict[str, Any]]) -> tuple[str, str, str, str]:
    """CASE expressions for rank, next rank, yen gap and orders gap (one of the gaps is NULL)."""
    basis = rank_basis(ranks)
    column, key = basis, RANK_KEYS[basis]  # a constant column name, never user input
    typed = "BIGINT" if basis == "orders_12m" else "DECIMAL(18, 2)"
    mins = [p(r[key]) for r in ranks]
    names = [p(r["name"]) for r in ranks]
    rank = ["CASE"]
    nxt = ["CASE"]
    gap = ["CASE"]
    for i, (lo, name) in enumerate(zip(mins, names)):
        cond = f" WHEN {column} >= CAST({lo} AS {typed})"
        rank.append(f"{cond} THEN {name}")
        nxt.append(f"{cond} THEN " + (names[i - 1] if i else "NULL"))
        gap.append(f"{cond} THEN " + (f"CAST({mins[i - 1]} AS {typed}) - {column}" if i else "NULL"))
    gap_sql = "".join(gap) + " END"
    if basis == "orders_12m":
        return "".join(rank) + " END", "".join(nxt) + " END", "NULL", gap_sql
    return "".join(rank) + " END", "".join(nxt) + " END", gap_sql, "NULL"


_FINAL_SQL = """
{target}
WITH s AS (
    -- cm_per_customer holds one row per customer_model_facts row, in the same order
    SELECT a.*, pc.*,
           date_diff('day', a.last_d, {as_of}) AS recency_days,
           date_diff('day', a.first_d, {as_of}) AS tenure_days,
           a.n_days - 1 AS x,
           date_diff('day', a.first_d, a.last_d) AS t_x
    FROM customer_model_facts AS a POSITIONAL JOIN cm_per_customer AS pc
),
prod AS ({products})
SELECT s.customer_id,
       c.name, c.email, c.prefecture, c.gender, c.birthday,
       CASE WHEN c.birthday <= {as_of} THEN CAST(date_sub('year', c.birthday, {as_of}) AS INTEGER) END AS age,
       CAST(month(c.birthday) AS INTEGER) AS birthday_month,
       c.email_opt_in, c.line_user_id,
       coalesce(trim(c.line_user_id), '') <> '' AS has_line,
       s.first_at AS first_order_at, s.last_at AS last_order_at,
       s.orders, s.revenue,
       CAST(round(s.revenue / s.orders, 2) AS DECIMAL(18, 2)) AS aov,
       s.recency_days, s.tenure_days,
       CASE WHEN s.x > 0 THEN round(s.t_x / s.x, 1) END AS avg_days_between_orders,
       s.orders_12m, s.revenue_12m,
       s.r_score, s.f_score, s.m_score,
       {segment} AS rfm_segment,
       {rank} AS rank, {next_rank} AS next_rank,
       CAST({gap} AS DECIMAL(18, 2)) AS gap_to_next_rank,
       CAST({orders_gap} AS BIGINT) AS orders_to_next_rank,
       CASE s.first_k WHEN 1 THEN 'スーパーSALE' WHEN 2 THEN 'お買い物マラソン' ELSE '通常' END AS acquisition_event,
       s.first_source, s.last_product_id,
       coalesce(s.line_product_name, prod.product_name) AS last_product_name,
       coalesce(s.line_category, prod.category) AS last_category,
       CASE WHEN NOT s.subscriber THEN NULL WHEN {as_of} <= s.active_until THEN '継続中' ELSE '解約' END
           AS subscription_status,
       CAST(coalesce(s.deliveries, 0) AS BIGINT) AS subscription_deliveries,
       s.coupon AS used_coupon,
       s.orders >= 2 AND s.sale_n = s.orders AS sale_only_buyer,
       s.p_alive, s.churn_probability_90d,
       CASE WHEN s.churn_probability_90d IS NULL THEN NULL
            WHEN s.churn_probability_90d < 0.33 THEN '低'
            WHEN s.churn_probability_90d <= 0.66 THEN '中' ELSE '高' END AS churn_risk,
       s.expected_orders_365d, s.predicted_clv_365d,
       CAST({as_of} + CAST(s.next_days AS INTEGER) AS DATE) AS expected_next_order_date,
       CAST({as_of_out} AS DATE) AS as_of
FROM s
LEFT JOIN {customers} AS c ON c.customer_id = s.customer_id
LEFT JOIN prod ON prod.product_id = s.last_product_id
{where}
"""

DAILY_COLUMNS: tuple[str, ...] = (
    "age", "recency_days", "tenure_days", "orders_12m", "revenue_12m", "r_score", "f_score", "m_score",
    "rfm_segment", "rank", "next_rank", "gap_to_next_rank", "orders_to_next_rank", "last_product_name",
    "last_category", "subscription_status", "p_alive", "churn_probability_90d", "churn_risk",
    "expected_orders_365d", "predicted_clv_365d", "expected_next_order_date", "as_of",
)
"""Columns of ``customer_model`` that change for a customer whose orders did not: the as-of day
(and with it recency, tenure, age, the 12-month figures, subscription status, predictions), scores
by quintile over everyone, and the product master's names.  The refresh after an import updates
these in place for the customers it did not touch and rewrites only the touched customers' rows."""

_TOUCHED = "s.customer_id IN (SELECT customer_id FROM cm_touched)"
# the touched customers' profiles only: the join builds on a few thousand rows, not on every customer
_TOUCHED_CUSTOMERS = "(SELECT * FROM customers WHERE customer_id IN (SELECT customer_id FROM cm_touched))"


# ---------------------------------------------------------------------------
# The stored aggregates (customer_model_facts)
# ---------------------------------------------------------------------------

FACTS = "customer_model_facts"
"""Per-customer aggregates of the last build (everything of a customer's orders the model needs).

Kept between builds so the refresh after an import recomputes only the customers it touched
(see :func:`rebuild`): apart from the 12-month figures (kept for the stored ``as_of`` and moved
forward by subtracting the orders that left the window), nothing in it depends on the as-of day.
Columns: the aggregates of :func:`aggregate_orders` (without the row key), the last order's top
line (``last_product_id``, ``line_product_name``, ``line_category``) and the subscriptions
(``subscriber``, ``active_until``: the last day any of them counts as active, ``deliveries``)."""

_FACTS_SELECT = """
SELECT a.customer_id, a.orders, a.revenue, a.first_at, a.last_at, a.first_d, a.last_d, a.n_days,
       a.first_day_amt, a.orders_12m, a.revenue_12m, a.sale_n, a.coupon, a.first_k, a.first_source,
       a.amt_missing,
       l.p.product_id AS last_product_id, l.p.product_name AS line_product_name, l.p.category AS line_category,
       sub.customer_id IS NOT NULL AS subscriber, sub.active_until, sub.deliveries
FROM cm_agg AS a
LEFT JOIN cm_last AS l ON l.rid = a.rowid
LEFT JOIN cm_sub AS sub ON sub.customer_id = a.customer_id
"""

# Orders leaving the 12-month window when the as-of day moves from $old to $new
# (orders of days old - 364 .. new - 365), per customer still in the table.
_SHIFT_12M_SQL = """
UPDATE customer_model_facts
SET orders_12m = customer_model_facts.orders_12m - d.n,
    revenue_12m = CAST(customer_model_facts.revenue_12m - d.r AS DECIMAL(18, 2))
FROM (
    SELECT customer_id, count(*) AS n, sum(""" + revenue() + """) AS r
    FROM orders
    WHERE """ + is_customer_purchase() + """ AND ordered_at >= $lo AND ordered_at < $hi
    GROUP BY customer_id
) AS d
WHERE customer_model_facts.customer_id = d.customer_id
"""  # noqa: S608 - constant fragments of crm_core.purchases



def _final_sql(
    as_of: date,
    as_of_out: date | None,
    rules: list[dict[str, Any]],
    ranks: list[dict[str, Any]],
    target: str = "CREATE OR REPLACE TABLE customer_model AS",
    where: str = "",
    customers: str = "customers",
) -> tuple[str, dict[str, Any]]:
    p = _Params()
    as_of_ref = p(as_of)
    rank, next_rank, gap, orders_gap = _rank_sql(p, ranks)
    sql = _FINAL_SQL.format(
        target=target,
        as_of=as_of_ref,
        as_of_out=p(as_of_out),
        segment=_segment_sql(p, rules),
        rank=rank,
        next_rank=next_rank,
        gap=gap,
        orders_gap=orders_gap,
        products=_PRODUCTS_SQL,
        where=where,
        customers=customers,
    )
    return sql, p.values


# ---------------------------------------------------------------------------
# Rebuild
# ---------------------------------------------------------------------------


def rebuild(
    store: Store, as_of: date | datetime | str | None = None, reuse_fit: bool = False, touched: str | None = None,
) -> ModelReport:
    """Compute and store ``customer_model`` (see the module docstring for columns).

    Parameters
    ----------
    store : Store
        The CRM store.
    as_of : date, optional
        The day to describe: orders up to the end of that day (JST) count.
        Defaults to :func:`as_of_default`, the day of the last non-cancelled
        order.
        (To describe another day without replacing the stored model, use
        :func:`model_as_of`.)
    reuse_fit : bool
        Keep the last build's BG/NBD + Gamma-Gamma parameters when
        :func:`crm_core.model.predict.kept_fit` allows (fitted less than
        :data:`~crm_core.model.predict.REFIT_DAYS` days ago for an earlier or the same
        day, customers changed by at most :data:`~crm_core.model.predict.REFIT_GROWTH`);
        predictions are evaluated for everyone either way.  The refresh after an import
        passes True; settings changes and as-of exports refit.
    touched : str, optional
        A table whose ``customer_id`` column names the only customers whose orders changed
        since the last build (a NULL id: everyone), as the imports leave in
        ``refresh_touched``.  When the stored aggregates (:data:`FACTS`) still describe
        everyone else -- built from every order, for the same or an earlier day, with the
        same sale windows -- only the touched customers are aggregated from their orders;
        the other customers' 12-month figures move with the as-of day.  Scores,
        predictions and the table are then computed for everyone as in a full build, so
        the result is the full build's.  Otherwise (and without ``touched``) every customer
        is aggregated.

    Returns
    -------
    ModelReport
        Customers, ``as_of``, fitted parameters, seconds per step, Japanese
        warnings and, if predictions are empty, the reason.

    Raises
    ------
    InputError
        If a stored setting (scores, segments, ranks) is invalid.
    """
    report = ModelReport()
    timer = _Timer(report.seconds)
    with timer("settings"):
        thresholds = rfm_thresholds(store)
        rules = rfm_segments(store)
        ranks = rank_thresholds(store)
        requested = _as_date(as_of)
        as_of = requested
        if as_of is None:
            as_of = as_of_default(store)
    report.as_of = as_of
    calc_as_of = as_of or date(1970, 1, 1)
    end_ts = datetime.combine(calc_as_of + timedelta(days=1), datetime.min.time())
    cur = store.cursor()
    registered = False
    try:
        # One transaction: a consistent snapshot of the orders (row ids stay
        # valid between steps) and an all-or-nothing replacement of the tables.
        with store.transaction():
            previous = last_report(store)
            kept_as_of = None
            if touched is not None and requested is None and as_of is not None:
                with timer("settings"):
                    kept_as_of = _facts_kept(store, previous, touched, calc_as_of)
            sub_params = {
                "end_ts": end_ts,
                "grace": SUBSCRIPTION_GRACE_CYCLES,
                "default_cycle": SUBSCRIPTION_DEFAULT_CYCLE_DAYS,
            }
            if kept_as_of is not None:
                with timer("aggregate"):
                    store.execute(
                        "CREATE OR REPLACE TEMP TABLE cm_touched AS SELECT DISTINCT customer_id FROM "  # noqa: S608
                        + quote_ident(touched) + " WHERE customer_id IS NOT NULL"
                    )
                    report.touched = int(store.scalar("SELECT count(*) FROM cm_touched"))
                    aggregate_orders(store, calc_as_of, scoped=True)
                with timer("orders"):
                    store.execute(_ORDERS_SQL)
                with timer("subscriptions"):
                    store.execute(_SUBSCRIPTIONS_SQL.replace("{scope}", _SCOPE), sub_params)
                with timer("facts"):
                    store.execute("DELETE FROM " + FACTS + " WHERE customer_id IN (SELECT customer_id FROM cm_touched)")  # noqa: S608
                    lo, hi = kept_as_of - timedelta(days=364), calc_as_of - timedelta(days=364)
                    if hi > lo:
                        store.execute(_SHIFT_12M_SQL, {
                            "lo": datetime.combine(lo, datetime.min.time()),
                            "hi": datetime.combine(hi, datetime.min.time()),
                        })
                    store.execute("INSERT INTO " + FACTS + _FACTS_SELECT)  # noqa: S608 - constants
            else:
                with timer("aggregate"):
                    aggregate_orders(store, calc_as_of)
                with timer("orders"):
                    store.execute(_ORDERS_SQL)
                with timer("subscriptions"):
                    store.execute(_SUBSCRIPTIONS_SQL.replace("{scope}", ""), sub_params)
                with timer("facts"):
                    store.execute("CREATE OR REPLACE TABLE " + FACTS + " AS" + _FACTS_SELECT)  # noqa: S608 - constants
            n = int(store.scalar("SELECT count(*) FROM " + FACTS))  # noqa: S608 - constant
            report.customers = n
            with timer("settings"):
                report.facts = _facts_meta(store, calc_as_of, end_ts, complete=requested is None or (
                    as_of is not None and as_of >= (as_of_default(store) or as_of)))
            with timer("predict"):
                now = _now_jst()
                kept = kept_fit(previous, n, calc_as_of, now) if reuse_fit else None
                per_customer = _per_customer(store, report, n, calc_as_of, thresholds, kept, now, source=FACTS)
                cur.register("cm_per_customer", per_customer)
                registered = True
            with timer("table"):
                _collect_warnings(store, report)
                if report.prediction_error:
                    report.warnings.append(
                        f"予測列（継続確率・離反確率・予測購入など）は空欄です: {report.prediction_error}"
                    )
                if kept_as_of is None:
                    store.execute(*_final_sql(calc_as_of, as_of, rules, ranks, "CREATE OR REPLACE TABLE " + TABLE + " AS"))
                else:
                    # the touched customers' rows anew, the daily columns of everyone else in place
                    # (a fraction of rewriting every column of every row)
                    store.execute("DELETE FROM " + TABLE + " WHERE customer_id IN (SELECT customer_id FROM cm_touched)")  # noqa: S608
                    sql, params = _final_sql(calc_as_of, as_of, rules, ranks, "", "WHERE NOT " + _TOUCHED)
                    with timer("table_update"):
                        store.execute(
                            "UPDATE " + TABLE + " SET " + ", ".join(f"{c} = d.{c}" for c in DAILY_COLUMNS)  # noqa: S608
                            + " FROM (" + sql + ") AS d WHERE " + TABLE + ".customer_id = d.customer_id", params,
                        )
                    with timer("table_insert"):
                        store.execute(*_final_sql(calc_as_of, as_of, rules, ranks, "INSERT INTO " + TABLE, "WHERE " + _TOUCHED,
                                                 _TOUCHED_CUSTOMERS))
                store.execute(
                    "CREATE OR REPLACE TABLE customer_model_meta "
                    "(as_of DATE, built_at TIMESTAMP, customers BIGINT, report JSON)"
                )
                store.execute(
                    "INSERT INTO customer_model_meta VALUES (?, ?, ?, ?)",
                    [as_of, _now_jst(), n, json.dumps(report.to_dict(), ensure_ascii=False)],
                )
    finally:
        if registered:
            cur.unregister("cm_per_customer")
        for temp in TEMP_TABLES:
            store.execute("DROP TABLE IF EXISTS temp.main." + temp)
    return report


def _sales_digest(store: Store, first_day: date, as_of: date) -> str:
    """A digest of the sale-window pieces the aggregates of ``first_day .. as_of`` were labelled with."""
    pieces = _sale_day_pieces(first_day, as_of, store)
    text = json.dumps({k: [str(v) for v in values] for k, values in pieces.items()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _facts_meta(store: Store, as_of: date, end_ts: datetime, complete: bool) -> dict[str, Any]:
    first_day = _events_range_start(store, end_ts) or as_of
    return {"as_of": as_of.isoformat(), "first_day": first_day.isoformat(), "complete": bool(complete),
            "sales": _sales_digest(store, first_day, as_of)}


def _facts_kept(store: Store, previous: dict[str, Any] | None, touched: str, as_of: date) -> date | None:
    """The as-of day of the stored aggregates when they may be updated for the touched customers only, else None.

    They may when the last build stored them from every order (not an earlier as-of day),
    for ``as_of`` or an earlier day, the sale windows they were labelled with are unchanged
    and ``touched`` does not say 'everyone' (a NULL id).
    """
    facts = (previous or {}).get("facts")
    if not facts or not facts.get("complete") or not store.has_table(FACTS) or not store.has_table(TABLE):
        return None
    kept_as_of = date.fromisoformat(facts["as_of"])
    if kept_as_of > as_of:
        return None
    if store.scalar("SELECT count(*) FROM " + quote_ident(touched) + " WHERE customer_id IS NULL"):  # noqa: S608
        return None
    if _sales_digest(store, date.fromisoformat(facts["first_day"]), kept_as_of) != facts.get("sales"):
        return None
    return kept_as_of


@contextmanager
def model_as_of(store: Store, as_of: date | datetime | str) -> Iterator[ModelReport]:
    """Inside the block, ``customer_model`` (on this thread's connection) describes ``as_of``.

    The model is rebuilt as of that day in a :meth:`~crm_core.db.Store.scratch`
    transaction that is rolled back when the block ends: the stored model is
    never replaced, and other connections keep seeing it.  Segments evaluated
    inside the block (:mod:`crm_core.audience.segments`) see the customers, RFM, ranks
    and relative days of that day.
    """
    with store.scratch():
        yield rebuild(store, as_of)


def _now_jst() -> datetime:
    return clock.now()


def _collect_warnings(store: Store, report: ModelReport) -> None:
    if report.customers == 0:
        report.warnings.append("集計できる注文がありません（キャンセルを除く注文がまだありません）。")
        return
    missing_amount, short_history = store.fetchone(
        "SELECT sum(amt_missing), date_diff('day', min(first_d), ?) FROM " + FACTS, [report.as_of]  # noqa: S608
    )
    if missing_amount:
        report.warnings.append(f"金額（合計金額・商品合計金額）が空欄の注文が{int(missing_amount):,}件あり、0円として集計しました。")
    if short_history is not None and short_history < SHORT_HISTORY_DAYS and report.bg_params:
        report.warnings.append(
            f"購入履歴が{SHORT_HISTORY_DAYS}日未満のため、予測の精度は限られます。"
        )
    no_profile = store.scalar(
        "SELECT count(*) FROM " + FACTS + " a ANTI JOIN customers c ON c.customer_id = a.customer_id"  # noqa: S608
    )
    if no_profile:
        report.warnings.append(f"顧客テーブルにない顧客が{int(no_profile):,}人います（氏名などは空欄です）。")


