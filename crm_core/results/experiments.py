"""Experiment statistics: sample-ratio check, detectable effect, chance to win, revenue capping, CUPED.

Pure functions of counts, sums and arrays (no store, no SQL); :mod:`crm_core.results`
and :mod:`crm_core.campaigns` call them.  Methods and sources:

Sample-ratio mismatch (SRM)
    Pearson's chi-squared goodness-of-fit test of the group sizes against the
    shares the assignment was set up with (``scipy.stats.chisquare``).  A
    p-value below :data:`SRM_P` (0.001, the threshold GrowthBook uses) means
    the split itself is broken (recipients lost or added after assignment),
    and no lift computed from it can be trusted.  Not computed when an
    expected group size is below 5 (the chi-squared approximation fails).

Minimum detectable effect (MDE)
    Two-sided test at level ``alpha`` (0.05) with power 0.8.  Conversion: the
    smallest rise ``d`` of the base rate ``p`` for which the pooled
    two-proportion z-test the report uses has 80% power, from its normal
    approximation ``Φ((d − z(1 − alpha/2) · se0) / se1) = power`` (``se0``
    pooled under no effect, ``se1`` with ``p + d`` in the treatment), solved
    numerically (the power statsmodels' ``power_proportions_2indep``
    computes).  Revenue per recipient: ``(z(1 − alpha/2) + z(power)) · sigma ·
    sqrt(1/n_treat + 1/n_hold)`` with ``sigma`` the standard deviation of
    revenue per customer (``statsmodels.stats.power.NormalIndPower``).  The
    suggested holdout share is the smallest (up to 50%) whose conversion MDE
    is at most the target relative lift (20%); none exists when even a 50/50
    split cannot detect it.

Chance to win (Bayesian, flat prior)
    As GrowthBook's stats engine (``gbstats``, MIT) does with its default
    improper flat prior: from per-group ``n``, sum and sum of squares, the
    means and variances; the relative lift ``(m1 − m0) / m0`` with its
    delta-method variance ``v1 / (n1 m0²) + v0 m1² / (n0 m0⁴)``; with a flat
    prior the posterior of the lift is normal with that mean and variance, so
    the chance that the treatment is better is ``Φ(lift / sd)`` and the 95%
    credible interval is ``lift ± 1.96 sd``.  Conversion uses the same
    formulas with 0/1 values (sum = sum of squares = buyers).  Small samples
    are refused by the caller with the same rule as the frequentist tests.

Revenue capping
    Per-customer revenue is capped (winsorised from above) at the
    :data:`CAP_PERCENTILE` (99.9th) percentile of both groups pooled, so a
    single bulk buyer cannot make or break a campaign (Statsig caps revenue
    metrics at the 99.9th percentile by default).

CUPED (Deng, Xu, Kohavi & Walker 2013, "Improving the sensitivity of online controlled experiments by utilizing pre-experiment data")
    ``Y' = Y − θ (X − mean X)`` with ``X`` each customer's revenue in a
    pre-period and ``θ = cov(Y, X) / var(X)`` over both groups pooled; the
    lift and Welch interval are computed on ``Y'``.  The estimate stays
    unbiased (the assignment is random, so ``X`` is balanced in expectation)
    and the interval narrows by about ``sqrt(1 − corr(X, Y)²)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats

SRM_P = 0.001
"""Below this chi-squared p-value the split is called broken."""
CAP_PERCENTILE = 99.9
"""Default percentile at which per-customer revenue is capped before lift."""
POWER = 0.8
ALPHA = 0.05
TARGET_LIFT = 0.2
"""The relative lift the holdout suggestion aims to detect."""
SRM_MESSAGE = ("グループの人数の比率が設定とずれています（比率のずれの検定 p={p:.4f}）。抽選のあと対象者が増えたり減ったりした可能性があり、"
               "この施策の効果（上乗せ）の数字は信頼できません。送らないグループのお客様に送ってしまっていないか、対象者の記録を確認してください。")


# -- sample-ratio mismatch -----------------------------------------------------------------------
def srm_check(observed: Sequence[int], expected_shares: Sequence[float], threshold: float = SRM_P) -> dict[str, Any]:
    """Chi-squared test of group sizes against the planned shares.

    Parameters
    ----------
    observed : sequence of int
        Recipients per group (e.g. holdout, variant A, variant B).
    expected_shares : sequence of float
        The planned share of each group (normalised to sum to 1).

    Returns
    -------
    dict
        ``chi2``, ``p`` (None when not computable), ``expected`` (counts),
        ``broken`` (p < threshold), ``message`` (Japanese, empty when fine).
    """
    obs = np.asarray(observed, dtype=float)
    shares = np.asarray(expected_shares, dtype=float)
    out: dict[str, Any] = {"chi2": None, "p": None, "expected": [], "broken": False, "message": "", "threshold": threshold}
    keep = shares > 0
    if len(obs) != len(shares) or keep.sum() < 2 or obs[~keep].sum() > 0:
        if len(obs) == len(shares) and obs[~keep].sum() > 0:  # recipients in a group planned to be empty
            out.update(broken=True, p=0.0, message=SRM_MESSAGE.format(p=0.0))
        return out
    obs, shares = obs[keep], shares[keep] / shares[keep].sum()
    expected = shares * obs.sum()
    out["expected"] = expected.tolist()
    if obs.sum() == 0 or expected.min() < 5:
        return out
    res = stats.chisquare(obs, expected)
    p = float(res.pvalue)
    out.update(chi2=float(res.statistic), p=p, broken=p < threshold)
    if out["broken"]:
        out["message"] = SRM_MESSAGE.format(p=p)
    return out


# -- detectable effect ----------------------------------------------------------------------------
def _zsum(alpha: float = ALPHA, power: float = POWER) -> float:
    return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))


def mde(n: int, holdout_share: float, sd: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest absolute difference of means detectable with ``power`` (two-sided, level ``alpha``)."""
    n1, n0 = n * (1 - holdout_share), n * holdout_share
    if n1 <= 0 or n0 <= 0 or not sd or math.isnan(sd):
        return math.nan
    return _zsum(alpha, power) * sd * math.sqrt(1 / n1 + 1 / n0)


