"""Cohorts: retention and cumulative revenue per customer by first purchase.

A customer belongs to the cohort of their first purchase (the month, quarter
or year of it, or the sale event that acquired them).  Month ``k`` of a
customer is the calendar month ``k`` months after the month of the first
purchase (month 0 holds the first purchase itself).

Fair comparison
---------------
Month ``k`` of a cohort only counts the customers whose month ``k`` has
begun by ``as_of`` (*eligible customers*).  For a month cohort that is the
whole cohort or nobody; for a quarter or event cohort, younger members drop
out of the later months instead of dragging them down.  The month that
contains ``as_of`` is still running (``partial``).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from crm_core.analytics.value import PURCHASES_CTE, add_months, has_customer_model, month_start, period_params, query_df
from crm_core.db import Store
from crm_core.errors import InputError

#: Cohort units and their length in months.
UNITS: dict[str, int] = {"month": 1, "quarter": 3, "year": 12}
UNKNOWN_EVENT = "不明"

_COLUMNS = [
    "months_since_first",
    "customers",
    "eligible_customers",
    "active_customers",
    "retention",
    "revenue",
    "revenue_per_customer",
    "cumulative_revenue_per_customer",
    "partial",
]

# Needs PURCHASES_CTE, then a CTE ``members(customer_id, first_month, cohort)``.
_CURVES_SQL = """,
sizes AS (SELECT cohort, first_month, count(*) AS n FROM members GROUP BY ALL),
activity AS (
    SELECT m.cohort, m.first_month,
           datediff('month', m.first_month, p.order_date) AS k,
           count(DISTINCT p.customer_id) AS active,
           sum(p.revenue) AS revenue
    FROM purchases p JOIN members m USING (customer_id)
    GROUP BY ALL
),
offsets AS (SELECT range AS k FROM range(0, $max_months + 1)),
eligible AS (
    SELECT s.cohort, o.k, sum(s.n) AS eligible,
           bool_or(s.first_month + to_months(o.k) = $as_of_month) AS touches_current
    FROM sizes s CROSS JOIN offsets o
    WHERE s.first_month + to_months(o.k) <= $as_of_month
    GROUP BY ALL
),
totals AS (SELECT cohort, sum(n) AS customers FROM sizes GROUP BY cohort)
SELECT e.cohort, e.k AS months_since_first, t.customers, e.eligible AS eligible_customers,
       e.touches_current,
       coalesce(sum(a.active) FILTER (WHERE a.k = e.k), 0) AS active_customers,
       coalesce(sum(a.revenue) FILTER (WHERE a.k = e.k), 0) AS revenue,
       coalesce(sum(a.revenue) FILTER (WHERE a.first_month + to_months(e.k) <= $as_of_month), 0)
           AS cumulative_revenue
