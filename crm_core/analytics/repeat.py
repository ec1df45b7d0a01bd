"""Repeat purchase: F2 / F3 conversion, days to the second purchase, new vs repeat revenue.

A customer's *purchase days* are the distinct JST calendar days with a
purchase (see :mod:`crm_core.analytics.value`); several orders on one day count as
one purchase, as in BG/NBD (FACTS.md §8), so a forgotten item ordered an hour
later is not a "repeat".

Cohort-age rule
---------------
A conversion window of ``w`` days is only measured for first-purchase months
old enough for every customer of the month to have had ``w`` days: the last
day of the month plus ``w`` days must be on or before ``as_of``.  Younger
cohorts are returned with ``mature = False`` and no rate, so that they do not
pull the average down.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd

from crm_core.analytics.value import PURCHASES_CTE, add_months, period_params, query_df, query_row, share_of_total
from crm_core.db import Store
from crm_core.errors import InputError

WINDOWS: tuple[int, ...] = (30, 60, 90)
NEW = "新規"
REPEAT = "リピート"

# Per customer: first, second and third purchase day.  Needs PURCHASES_CTE.
_FIRST_DAYS_CTE = """
purchase_days AS (
    SELECT DISTINCT customer_id, order_date FROM purchases
),
numbered AS (
    SELECT customer_id, order_date,
           row_number() OVER (PARTITION BY customer_id ORDER BY order_date) AS n
    FROM purchase_days
),
first_days AS (
    SELECT customer_id,
           min(order_date) FILTER (WHERE n = 1) AS d1,
           min(order_date) FILTER (WHERE n = 2) AS d2,
           min(order_date) FILTER (WHERE n = 3) AS d3
    FROM numbered
    WHERE n <= 3
    GROUP BY customer_id
)"""


def _check_windows(windows: Sequence[int]) -> list[int]:
    out = sorted({int(w) for w in windows})
    if not out or out[0] < 1:
        raise InputError("転換の期間（日数）は1日以上を指定してください。")
    return out


def repeat_conversion(
    store: Store,
    as_of: dt.date | str,
    windows: Sequence[int] = WINDOWS,
    cohorts: int = 12,
) -> pd.DataFrame:
    """F2 and F3 conversion within day windows, by first-purchase month.

    Parameters
    ----------
    store : Store
    as_of : date
        The analysis day; purchases after it are ignored.
    windows : sequence of int
        Conversion windows in days, counted from the first purchase day.
    cohorts : int
        How many first-purchase months to show, ending with the month of
        ``as_of``.

    Returns
    -------
    DataFrame
        One row per (``cohort_month``, ``window_days``), oldest cohort first:

        - ``cohort_month`` (date, first of the month of the first purchase)
        - ``window_days``
        - ``customers``: new customers of the month
        - ``mature``: whether the cohort is old enough for the window
        - ``f2_customers``: second purchase within ``window_days`` of the first
        - ``f2_rate``: ``f2_customers / customers``
        - ``f3_customers``: third purchase within ``window_days`` of the first
        - ``f3_rate``: ``f3_customers / f2_customers`` (F2 → F3)

        The counts and rates are missing (NA) when ``mature`` is False.
    """
    wins = _check_windows(windows)
    params = period_params(as_of)
    params["windows"] = wins
    params["first_cohort"] = add_months(params["as_of"], -(max(int(cohorts), 1) - 1))
    df = query_df(
        store,
        "WITH "  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + PURCHASES_CTE
        + ","
        + _FIRST_DAYS_CTE
        + """,
        wins AS (SELECT unnest(CAST($windows AS INTEGER[])) AS window_days),
        cohort AS (
            SELECT CAST(date_trunc('month', d1) AS DATE) AS cohort_month, d1, d2, d3 FROM first_days
            WHERE d1 >= $first_cohort
        )
        SELECT c.cohort_month, w.window_days,
               count(*) AS customers,
               last_day(c.cohort_month) + w.window_days <= $as_of AS mature,
               count(*) FILTER (WHERE c.d2 - c.d1 <= w.window_days) AS f2_customers,
               count(*) FILTER (WHERE c.d3 - c.d1 <= w.window_days) AS f3_customers
        FROM cohort c CROSS JOIN wins w
        GROUP BY ALL
        ORDER BY c.cohort_month, w.window_days
        """,
        params,
    )
    columns = [
        "cohort_month",
        "window_days",
        "customers",
        "mature",
        "f2_customers",
        "f2_rate",
        "f3_customers",
        "f3_rate",
    ]
    if df.empty:
        return pd.DataFrame(columns=columns)
    df["cohort_month"] = pd.to_datetime(df["cohort_month"]).dt.date
    df["mature"] = df["mature"].astype(bool)
    for col in ("f2_customers", "f3_customers"):
        df[col] = df[col].astype("Int64").where(df["mature"])
    df["f2_rate"] = (df["f2_customers"] / df["customers"]).astype("Float64")
    df["f3_rate"] = (df["f3_customers"] / df["f2_customers"].where(df["f2_customers"] > 0)).astype("Float64")
    return df[columns].reset_index(drop=True)


def repeat_conversion_summary(conversion: pd.DataFrame) -> pd.DataFrame:
    """Pooled F2 / F3 conversion over the mature cohorts of :func:`repeat_conversion`.

    Returns
    -------
    DataFrame
        ``window_days``, ``cohorts`` (mature cohorts pooled), ``customers``,
        ``f2_customers``, ``f2_rate``, ``f3_customers``, ``f3_rate``; rates are
        NA for a window no cohort is old enough for.
    """
    columns = ["window_days", "cohorts", "customers", "f2_customers", "f2_rate", "f3_customers", "f3_rate"]
    if conversion.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for window, part in conversion.groupby("window_days", sort=True):
        mature = part[part["mature"]]
        customers = int(mature["customers"].sum())
        f2 = int(mature["f2_customers"].sum()) if len(mature) else 0
        f3 = int(mature["f3_customers"].sum()) if len(mature) else 0
        rows.append(
            {
                "window_days": int(window),
                "cohorts": len(mature),
                "customers": customers,
                "f2_customers": f2,
                "f2_rate": f2 / customers if customers else pd.NA,
                "f3_customers": f3,
                "f3_rate": f3 / f2 if f2 else pd.NA,
            }
        )
    out = pd.DataFrame(rows, columns=columns)
    for col in ("f2_rate", "f3_rate"):
        out[col] = out[col].astype("Float64")
    return out


def days_to_second_purchase(
    store: Store,
    as_of: dt.date | str,
    bin_days: int = 30,
    max_days: int = 360,
) -> pd.DataFrame:
    """Distribution of days from the first to the second purchase day.

    Parameters
    ----------
    store : Store
    as_of : date
    bin_days : int
        Width of a bin in days: 1–30, 31–60, ...
    max_days : int
        Gaps longer than this fall into one open-ended last bin.

    Returns
    -------
    DataFrame
        ``bin_start``, ``bin_end`` (NA for the open last bin), ``customers``,
        ``share`` (of customers with a second purchase) and
        ``cumulative_share``; every bin, zeros included.  Empty when nobody
        has bought twice.
    """
    if bin_days < 1 or max_days < bin_days:
        raise InputError("日数の区切りが正しくありません（区切り幅は1日以上、上限は区切り幅以上）。")
    n_bins = max_days // bin_days
    params = period_params(as_of)
    params.update({"bin": int(bin_days), "n_bins": int(n_bins)})
    df = query_df(
        store,
        "WITH "  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + PURCHASES_CTE
        + ","
        + _FIRST_DAYS_CTE
        + """
        SELECT least((d2 - d1 - 1) // $bin, $n_bins) AS bin, count(*) AS customers
        FROM first_days WHERE d2 IS NOT NULL
        GROUP BY ALL
        """,
        params,
    )
    columns = ["bin_start", "bin_end", "customers", "share", "cumulative_share"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    counts = df.set_index("bin")["customers"].reindex(range(n_bins + 1), fill_value=0)
    out = pd.DataFrame(
        {
            "bin_start": [i * bin_days + 1 for i in range(n_bins + 1)],
            "bin_end": pd.array([(i + 1) * bin_days for i in range(n_bins)] + [None], dtype="Int64"),
            "customers": counts.astype("int64").to_numpy(),
        }
    )
    out["share"] = share_of_total(out["customers"])
    out["cumulative_share"] = out["share"].cumsum()
    return out[columns]


def second_purchase_stats(store: Store, as_of: dt.date | str) -> dict[str, float | int | None]:
    """Headline numbers of the second purchase.

    Returns
    -------
    dict
        ``customers`` (with any purchase), ``repeat_customers`` (with a second
        purchase day), ``repeat_share``, ``median_days`` and ``mean_days`` from
        the first to the second purchase day (None without repeaters).
    """
    row = query_row(
        store,
        "WITH "  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + PURCHASES_CTE
        + ","
        + _FIRST_DAYS_CTE
        + """
        SELECT count(*), count(d2), median(d2 - d1), avg(d2 - d1) FROM first_days
        """,
        period_params(as_of),
    )
    customers, repeaters, median_days, mean_days = row
    return {
        "customers": int(customers),
        "repeat_customers": int(repeaters),
        "repeat_share": repeaters / customers if customers else None,
        "median_days": None if median_days is None else float(median_days),
        "mean_days": None if mean_days is None else float(mean_days),
    }


def revenue_new_vs_repeat(store: Store, as_of: dt.date | str, months: int = 24) -> pd.DataFrame:
    """Monthly revenue split into first-purchase-day orders and repeat orders.

    An order is 新規 when it falls on the customer's first purchase day,
    otherwise リピート.

    Parameters
    ----------
    store : Store
    as_of : date
    months : int
        Number of months shown, ending with the month of ``as_of`` (which may
        be incomplete).

    Returns
    -------
    DataFrame
        Two rows per month (新規 first), oldest first: ``month`` (date, first
        day), ``customer_type`` ('新規' | 'リピート'), ``orders``,
        ``customers``, ``revenue``, ``revenue_share`` (within the month).
        Empty when there are no purchases in the period.
    """
    params = period_params(as_of)
    first_month = add_months(params["as_of"], -(max(int(months), 1) - 1))
    params["first_month"] = first_month
    df = query_df(
        store,
        "WITH "  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + PURCHASES_CTE
        + """,
        firsts AS (SELECT customer_id, min(order_date) AS d1 FROM purchases GROUP BY customer_id)
        SELECT CAST(date_trunc('month', p.order_date) AS DATE) AS month,
               CASE WHEN p.order_date = f.d1 THEN 0 ELSE 1 END AS kind,
               count(*) AS orders, count(DISTINCT p.customer_id) AS customers,
               sum(p.revenue) AS revenue
        FROM purchases p JOIN firsts f USING (customer_id)
        WHERE p.order_date >= $first_month
        GROUP BY ALL
        """,
        params,
    )
    columns = ["month", "customer_type", "orders", "customers", "revenue", "revenue_share"]
    if df.empty:
        return pd.DataFrame(columns=columns)
    df["month"] = pd.to_datetime(df["month"]).dt.date
    data_start = max(first_month, min(df["month"]))  # no empty months before the shop's first sale
    all_months = [m for m in (add_months(first_month, i) for i in range(max(int(months), 1))) if m >= data_start]
    grid = pd.MultiIndex.from_product([all_months, [0, 1]], names=["month", "kind"])
    df = df.set_index(["month", "kind"]).reindex(grid, fill_value=0).reset_index()
    df["customer_type"] = df["kind"].map({0: NEW, 1: REPEAT}).astype("str")
    df["orders"] = df["orders"].astype("int64")
    df["customers"] = df["customers"].astype("int64")
    df["revenue"] = df["revenue"].astype("float64")
    total = df.groupby("month")["revenue"].transform("sum")
    df["revenue_share"] = (df["revenue"] / total.where(total != 0)).astype("float64")
    return df[columns]
