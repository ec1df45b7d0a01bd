"""Subscriptions (定期購入): continuation by delivery count and by month.

Deliveries are purchases (non-cancelled orders up to ``as_of``) carrying
``orders.subscription_id``; ``orders.subscription_seq`` (楽天「申込お届け回数」)
numbers them, and where it is missing the deliveries of a subscription are
numbered by order time.  A subscription is keyed by (``source``,
``subscription_id``).

Pending subscriptions
---------------------
A subscription whose latest delivery is less than ``grace_days`` before
``as_of`` may simply not be due yet: it is *pending* and left out of the
denominator of that step, so young subscriptions do not look like
cancellations.  The same grace decides when a subscription counts as ended in
the monthly view.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from crm_core.analytics.value import PURCHASES_CTE, add_months, period_params, query_df
from crm_core.db import Store
from crm_core.errors import InputError

GRACE_DAYS = 45

# Per subscription: first and last delivery and the highest delivery number.
_SUBSCRIPTIONS_CTE = """,
deliveries AS (
    SELECT source, subscription_id, order_date,
           coalesce(subscription_seq,
                    row_number() OVER (PARTITION BY source, subscription_id ORDER BY ordered_at, order_id))
               AS seq
    FROM purchases
    WHERE subscription_id IS NOT NULL AND trim(subscription_id) <> ''
),
subscriptions AS (
    SELECT source, subscription_id,
           min(order_date) AS first_date,
           max(order_date) AS last_date,
           max(seq) AS last_seq
    FROM deliveries
    GROUP BY ALL
)"""


def has_subscriptions(store: Store) -> bool:
    """True when any order carries a subscription id."""
    n = store.scalar("SELECT count(*) FROM orders WHERE subscription_id IS NOT NULL AND trim(subscription_id) <> ''")
    return bool(n)


def continuation_by_delivery(
    store: Store,
    as_of: dt.date | str,
    max_deliveries: int = 12,
    grace_days: int = GRACE_DAYS,
) -> pd.DataFrame:
    """Continuation rate from each delivery to the next (1回目→2回目→3回目 ...).

    Parameters
    ----------
    store : Store
    as_of : date
    max_deliveries : int
        Highest delivery number shown.
    grace_days : int
        A subscription whose latest delivery is within this many days before
        ``as_of`` is pending (its next delivery may not be due yet).

    Returns
    -------
    DataFrame
        One row per delivery number ``n`` from 1 to the highest reached
        (at most ``max_deliveries``):

        - ``delivery``: n
        - ``subscriptions``: subscriptions that reached delivery n
        - ``continued``: of those, reached delivery n + 1
        - ``pending``: stopped at n, but less than ``grace_days`` ago
        - ``eligible``: ``subscriptions - pending``
        - ``continuation_rate``: ``continued / eligible`` (n → n + 1)
        - ``survival``: share of subscriptions expected to reach delivery n,
          the product of the continuation rates before n (1.0 at n = 1)

        Empty without subscription orders.
    """
    if max_deliveries < 1 or grace_days < 0:
        raise InputError("お届け回数は1以上、猶予日数は0以上を指定してください。")
    params = period_params(as_of)
    params.update({"max_n": int(max_deliveries), "grace": int(grace_days)})
    df = query_df(
        store,
        "WITH "  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + PURCHASES_CTE
        + _SUBSCRIPTIONS_CTE
        + """,
        steps AS (
            SELECT range AS delivery FROM range(1, least($max_n, (SELECT max(last_seq) FROM subscriptions)) + 1)
        )
        SELECT s.delivery,
               count(*) FILTER (WHERE b.last_seq >= s.delivery) AS subscriptions,
               count(*) FILTER (WHERE b.last_seq >= s.delivery + 1) AS continued,
               count(*) FILTER (WHERE b.last_seq = s.delivery AND b.last_date > $as_of - $grace) AS pending
        FROM steps s CROSS JOIN subscriptions b
        GROUP BY ALL
        ORDER BY s.delivery
        """,
        params,
    )
    columns = ["delivery", "subscriptions", "continued", "pending", "eligible", "continuation_rate", "survival"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    for col in ("delivery", "subscriptions", "continued", "pending"):
        df[col] = df[col].astype("int64")
    df["eligible"] = df["subscriptions"] - df["pending"]
    df["continuation_rate"] = (df["continued"] / df["eligible"].where(df["eligible"] > 0)).astype("float64")
    df["survival"] = df["continuation_rate"].shift(1, fill_value=1.0).cumprod()
    return df[columns]


def continuation_by_month(
    store: Store,
    as_of: dt.date | str,
    months: int = 12,
    grace_days: int = GRACE_DAYS,
) -> pd.DataFrame:
    """Monthly continuation rate of subscriptions (月次継続率).

    A subscription is active from the month of its first delivery to the
    month that contains its last delivery plus ``grace_days`` (so a 2-monthly
    subscription stays active between deliveries).

    Parameters
    ----------
    store : Store
    as_of : date
    months : int
        Number of months shown, ending with the month of ``as_of``.
    grace_days : int

    Returns
    -------
    DataFrame
        One row per month, oldest first: ``month`` (date, first day),
        ``active`` (subscriptions active in the month), ``new`` (first
        delivery in the month), ``continued`` (active in the previous month
        and in this one), ``ended`` (active in the previous month, not in
        this one), ``continuation_rate`` (``continued`` / active in the
        previous month).  Empty without subscription orders.
    """
    if months < 1 or grace_days < 0:
        raise InputError("月数は1以上、猶予日数は0以上を指定してください。")
    params = period_params(as_of)
    first_month = add_months(params["as_of"], -(int(months) - 1))
    params.update({"grace": int(grace_days), "first_month": first_month, "months": int(months)})
    df = query_df(
        store,
        "WITH "  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + PURCHASES_CTE
        + _SUBSCRIPTIONS_CTE
        + """,
        spans AS (
            SELECT CAST(date_trunc('month', first_date) AS DATE) AS start_month,
                   CAST(date_trunc('month', last_date + $grace) AS DATE) AS end_month
            FROM subscriptions
        ),
        cal AS (
            SELECT CAST($first_month + to_months(i) AS DATE) AS month,
                   CAST($first_month + to_months(i - 1) AS DATE) AS prev_month
            FROM range(0, $months) t(i)
        )
        SELECT c.month,
               count(*) FILTER (WHERE s.start_month <= c.month AND c.month <= s.end_month) AS active,
               count(*) FILTER (WHERE s.start_month = c.month) AS new,
               count(*) FILTER (WHERE s.start_month <= c.prev_month AND c.prev_month <= s.end_month) AS active_before,
               count(*) FILTER (WHERE s.start_month <= c.prev_month AND c.month <= s.end_month) AS continued,
               count(*) FILTER (WHERE s.start_month <= c.prev_month AND s.end_month = c.prev_month) AS ended
        FROM cal c CROSS JOIN spans s
        GROUP BY ALL
        ORDER BY c.month
        """,
        params,
    )
    columns = ["month", "active", "new", "continued", "ended", "continuation_rate"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    df["month"] = pd.to_datetime(df["month"]).dt.date
    for col in ("active", "new", "continued", "ended", "active_before"):
        df[col] = df[col].astype("int64")
    df["continuation_rate"] = (df["continued"] / df["active_before"].where(df["active_before"] > 0)).astype("float64")
    started = df["active"].gt(0) | df["ended"].gt(0)
    if started.any():  # no empty months before the first subscription
        df = df[started.cummax()]
    return df[columns].reset_index(drop=True)


def subscription_table(store: Store, as_of: dt.date | str, grace_days: int = GRACE_DAYS) -> pd.DataFrame:
    """One row per subscription with its deliveries and whether it may still continue.

    Returns
    -------
    DataFrame
        ``source, subscription_id, customer_id, first_date, last_date,
        first_seq`` (the delivery number of the first delivery in the data;
        above 1 when the subscription started before the data),
        ``deliveries`` (the highest delivery number reached), ``revenue``
        (of the deliveries in the data), ``avg_amount`` (revenue per
        delivery), ``median_interval_days`` (between consecutive deliveries;
        NaN with one delivery), ``active`` (the last delivery lies within
        ``grace_days`` before ``as_of``: it may continue, so it is censored).
        Empty without subscription orders.
    """
    if grace_days < 0:
        raise InputError("猶予日数は0以上を指定してください。")
    params = period_params(as_of)
    params["grace"] = int(grace_days)
    df = query_df(
        store,
        "WITH "  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + PURCHASES_CTE
        + """,
        deliveries AS (
            SELECT source, subscription_id, customer_id, order_date, revenue,
                   coalesce(subscription_seq,
                            row_number() OVER (PARTITION BY source, subscription_id ORDER BY ordered_at, order_id)) AS seq,
                   order_date - lag(order_date) OVER (PARTITION BY source, subscription_id ORDER BY ordered_at, order_id) AS gap
            FROM purchases
            WHERE subscription_id IS NOT NULL AND trim(subscription_id) <> ''
        )
        SELECT source, subscription_id, arg_min(customer_id, order_date) AS customer_id,
               min(order_date) AS first_date, max(order_date) AS last_date,
               min(seq) AS first_seq, max(seq) AS deliveries,
               sum(revenue) AS revenue, sum(revenue) / count(*) AS avg_amount,
               median(gap) AS median_interval_days,
               max(order_date) > $as_of - $grace AS active
        FROM deliveries
        GROUP BY ALL
        ORDER BY first_date, source, subscription_id
        """,
        params,
    )
    if df.empty:
        return df
    df["first_date"] = pd.to_datetime(df["first_date"]).dt.date
    df["last_date"] = pd.to_datetime(df["last_date"]).dt.date
    for col in ("first_seq", "deliveries"):
        df[col] = df[col].astype("int64").clip(lower=1)
    df["first_seq"] = df[["first_seq", "deliveries"]].min(axis=1)
    df["median_interval_days"] = pd.to_numeric(df["median_interval_days"], errors="coerce").astype("float64")
    df["active"] = df["active"].astype(bool)
    return df