FROM eligible e
JOIN totals t USING (cohort)
LEFT JOIN activity a ON a.cohort = e.cohort AND a.k <= e.k
GROUP BY ALL
ORDER BY e.cohort, e.k
"""


def _curves(store: Store, members_sql: str, params: dict, max_months: int) -> pd.DataFrame:
    if max_months < 0:
        raise InputError("表示する経過月数は0以上を指定してください。")
    params = dict(params)
    params["max_months"] = int(max_months)
    params["as_of_month"] = month_start(params["as_of"])
    df = query_df(store, "WITH " + PURCHASES_CTE + "," + members_sql + _CURVES_SQL, params)
    if df.empty:
        return df
    month_running = params["as_of"] != (add_months(params["as_of"], 1) - dt.timedelta(days=1))
    df["partial"] = df["touches_current"].astype(bool) & month_running
    for col in ("customers", "eligible_customers", "active_customers", "months_since_first"):
        df[col] = df[col].astype("int64")
    for col in ("revenue", "cumulative_revenue"):
        df[col] = df[col].astype("float64")
    df["retention"] = df["active_customers"] / df["eligible_customers"]
    df["revenue_per_customer"] = df["revenue"] / df["eligible_customers"]
    df["cumulative_revenue_per_customer"] = df["cumulative_revenue"] / df["eligible_customers"]
    return df


def cohort_retention(
    store: Store,
    as_of: dt.date | str,
    unit: str = "month",
    cohorts: int = 12,
    max_months: int = 12,
) -> pd.DataFrame:
    """Retention and revenue per customer by first-purchase month (or quarter, year).

    Parameters
    ----------
    store : Store
    as_of : date
        Purchases after this day are ignored.
    unit : {"month", "quarter", "year"}
        Length of a cohort.
    cohorts : int
        Number of cohorts, ending with the one containing ``as_of``.
    max_months : int
        Last month ``k`` shown.

    Returns
    -------
    DataFrame
        One row per (cohort, month k) that has begun, oldest cohort first:

        - ``cohort_start`` (date): first day of the cohort
        - ``months_since_first`` (k)
        - ``customers``: size of the cohort
        - ``eligible_customers``: members whose month k has begun
        - ``active_customers``: eligible members with a purchase in month k
        - ``retention``: ``active_customers / eligible_customers`` (1.0 at k = 0)
        - ``revenue``: revenue of month k
        - ``revenue_per_customer``: ``revenue / eligible_customers``
        - ``cumulative_revenue_per_customer``: revenue of months 0..k of the
          eligible members divided by their number (historical LTV)
        - ``partial``: month k is still running for some member
    """
    if unit not in UNITS:
        raise InputError("コホートの単位は「月」「四半期」「年」から選んでください。", detail=f"unit={unit!r}")
    params = period_params(as_of)
    step = UNITS[unit]
    current = params["as_of"].replace(day=1)
    current = dt.date(current.year, (current.month - 1) // step * step + 1, 1)
    params["unit"] = unit
    params["first_cohort"] = add_months(current, -step * (max(int(cohorts), 1) - 1))
    members = """
    members AS (
        SELECT customer_id,
               CAST(date_trunc('month', min(ordered_at)) AS DATE) AS first_month,
               CAST(date_trunc($unit, min(ordered_at)) AS DATE) AS cohort
        FROM purchases
        GROUP BY customer_id
        HAVING min(ordered_at) >= $first_cohort
    )"""
    df = _curves(store, members, params, max_months)
    if df.empty:
        return pd.DataFrame(columns=["cohort_start", *_COLUMNS])
    df["cohort_start"] = pd.to_datetime(df["cohort"]).dt.date
    return df[["cohort_start", *_COLUMNS]].reset_index(drop=True)


def event_cohort_retention(
    store: Store,
    as_of: dt.date | str,
    max_months: int = 12,
    lookback_months: int = 24,
) -> pd.DataFrame:
    """Retention and revenue per customer by the sale event that acquired the customer.

    The acquisition event comes from ``customer_model.acquisition_event``
    ('スーパーSALE' | 'お買い物マラソン' | '通常'); customers missing from the
    model are '不明'.

    Parameters
    ----------
    store : Store
    as_of : date
    max_months : int
        Last month ``k`` shown.
    lookback_months : int
        Only customers whose first purchase is in the last ``lookback_months``
        months (including the month of ``as_of``).

    Returns
    -------
    DataFrame
        ``acquisition_event`` followed by the columns of
        :func:`cohort_retention` after ``cohort_start``.  Empty without a
        customer model.
    """
    if not has_customer_model(store):
        return pd.DataFrame(columns=["acquisition_event", *_COLUMNS])
    params = period_params(as_of)
    params["since"] = add_months(params["as_of"], -(max(int(lookback_months), 1) - 1))
    params["unknown"] = UNKNOWN_EVENT
    members = """
    firsts AS (
        SELECT customer_id, CAST(date_trunc('month', min(ordered_at)) AS DATE) AS first_month
        FROM purchases GROUP BY customer_id
    ),
    members AS (
        SELECT f.customer_id, f.first_month, coalesce(cm.acquisition_event, $unknown) AS cohort
        FROM firsts f
        LEFT JOIN (SELECT customer_id, any_value(acquisition_event) AS acquisition_event
                   FROM customer_model GROUP BY customer_id) cm USING (customer_id)
        WHERE f.first_month >= $since
    )"""
    df = _curves(store, members, params, max_months)
    if df.empty:
        return pd.DataFrame(columns=["acquisition_event", *_COLUMNS])
    df["acquisition_event"] = df["cohort"].astype("str")
    return df[["acquisition_event", *_COLUMNS]].reset_index(drop=True)


def ltv_curves(
    store: Store,
    as_of: dt.date | str,
    unit: str = "quarter",
    cohorts: int = 8,
    max_months: int = 24,
    min_eligible_share: float = 1.0,
) -> pd.DataFrame:
    """Historical cumulative revenue per customer by cohort (LTV curves).

    Parameters
    ----------
    store : Store
    as_of : date
    unit : {"month", "quarter", "year"}
    cohorts : int
    max_months : int
    min_eligible_share : float
        Months ``k`` where fewer than this share of the cohort is eligible
        are left out: with 1.0 (default) every point of a curve averages the
        whole cohort, so the last points of a young quarter do not jump
        around on a handful of early members.

    Returns
    -------
    DataFrame
        ``cohort_start``, ``months_since_first``, ``customers``,
        ``eligible_customers``, ``cumulative_revenue_per_customer``,
        ``partial`` (see :func:`cohort_retention`).
    """
    df = cohort_retention(store, as_of, unit=unit, cohorts=cohorts, max_months=max_months)
    df = df[df["eligible_customers"] >= min_eligible_share * df["customers"]]
    return df.reset_index(drop=True)[
        [
            "cohort_start",
            "months_since_first",
            "customers",
            "eligible_customers",
            "cumulative_revenue_per_customer",
            "partial",
        ]
    ]
