"""Subscription retention projected with the shifted-beta-geometric (sBG) model.

Model (Fader & Hardie 2007, "How to project customer retention", Journal of
Interactive Marketing 21(1))
    Each subscription stops after any delivery with its own probability
    ``θ``; ``θ`` varies across subscriptions as Beta(``alpha``, ``beta``).
    With ``T`` the number of deliveries a subscription receives:

    * ``P(T = t) = B(alpha + 1, beta + t − 1) / B(alpha, beta)`` (t ≥ 1)
    * ``P(T > t) = S(t) = B(alpha, beta + t) / B(alpha, beta)``
    * the continuation rate after delivery ``t``:
      ``(beta + t − 1) / (alpha + beta + t − 1)`` — it rises with ``t``
      because the subscriptions that stay are the loyal ones.

Fit (maximum likelihood, per start cohort)
    A subscription that ended after ``k`` deliveries contributes
    ``log P(T = k)``; one that may still continue (its last delivery is within
    the grace days, see :mod:`crm_core.subscription`) is right-censored and
    contributes ``log S(k − 1)`` (it reached ``k``).  A subscription whose
    first delivery in the data has number ``e > 1`` started before the data
    (left-truncated) and is conditioned on reaching ``e``: ``− log S(e − 1)``.
    ``log alpha`` and ``log beta`` are found with L-BFGS-B (SciPy).

Projection
    Survival: the share of a cohort's subscriptions that reach delivery ``n``
    is ``S(n − 1)``.  Expected remaining deliveries of a subscription that has
    had ``n`` deliveries (``n − 1`` renewals) is the discounted expected
    residual lifetime of Fader & Hardie (2010), "Customer-base valuation in a
    contractual setting: the perils of ignoring heterogeneity", Marketing
    Science 29(1), eq. for DERL::

        DERL = (beta + n − 1) / (alpha + beta + n − 1) · 2F1(1, beta + n; alpha + beta + n; 1 / (1 + d))

    counting the next delivery undiscounted and each later one discounted by
    ``1 / (1 + d)`` per delivery interval (``d`` from an annual rate and the
    cohort's median interval).  Undiscounted, the expected remaining count is
    infinite when ``alpha ≤ 1``, which is why the discounted value is used;
    :func:`expected_deliveries` gives the undiscounted count within a horizon.
    The projected subscription value is DERL × the subscription's average
    delivery amount.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

from crm_core.db import Store
from crm_core.errors import InputError

MIN_SUBSCRIPTIONS = 20
"""Fewest subscriptions in a cohort for a fit of its own."""
MIN_ENDED = 5
"""Fewest ended subscriptions in a cohort for a fit of its own."""
ANNUAL_DISCOUNT = 0.10
"""Default annual discount rate of expected remaining deliveries."""
HORIZON = 24
"""Deliveries of the projected survival curve."""
COHORT_UNITS = {"month": "月", "quarter": "四半期", "half": "半年", "year": "年"}
ALL_COHORTS = "全体"


# -- the model --------------------------------------------------------------------------------------
def survival(alpha: float, beta: float, t: np.ndarray | int) -> np.ndarray:
    """``S(t) = P(T > t)``: the share still subscribed after ``t`` deliveries (``S(0) = 1``)."""
    t = np.asarray(t, dtype=float)
    return np.exp(special.betaln(alpha, beta + t) - special.betaln(alpha, beta))


def churn_probability(alpha: float, beta: float, t: np.ndarray | int) -> np.ndarray:
    """``P(T = t)``: the share stopping right after delivery ``t`` (t ≥ 1)."""
    t = np.asarray(t, dtype=float)
    return np.exp(special.betaln(alpha + 1, beta + t - 1) - special.betaln(alpha, beta))


def retention_rate(alpha: float, beta: float, t: np.ndarray | int) -> np.ndarray:
    """Continuation rate from delivery ``t`` to ``t + 1``: ``(beta + t − 1) / (alpha + beta + t − 1)``."""
    t = np.asarray(t, dtype=float)
    return (beta + t - 1) / (alpha + beta + t - 1)


def log_likelihood(alpha: float, beta: float, deliveries: np.ndarray, active: np.ndarray,
                   entry: np.ndarray | None = None, weights: np.ndarray | None = None) -> float:
    """Log-likelihood of subscriptions (see the module docstring)."""
    k = np.asarray(deliveries, dtype=float)
    act = np.asarray(active, dtype=bool)
    w = np.ones_like(k) if weights is None else np.asarray(weights, dtype=float)
    base = special.betaln(alpha, beta)
    ll = np.where(act, special.betaln(alpha, beta + k - 1), special.betaln(alpha + 1, beta + k - 1)) - base
    if entry is not None:
        e = np.asarray(entry, dtype=float)
        ll = ll - np.where(e > 1, special.betaln(alpha, beta + e - 1) - base, 0.0)
    return float((w * ll).sum())


@dataclass
class Fit:
    """A fitted sBG model of one group of subscriptions."""

    alpha: float
    beta: float
    log_likelihood: float
    subscriptions: int
    ended: int
    converged: bool

    @property
    def mean_churn(self) -> float:
        """Mean probability of stopping after a delivery, ``alpha / (alpha + beta)``."""
        return self.alpha / (self.alpha + self.beta)


def fit(deliveries: np.ndarray, active: np.ndarray, entry: np.ndarray | None = None,
        weights: np.ndarray | None = None) -> Fit:
    """Maximum-likelihood sBG fit.

    Parameters
    ----------
    deliveries : array of int
        Deliveries each subscription received (≥ 1).
    active : array of bool
        True when the subscription may still continue (right-censored).
    entry : array of int, optional
        The first delivery number observed (left truncation); 1 by default.
    weights : array, optional
        Counts of identical subscriptions (aggregated data).

    Raises
    ------
    InputError
        Without subscriptions, or when none has ended (nothing to fit).
    """
    k = np.asarray(deliveries, dtype=float)
    act = np.asarray(active, dtype=bool)
    w = np.ones_like(k) if weights is None else np.asarray(weights, dtype=float)
    if not len(k) or (k < 1).any():
        raise InputError("継続の予測には、お届け回数が1回以上の定期が必要です。", "no deliveries")
    ended = int(w[~act].sum())
    if ended == 0:
        raise InputError("解約した定期がまだないため、継続の予測ができません。", "nothing ended")

    def nll(x: np.ndarray) -> float:
        return -log_likelihood(math.exp(x[0]), math.exp(x[1]), k, act, entry, w)

    best = None
    for start in ((0.0, 0.0), (-1.0, 1.0), (1.0, 2.0)):
        res = optimize.minimize(nll, np.array(start), method="L-BFGS-B", bounds=[(-10, 10), (-10, 12)])
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    return Fit(alpha=float(math.exp(best.x[0])), beta=float(math.exp(best.x[1])), log_likelihood=float(-best.fun),
               subscriptions=int(w.sum()), ended=ended, converged=bool(best.success))


def fit_survivors(survivors: list[float]) -> Fit:
    """Fit from a survivor table: ``survivors[t]`` still subscribed after ``t`` renewals (``t = 0`` is the start).

    The layout of Fader & Hardie's (2007) data: a cohort of ``survivors[0]``
    customers, ``survivors[t − 1] − survivors[t]`` of whom stop after period
    ``t``; those left after the last period are right-censored.
    """
    s = np.asarray(survivors, dtype=float)
    lost = s[:-1] - s[1:]
    periods = np.arange(1, len(s))
    deliveries = np.concatenate([periods, [len(s)]])
    active = np.concatenate([np.zeros(len(lost), dtype=bool), [True]])
    return fit(deliveries, active, weights=np.concatenate([lost, [s[-1]]]))


def projected_survival(alpha: float, beta: float, horizon: int = HORIZON) -> np.ndarray:
    """Share of subscriptions expected to reach delivery ``n`` for ``n = 1 .. horizon``."""
    return survival(alpha, beta, np.arange(0, horizon))


def derl(alpha: float, beta: float, n: np.ndarray | int, discount: float) -> np.ndarray:
    """Discounted expected remaining deliveries after ``n`` deliveries (Fader & Hardie 2010).

    ``discount`` is the rate per delivery interval (> 0; with 0 the value is
    finite only when ``alpha > 1``).
    """
    n = np.asarray(n, dtype=float)
    z = 1.0 / (1.0 + discount)
    if discount <= 0 and alpha <= 1:
        return np.full_like(n, np.inf)
    lead = (beta + n - 1) / (alpha + beta + n - 1)
    return lead * special.hyp2f1(1.0, beta + n, alpha + beta + n, z)


def expected_deliveries(alpha: float, beta: float, n: int, horizon: int = 12) -> float:
    """Expected further deliveries within the next ``horizon`` after ``n`` deliveries (undiscounted)."""
    ahead = survival(alpha, beta, np.arange(n, n + horizon)) / survival(alpha, beta, n - 1)
    return float(ahead.sum())


def per_delivery_discount(annual: float, interval_days: float) -> float:
    """The discount rate per delivery interval from an annual rate."""
    if interval_days is None or math.isnan(interval_days) or interval_days <= 0:
        interval_days = 30.0
    return (1.0 + annual) ** (interval_days / 365.0) - 1.0


# -- cohorts from the store --------------------------------------------------------------------------
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


def cohort_fits(store: Store, as_of: dt.date | str | None = None, grace_days: int | None = None, unit: str = "half",
                horizon: int = HORIZON, annual_discount: float = ANNUAL_DISCOUNT) -> dict[str, Any]:
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
    from crm_core.analytics import subscription
    from crm_core.analytics import value as analytics

    if unit not in COHORT_UNITS:
        raise InputError("コホートの単位は 月・四半期・半年・年 から選んでください。", f"bad unit {unit!r}")
    if as_of is None:
        as_of = analytics.latest_order_date(store) or dt.date.today()
    grace = subscription.GRACE_DAYS if grace_days is None else int(grace_days)
    subs = subscription.subscription_table(store, as_of, grace)
    out: dict[str, Any] = {"as_of": str(analytics.as_of_date(as_of)), "unit": unit, "grace_days": grace,
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
        "discount": per_delivery_discount(annual, interval),
        "survival": [], "observed": _observed_survival(part, horizon),
        "derl_new": None, "expected_next_12": None, "avg_amount": float(part["avg_amount"].mean()), "value_new": None,
    }
    small = n < MIN_SUBSCRIPTIONS or ended < MIN_ENDED
    if ended == 0 or (small and not pooled):
        row["note"] = (f"定期が{MIN_SUBSCRIPTIONS}件未満か、解約が{MIN_ENDED}件未満のため、このコホート単独では予測しません"
                       f"（{ALL_COHORTS}の予測を参考にしてください）。" if ended else "解約した定期がまだないため予測できません。")
        return row
    f = fit(part["deliveries"].to_numpy(), part["active"].to_numpy(), part["first_seq"].to_numpy())
    d = row["discount"]
    derl_new = float(derl(f.alpha, f.beta, 1, d))
    row.update(
        fitted=True, alpha=f.alpha, beta=f.beta, mean_churn=f.mean_churn, log_likelihood=f.log_likelihood,
        survival=projected_survival(f.alpha, f.beta, horizon).tolist(), derl_new=derl_new,
        expected_next_12=expected_deliveries(f.alpha, f.beta, 1, 12),
        value_new=(1 + derl_new) * row["avg_amount"],
    )
    if small:
        row["note"] = "定期の件数が少ないため、予測の幅は大きめです。"
    return row


def subscriber_values(store: Store, as_of: dt.date | str | None = None, grace_days: int | None = None,
                      annual_discount: float = ANNUAL_DISCOUNT) -> pd.DataFrame:
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
    from crm_core.analytics import subscription
    from crm_core.analytics import value as analytics

    if as_of is None:
        as_of = analytics.latest_order_date(store) or dt.date.today()
    grace = subscription.GRACE_DAYS if grace_days is None else int(grace_days)
    subs = subscription.subscription_table(store, as_of, grace)
    columns = ["source", "subscription_id", "customer_id", "deliveries", "avg_amount", "p_next", "expected_remaining", "projected_value"]
    if subs.empty or not (~subs["active"]).any():
        return pd.DataFrame(columns=columns)
    f = fit(subs["deliveries"].to_numpy(), subs["active"].to_numpy(), subs["first_seq"].to_numpy())
    interval = float(subs["median_interval_days"].median()) if subs["median_interval_days"].notna().any() else math.nan
    d = per_delivery_discount(annual_discount, interval)
    live = subs[subs["active"]].copy()
    k = live["deliveries"].to_numpy()
    live["p_next"] = retention_rate(f.alpha, f.beta, k + 0.0)
    # Posterior after k deliveries (k - 1 renewals): DERL counts from the next delivery on.
    live["expected_remaining"] = derl(f.alpha, f.beta, k, d)
    live["projected_value"] = live["expected_remaining"] * live["avg_amount"]
    return live[columns].sort_values("projected_value", ascending=False).reset_index(drop=True)


# -- command line ---------------------------------------------------------------------------------
def report_text(report: dict[str, Any], show: int = 12) -> str:
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
