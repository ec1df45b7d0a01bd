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
import math
from typing import Any

import pandas as pd

from crm_core import clock
from crm_core.analytics.value import PURCHASES_CTE, add_months, as_of_date, latest_order_date, period_params, query_df
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.model import sbg

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


# The sBG projection (see :mod:`crm_core.model.sbg`): start cohorts and how they are labelled.
COHORT_UNITS = {"month": "月", "quarter": "四半期", "half": "半年", "year": "年"}
ALL_COHORTS = "全体"


# -- sBG projection per start cohort ------------------------------------------------------------------
def _cohort_label(day: dt.date, unit: str) -> str:
    if unit == "month":
        return f"{day.year}年{day.month}月"
    if unit == "quarter":
        return f"{day.year}年{(day.month - 1) // 3 + 1}Q"
    if unit == "half":
        return f"{day.year}年{'上期' if day.month <= 6 else '下期'}"
    return f"{day.year}年"


def _cohort_key(day: dt.date, unit: str) -> tuple[int, int]:
    size = {"month": 1, "quarter": 3, "half": 6, "year": 12}[unit]
    return day.year, (day.month - 1) // size


def retention_projection(store: Store, as_of: dt.date | str | None = None, grace_days: int | None = None, unit: str = "half",
                         horizon: int = sbg.HORIZON, annual_discount: float = sbg.ANNUAL_DISCOUNT) -> dict[str, Any]:
    """sBG fits per start cohort and for all subscriptions together.

    Returns
    -------
    dict
        ``as_of``, ``unit``, ``annual_discount``, ``cohorts`` (a list, all
        subscriptions first as :data:`ALL_COHORTS`, then oldest cohort
        first): ``cohort, subscriptions, ended, active, fitted`` (False when
        the cohort is too small: ``note`` says why), ``alpha, beta,
        mean_churn, log_likelihood, interval_days, discount`` (per
        delivery), ``survival`` (projected share reaching delivery 1 ..
        ``horizon``), ``observed`` (the Kaplan–Meier-style share reaching each
        delivery seen so far), ``derl_new`` (discounted expected deliveries
        of a new subscriber after the first), ``expected_next_12``,
        ``avg_amount``, ``value_new`` (``(1 + derl_new) × avg_amount``: the
        projected value of a new subscription, first delivery included).
    """
    if unit not in COHORT_UNITS:
        raise InputError("コホートの単位は 月・四半期・半年・年 から選んでください。", f"bad unit {unit!r}")
    if as_of is None:
        as_of = latest_order_date(store) or clock.today()
    grace = GRACE_DAYS if grace_days is None else int(grace_days)
    subs = subscription_table(store, as_of, grace)
    out: dict[str, Any] = {"as_of": str(as_of_date(as_of)), "unit": unit, "grace_days": grace,
                           "annual_discount": annual_discount, "horizon": horizon, "cohorts": []}
    if subs.empty:
        return out
    subs = subs.assign(key=[_cohort_key(d, unit) for d in subs["first_date"]])
    groups: list[tuple[str, pd.DataFrame]] = [(ALL_COHORTS, subs)]
    for _, part in subs.groupby("key", sort=True):
        groups.append((_cohort_label(part["first_date"].iloc[0], unit), part))
    for label, part in groups:
        out["cohorts"].append(_cohort_row(label, part, horizon, annual_discount, pooled=label == ALL_COHORTS))
    return out


def _observed_survival(part: pd.DataFrame, horizon: int) -> list[float | None]:
    """Share reaching each delivery, continuing only over subscriptions that could be judged (product-limit)."""
    k = part["deliveries"].to_numpy()
    act = part["active"].to_numpy()
    surv, out = 1.0, [1.0]
    for n in range(1, horizon):
        at_risk = (k >= n) & ~((k == n) & act)
        if at_risk.sum() == 0:
            break
        surv *= float((k[at_risk] >= n + 1).mean())
        out.append(surv)
    return out


