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
    The mean churn ``alpha / (alpha + beta)`` (logit) and ``1 / (alpha + beta)`` (log, bounded) are found
    with Nelder–Mead (SciPy) from three starting points; identical subscriptions are grouped with
    weights first.  Without heterogeneity the fit ends at the bound: a geometric model.

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

The fits per start cohort from the store are in
:mod:`crm_core.analytics.subscription` (:func:`~crm_core.analytics.subscription.retention_projection`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from crm_core.errors import InputError

MIN_SUBSCRIPTIONS = 20
"""Fewest subscriptions in a cohort for a fit of its own."""
MIN_ENDED = 5
"""Fewest ended subscriptions in a cohort for a fit of its own."""
ANNUAL_DISCOUNT = 0.10
"""Default annual discount rate of expected remaining deliveries."""
HORIZON = 24
"""Deliveries of the projected survival curve."""
LOG_KAPPA_BOUND = 10.0
"""The fit keeps alpha + beta below e**10 (beyond, the model is a plain geometric one)."""


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

    # Identical subscriptions (same deliveries, status and entry) enter the likelihood once, weighted.
    e = np.ones_like(k) if entry is None else np.asarray(entry, dtype=float)
    keys, inverse = np.unique(np.column_stack([k, act, e]), axis=0, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=w)
    uk, uact, ue = keys[:, 0], keys[:, 1].astype(bool), keys[:, 2]

    # Searched as (logit of the mean churn alpha / (alpha + beta), log of 1 / (alpha + beta)): well scaled, and
    # subscriptions that all churn alike (no heterogeneity, alpha and beta without bound) end at the lower
    # bound of the second coordinate -- a geometric model with the same mean churn -- instead of drifting away.
    def params(x: np.ndarray) -> tuple[float, float]:
        mean, size = 1 / (1 + math.exp(-x[0])), math.exp(-x[1])
        return mean * size, (1 - mean) * size

    def nll(x: np.ndarray) -> float:
        if not -LOG_KAPPA_BOUND <= x[1] <= 5 or abs(x[0]) > 30:
            return math.inf
        return -log_likelihood(*params(x), uk, uact, ue, counts)

    best = None
    for start in ((-1.0, 0.0), (-2.0, -2.0), (0.0, 2.0)):
        res = optimize.minimize(nll, np.array(start), method="Nelder-Mead",
                                options={"xatol": 1e-8, "fatol": 1e-11, "maxiter": 2000})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    alpha, beta = params(best.x)
    return Fit(alpha=float(alpha), beta=float(beta), log_likelihood=float(-best.fun),
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