def proportion_power(p0: float, diff: float, n1: float, n0: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided pooled two-proportion z-test when the treatment rate is ``p0 + diff``."""
    p1 = p0 + diff
    if n1 <= 0 or n0 <= 0 or not 0 < p0 < 1 or not 0 < p1 < 1:
        return math.nan
    pbar = (n1 * p1 + n0 * p0) / (n1 + n0)
    se0 = math.sqrt(pbar * (1 - pbar) * (1 / n1 + 1 / n0))
    se1 = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    z = float(stats.norm.ppf(1 - alpha / 2))
    return float(stats.norm.cdf((abs(diff) - z * se0) / se1) + stats.norm.cdf((-abs(diff) - z * se0) / se1))


def mde_conversion(n: int, holdout_share: float, p0: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest rise of the conversion rate ``p0`` the pooled z-test detects with ``power`` (NaN when none below 100%)."""
    n1, n0 = n * (1 - holdout_share), n * holdout_share
    if n1 <= 0 or n0 <= 0 or p0 is None or not 0 < p0 < 1:
        return math.nan
    top = 1 - p0 - 1e-9
    if proportion_power(p0, top, n1, n0, alpha) < power:
        return math.nan
    return float(optimize.brentq(lambda d: proportion_power(p0, d, n1, n0, alpha) - power, 1e-12, top, xtol=1e-12))


def share_for_lift(n: int, p0: float, lift: float = TARGET_LIFT, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Smallest holdout share (≤ 0.5) whose conversion MDE is at most ``lift × p0``; None when none is."""
    if n <= 0 or p0 is None or not 0 < p0 < 1 or p0 * (1 + lift) >= 1:
        return None
    diff = lift * p0

    def gap(h: float) -> float:
        return proportion_power(p0, diff, n * (1 - h), n * h, alpha) - power

    if gap(0.5) < 0:
        return None
    lo = 1.0 / n
    if gap(lo) >= 0:
        return lo
    return float(optimize.brentq(gap, lo, 0.5, xtol=1e-10))


def share_for_lift_mean(n: int, mean: float, sd: float, lift: float = TARGET_LIFT, alpha: float = ALPHA,
                        power: float = POWER) -> float | None:
    """Smallest holdout share (≤ 0.5) whose revenue MDE is at most ``lift × mean``; None when none is.

    Solves ``h(1 − h) ≥ 1/K`` with ``K = n (lift · mean)² / ((z + z)² sd²)``.
    """
    if n <= 0 or not mean or not sd or math.isnan(sd) or math.isnan(mean):
        return None
    k = n * (lift * mean) ** 2 / (_zsum(alpha, power) ** 2 * sd**2)
    if k < 4:
        return None
    return (1 - math.sqrt(1 - 4 / k)) / 2


def detectable_effect(n: int, holdout_share: float, base_conversion: float, revenue_mean: float, revenue_sd: float,
                      lift: float = TARGET_LIFT, min_group: int = 30, min_buyers: int = 5) -> dict[str, Any]:
    """What a test of ``n`` recipients with this holdout can detect, and which share would detect ``lift``.

    Returns
    -------
    dict
        ``n, holdout_share, treatment, holdout, base_conversion,
        revenue_mean, revenue_sd, mde_conversion`` (absolute, rate points),
        ``mde_conversion_relative``, ``mde_revenue`` (yen per recipient),
        ``mde_revenue_relative``, ``share_for_lift`` (conversion),
        ``share_for_lift_revenue``, ``too_small`` (no share up to 50% detects
        ``lift`` in conversion, or the holdout is below the verdict minimum),
        ``message`` (Japanese).
    """
    p = float(base_conversion) if base_conversion is not None else math.nan
    n0 = int(round(n * holdout_share))
    out: dict[str, Any] = {
        "n": int(n), "holdout_share": float(holdout_share), "treatment": int(n) - n0, "holdout": n0,
        "base_conversion": p, "revenue_mean": revenue_mean, "revenue_sd": revenue_sd, "lift": lift,
        "mde_conversion": mde_conversion(n, holdout_share, p), "mde_revenue": mde(n, holdout_share, revenue_sd),
    }
    out["mde_conversion_relative"] = out["mde_conversion"] / p if p and not math.isnan(p) else math.nan
    out["mde_revenue_relative"] = out["mde_revenue"] / revenue_mean if revenue_mean else math.nan
    out["share_for_lift"] = share_for_lift(n, p, lift)
    out["share_for_lift_revenue"] = share_for_lift_mean(n, revenue_mean, revenue_sd, lift)
    expected_buyers = n * p if not math.isnan(p) else 0
    none_works = out["share_for_lift"] is None
    out["too_small"] = none_works or n0 < min_group or expected_buyers < min_buyers
    pct = lift * 100
    if holdout_share <= 0:
        msg = "送らないグループが0%なので、効果（上乗せ）は測れません。"
    else:
        if math.isnan(out["mde_conversion"]):
            conv = "購入率がどれだけ上がっても見分けられません"
        else:
            conv = (f"見分けられる最小の差は、購入率で {out['mde_conversion'] * 100:.1f}ポイント"
                    f"（いつもの {_pct(p)} → {_pct(p + out['mde_conversion'])}、{_rise(out['mde_conversion_relative'])}）"
                    + (f"、1人あたり売上で ¥{out['mde_revenue']:,.0f}（{_rise(out['mde_revenue_relative'])}）"
                       if not math.isnan(out["mde_revenue"]) and revenue_mean else "")
                    + "です（8割の確率で「効果あり」と判定できる差）")
        msg = f"この設定（対象 {n:,}人、送らないグループ {holdout_share:.0%}＝{n0:,}人）では、{conv}。"
    if none_works:
        msg += (f"この人数といつもの購入率（{_pct(p)}）では、送らないグループを何%にしても、購入率{pct:.0f}%増は見分けられません。"
                "効果を測るには対象を広げるか、いくつかの配信をまとめて比べてください（全体の比較グループ）。")
    elif holdout_share > 0:
        need = math.ceil(out["share_for_lift"] * 100)
        msg += (f"購入率{pct:.0f}%増を見分けるには、送らないグループを{need}%以上にしてください。"
                if holdout_share * 100 < need else f"購入率{pct:.0f}%増は見分けられる設定です（{need}%以上で十分）。")
    if holdout_share > 0 and n0 < min_group:
        msg += f"送らないグループが{min_group}人未満のため、結果は「判断できません」になります。"
    out["message"] = msg
    return out


def chance_text(p: float | None) -> str:
    """A chance to win for people: "99.9%超" / "0.1%未満" at the extremes (never a flat 100%), "—" when withheld."""
    if p is None or math.isnan(p):
        return "—"
    if p > 0.999:
        return "99.9%超"
    if p < 0.001:
        return "0.1%未満"
    return f"{p:.0%}" if 0.01 <= p <= 0.99 else f"{p:.1%}"


def _rise(relative: float) -> str:
    """A relative rise in words: "35%増" or, from double on, "約2.4倍"."""
    if relative is None or math.isnan(relative):
        return "—"
    return f"{relative:.0%}増" if relative < 1 else f"約{1 + relative:.1f}倍"


def _pct(p: float) -> str:
    return "—" if p is None or math.isnan(p) else f"{p:.1%}"


# -- chance to win --------------------------------------------------------------------------------
def moments(n: int, total: float, total_sq: float) -> tuple[float, float]:
    """Mean and sample variance (ddof 1) from ``n``, the sum and the sum of squares."""
    if n <= 0:
        return math.nan, math.nan
    mean = total / n
    if n < 2:
        return mean, math.nan
    var = max((total_sq - total * total / n) / (n - 1), 0.0)
    return mean, var


def chance_to_win(n1: int, sum1: float, sumsq1: float, n0: int, sum0: float, sumsq0: float,
                  confidence: float = 0.95) -> dict[str, float | None]:
    """Bayesian chance that group 1 beats group 0 (flat prior, normal posterior of the relative lift).

    Returns
    -------
    dict
        ``lift`` (relative, ``m1 / m0 − 1``), ``sd``, ``low``, ``high`` (the
        credible interval of the relative lift) and ``chance`` (P(lift > 0));
        with a zero baseline mean only ``chance`` (from the absolute
        difference); all None when a variance is missing.
    """
    m1, v1 = moments(n1, sum1, sumsq1)
    m0, v0 = moments(n0, sum0, sumsq0)
    none: dict[str, float | None] = {"lift": None, "sd": None, "low": None, "high": None, "chance": None}
    if any(math.isnan(x) for x in (m1, v1, m0, v0)):
        return none
    if m0 <= 0:
        # No baseline (nobody in the control bought): the relative lift is undefined; the chance comes
        # from the absolute difference, whose flat-prior posterior is normal with variance v1/n1 + v0/n0.
        se = math.sqrt(v1 / n1 + v0 / n0)
        if se <= 0:
            return none
        return {**none, "chance": float(stats.norm.cdf((m1 - m0) / se))}
    lift = (m1 - m0) / m0
    var = v1 / (n1 * m0**2) + v0 * m1**2 / (n0 * m0**4)
    if var <= 0:
        return none
    sd = math.sqrt(var)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    return {"lift": lift, "sd": sd, "low": lift - z * sd, "high": lift + z * sd, "chance": float(stats.norm.cdf(lift / sd))}


def chance_to_win_arrays(x1: np.ndarray, x0: np.ndarray) -> dict[str, float | None]:
    """:func:`chance_to_win` from per-customer values."""
    x1 = np.asarray(x1, dtype=float)
    x0 = np.asarray(x0, dtype=float)
    return chance_to_win(len(x1), float(x1.sum()), float((x1**2).sum()), len(x0), float(x0.sum()), float((x0**2).sum()))


# -- revenue capping ------------------------------------------------------------------------------
def revenue_cap(values: np.ndarray, percentile: float = CAP_PERCENTILE) -> float:
    """The cap: the ``percentile`` of the pooled values (linear interpolation)."""
    values = np.asarray(values, dtype=float)
    if not len(values):
        return math.nan
    return float(np.percentile(values, percentile))


def cap(values: np.ndarray, limit: float) -> np.ndarray:
    """Values above ``limit`` set to ``limit``."""
    values = np.asarray(values, dtype=float)
    if math.isnan(limit):
        return values
    return np.minimum(values, limit)


# -- CUPED ----------------------------------------------------------------------------------------
def cuped_theta(y: np.ndarray, x: np.ndarray) -> float:
    """``cov(y, x) / var(x)`` (0 when ``x`` does not vary)."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return 0.0
    vx = float(np.var(x, ddof=1))
    if vx <= 0:
        return 0.0
    return float(np.cov(y, x, ddof=1)[0, 1] / vx)


def cuped_adjust(y1: np.ndarray, x1: np.ndarray, y0: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """CUPED-adjusted outcomes of both groups with θ and the pooled correlation.

    Returns
    -------
    tuple
        ``(adjusted y1, adjusted y0, theta, corr)``.
    """
    y = np.concatenate([np.asarray(y1, dtype=float), np.asarray(y0, dtype=float)])
    x = np.concatenate([np.asarray(x1, dtype=float), np.asarray(x0, dtype=float)])
    theta = cuped_theta(y, x)
    mx = float(x.mean()) if len(x) else 0.0
    corr = float(np.corrcoef(y, x)[0, 1]) if len(x) > 1 and np.std(x) > 0 and np.std(y) > 0 else 0.0
    return (np.asarray(y1, dtype=float) - theta * (np.asarray(x1, dtype=float) - mx),
            np.asarray(y0, dtype=float) - theta * (np.asarray(x0, dtype=float) - mx), theta, corr)