def _cohort_row(label: str, part: pd.DataFrame, horizon: int, annual: float, pooled: bool) -> dict[str, Any]:
    n, ended = len(part), int((~part["active"]).sum())
    interval = float(part["median_interval_days"].median()) if part["median_interval_days"].notna().any() else math.nan
    row: dict[str, Any] = {
        "cohort": label, "subscriptions": n, "ended": ended, "active": n - ended, "fitted": False, "note": "",
        "alpha": None, "beta": None, "mean_churn": None, "log_likelihood": None,
        "interval_days": None if math.isnan(interval) else interval,
        "discount": sbg.per_delivery_discount(annual, interval),
        "survival": [], "observed": _observed_survival(part, horizon),
        "derl_new": None, "expected_next_12": None, "avg_amount": float(part["avg_amount"].mean()), "value_new": None,
    }
    small = n < sbg.MIN_SUBSCRIPTIONS or ended < sbg.MIN_ENDED
    if ended == 0 or (small and not pooled):
        row["note"] = (f"定期が{sbg.MIN_SUBSCRIPTIONS}件未満か、解約が{sbg.MIN_ENDED}件未満のため、このコホート単独では予測しません"
                       f"（{ALL_COHORTS}の予測を参考にしてください）。" if ended else "解約した定期がまだないため予測できません。")
        return row
    f = sbg.fit(part["deliveries"].to_numpy(), part["active"].to_numpy(), part["first_seq"].to_numpy())
    d = row["discount"]
    derl_new = float(sbg.derl(f.alpha, f.beta, 1, d))
    row.update(
        fitted=True, alpha=f.alpha, beta=f.beta, mean_churn=f.mean_churn, log_likelihood=f.log_likelihood,
        survival=sbg.projected_survival(f.alpha, f.beta, horizon).tolist(), derl_new=derl_new,
        expected_next_12=sbg.expected_deliveries(f.alpha, f.beta, 1, 12),
        value_new=(1 + derl_new) * row["avg_amount"],
    )
    if small:
        row["note"] = "定期の件数が少ないため、予測の幅は大きめです。"
    elif f.alpha + f.beta > math.exp(sbg.LOG_KAPPA_BOUND - 0.5):
        row["note"] = "定期ごとのやめやすさに差が見られず、毎回同じ確率でやめる形（幾何分布）になりました。"
    return row


def subscriber_values(store: Store, as_of: dt.date | str | None = None, grace_days: int | None = None,
                      annual_discount: float = sbg.ANNUAL_DISCOUNT) -> pd.DataFrame:
    """Projected remaining deliveries and value of every subscription that may still continue.

    Uses the fit over all subscriptions (cohorts of a small shop are too thin
    for one fit each).

    Returns
    -------
    DataFrame
        ``source, subscription_id, customer_id, deliveries, avg_amount,
        p_next`` (chance of the next delivery), ``expected_remaining``
        (discounted, DERL), ``projected_value`` (yen); empty when nothing can
        be fitted.
    """
    if as_of is None:
        as_of = latest_order_date(store) or clock.today()
    grace = GRACE_DAYS if grace_days is None else int(grace_days)
    subs = subscription_table(store, as_of, grace)
    columns = ["source", "subscription_id", "customer_id", "deliveries", "avg_amount", "p_next", "expected_remaining", "projected_value"]
    if subs.empty or not (~subs["active"]).any():
        return pd.DataFrame(columns=columns)
    f = sbg.fit(subs["deliveries"].to_numpy(), subs["active"].to_numpy(), subs["first_seq"].to_numpy())
    interval = float(subs["median_interval_days"].median()) if subs["median_interval_days"].notna().any() else math.nan
    d = sbg.per_delivery_discount(annual_discount, interval)
    live = subs[subs["active"]].copy()
    k = live["deliveries"].to_numpy()
    live["p_next"] = sbg.retention_rate(f.alpha, f.beta, k + 0.0)
    # Posterior after k deliveries (k - 1 renewals): DERL counts from the next delivery on.
    live["expected_remaining"] = sbg.derl(f.alpha, f.beta, k, d)
    live["projected_value"] = live["expected_remaining"] * live["avg_amount"]
    return live[columns].sort_values("projected_value", ascending=False).reset_index(drop=True)


# -- text for the command line ----------------------------------------------------------------------
def retention_text(report: dict[str, Any], show: int = 12) -> str:
    """The fits as plain text for the command line."""
    lines = [f"定期の継続予測（sBGモデル、基準日 {report['as_of']}、コホート単位 {COHORT_UNITS[report['unit']]}、"
             f"最後のお届けから{report['grace_days']}日以内は継続中として扱います）"]
    if not report["cohorts"]:
        lines.append("  定期購入の注文がありません。")
    for c in report["cohorts"]:
        head = f"  {c['cohort']}: 定期 {c['subscriptions']}件（解約 {c['ended']}件・継続中 {c['active']}件）"
        if not c["fitted"]:
            lines.append(head + " — " + c["note"])
            continue
        curve = " ".join(f"{s:.0%}" for s in c["survival"][:show])
        lines.append(f"{head} alpha={c['alpha']:.3f} beta={c['beta']:.3f} 平均解約率 {c['mean_churn']:.1%}/回")
        lines.append(f"    到達率（1〜{min(show, len(c['survival']))}回目）: {curve}")
        lines.append(f"    新規1件の今後のお届け（割引後）{c['derl_new']:.1f}回・予測価値 ¥{c['value_new']:,.0f}")
    return "\n".join(lines)
