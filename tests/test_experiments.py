"""Experiment statistics against independent computations (scipy, statsmodels, simulation with known effects)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.gof import chisquare as sm_chisquare
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import power_proportions_2indep
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from crm_core.results import attribution as R
from crm_core.results import campaigns as C
from crm_core.results import experiments as E


# -- sample-ratio mismatch -----------------------------------------------------------------------
def test_srm_matches_statsmodels_and_flags_a_broken_split():
    ids = [f"C{i:05d}" for i in range(20_000)]
    groups = [C.assign(1, c, 0.1, ["A", "B"]) for c in ids]
    hold = sum(1 for _, h in groups if h)
    a = sum(1 for v, h in groups if not h and v == "A")
    b = len(ids) - hold - a
    shares = [0.1, 0.45, 0.45]
    ok = E.srm_check([hold, a, b], shares)
    ref = sm_chisquare([hold, a, b], np.array(shares) * len(ids))
    assert ok["chi2"] == pytest.approx(ref[0], rel=1e-12) and ok["p"] == pytest.approx(ref[1], rel=1e-12)
    assert not ok["broken"] and ok["message"] == ""
    # A broken split: a fifth of the holdout went missing after assignment.
    bad = E.srm_check([int(hold * 0.8), a, b], shares)
    assert bad["broken"] and bad["p"] < E.SRM_P
    assert "信頼できません" in bad["message"] and "比率" in bad["message"]
    # Too small to test: no verdict either way.
    tiny = E.srm_check([1, 10], [0.1, 0.9])
    assert tiny["p"] is None and not tiny["broken"]


def test_srm_false_alarm_rate_is_about_one_in_a_thousand():
    rng = np.random.default_rng(12)
    n, sims = 2000, 20_000
    hold = rng.binomial(n, 0.1, sims)
    p = np.array([E.srm_check([h, n - h], [0.1, 0.9])["p"] for h in hold[:2000]])
    assert (p < E.SRM_P).mean() < 0.005
    assert abs((p < 0.05).mean() - 0.05) < 0.015  # the chi-squared p-value is calibrated


# -- detectable effect ----------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "share", "p"), [(5000, 0.1, 0.04), (1200, 0.2, 0.08), (40_000, 0.05, 0.02)])
def test_mde_matches_statsmodels_power(n, share, p):
    n1, n0 = n * (1 - share), n * share
    d = E.mde_conversion(n, share, p)
    power = power_proportions_2indep(d, p, n1, ratio=n0 / n1, alpha=0.05).power
    assert power == pytest.approx(0.8, abs=1e-3)
    sd = 1500.0
    es = NormalIndPower().solve_power(effect_size=None, nobs1=n1, ratio=n0 / n1, alpha=0.05, power=0.8, alternative="two-sided")
    assert E.mde(n, share, sd) == pytest.approx(es * sd, rel=1e-3)


def test_mde_has_eighty_percent_power_in_simulation():
    n, share, p0 = 4000, 0.2, 0.06
    d = E.detectable_effect(n, share, p0, 300.0, 1500.0)
    p1 = p0 + d["mde_conversion"]
    n1, n0 = d["treatment"], d["holdout"]
    rng = np.random.default_rng(4)
    sims = 4000
    b1, b0 = rng.binomial(n1, p1, sims), rng.binomial(n0, p0, sims)
    p = np.array([R.two_proportion_p(int(x), n1, int(y), n0) for x, y in zip(b1, b0)])
    assert float((p < 0.05).mean()) == pytest.approx(0.8, abs=0.025)


def test_share_for_lift_and_too_small():
    n, p = 20_000, 0.05
    d = E.detectable_effect(n, 0.05, p, 250.0, 1200.0)
    h = d["share_for_lift"]
    assert 0 < h < 0.5
    # At the suggested share the conversion MDE is exactly the target lift.
    assert E.mde_conversion(n, h, p) / p == pytest.approx(E.TARGET_LIFT, rel=1e-6)
    assert f"{math.ceil(h * 100)}%以上にしてください" in d["message"]
    small = E.detectable_effect(300, 0.1, 0.03, 100.0, 900.0)
    assert small["too_small"] and small["share_for_lift"] is None
    assert "何%にしても" in small["message"]
    # The revenue rule solves h(1 - h) = 1/K exactly.
    hr = E.share_for_lift_mean(50_000, 300.0, 1500.0)
    assert E.mde(50_000, hr, 1500.0) == pytest.approx(0.2 * 300.0, rel=1e-9)


# -- chance to win --------------------------------------------------------------------------------
def test_chance_to_win_conversion_matches_beta_posteriors():
    rng = np.random.default_rng(8)
    for b1, n1, b0, n0 in [(260, 5000, 220, 5000), (130, 2000, 100, 2100), (90, 3000, 95, 3000)]:
        got = E.chance_to_win(n1, b1, b1, n0, b0, b0)
        draws1 = rng.beta(1 + b1, 1 + n1 - b1, 400_000)
        draws0 = rng.beta(1 + b0, 1 + n0 - b0, 400_000)
        assert got["chance"] == pytest.approx(float((draws1 > draws0).mean()), abs=0.015)
        rel = draws1 / draws0 - 1
        assert got["lift"] == pytest.approx((b1 / n1) / (b0 / n0) - 1, rel=1e-12)
        assert got["sd"] == pytest.approx(float(rel.std()), rel=0.06)


def test_chance_to_win_revenue_matches_statsmodels_z_test():
    rng = np.random.default_rng(9)
    x1 = rng.lognormal(8, 0.7, 6000) * (rng.random(6000) < 0.07)
    x0 = rng.lognormal(8, 0.7, 6000) * (rng.random(6000) < 0.06)
    got = E.chance_to_win_arrays(x1, x0)
    # With a flat prior, P(m1 > m0) is one minus the one-sided p-value of the unequal-variance z-test.
    _, p_larger = CompareMeans(DescrStatsW(x1), DescrStatsW(x0)).ztest_ind(alternative="larger", usevar="unequal")
    assert got["chance"] == pytest.approx(1 - p_larger, abs=0.02)
    assert got["low"] < got["lift"] < got["high"]


def test_chance_to_win_from_sums_equals_arrays():
    x1 = np.array([0, 0, 1200, 0, 3000, 0.0])
    x0 = np.array([0, 800, 0, 0, 0.0])
    a = E.chance_to_win_arrays(x1, x0)
    b = E.chance_to_win(6, 4200, 1200**2 + 3000**2, 5, 800, 800**2)
    assert a == pytest.approx(b)
    assert E.chance_to_win(5, 0, 0, 5, 0, 0)["chance"] is None  # nothing to compare
    # Nobody in the control bought: no relative lift, the chance comes from the absolute difference.
    zero = E.chance_to_win(200, 25, 25, 60, 0, 0)
    m, v = 25 / 200, (25 - 25**2 / 200) / 199
    assert zero["lift"] is None and zero["chance"] == pytest.approx(stats.norm.cdf(m / math.sqrt(v / 200)))


# -- revenue capping ------------------------------------------------------------------------------
def test_cap_at_percentile_matches_scipy():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.exponential(3000, 1999) * (rng.random(1999) < 0.1), [2_000_000.0]])
    limit = E.revenue_cap(values)
    assert limit == pytest.approx(stats.scoreatpercentile(values, 99.9), rel=1e-12)
    capped = E.cap(values, limit)
    assert capped.max() == pytest.approx(limit) and capped.max() < 2_000_000
    assert (capped == values).sum() >= len(values) - 2  # only the very top is touched


# -- CUPED ----------------------------------------------------------------------------------------
def test_cuped_matches_ancova_regression_and_narrows_the_interval():
    import statsmodels.api as sm

    rng = np.random.default_rng(21)
    n = 8000
    treat = rng.random(n) < 0.5
    x = rng.gamma(1.0, 2000, n)  # pre-period revenue
    y = 0.6 * x + rng.normal(0, 1500, n) + np.where(treat, 150, 0)
    y1, y0, theta, corr = E.cuped_adjust(y[treat], x[treat], y[~treat], x[~treat])
    cuped = R.welch(y1, y0)
    plain = R.welch(y[treat], y[~treat])
    fit = sm.OLS(y, sm.add_constant(np.column_stack([treat.astype(float), x]))).fit(cov_type="HC2")
    assert cuped["diff"] == pytest.approx(fit.params[1], rel=0.02)
    half = (cuped["high"] - cuped["low"]) / 2
    assert half == pytest.approx(1.96 * fit.bse[1], rel=0.03)
    assert theta == pytest.approx(np.cov(y, x)[0, 1] / np.var(x, ddof=1))
    # The interval narrows by about sqrt(1 - rho^2).
    ratio = (cuped["high"] - cuped["low"]) / (plain["high"] - plain["low"])
    assert ratio == pytest.approx(math.sqrt(1 - corr**2), rel=0.05) and ratio < 0.8


# -- coverage over many simulated small-shop campaigns -------------------------------------------
def _small_shop_campaigns(sims: int, seed: int):
    """Simulated campaigns: 1,500 recipients, 20% holdout, heterogeneous customers, a known effect.

    Each customer has a purchase probability q ~ Beta(0.5, 9.5) (mean 5%); the
    message raises it to q + 0.02 (1 − q).  Order amounts are lognormal with
    mean ¥5,000.  Pre-period (90-day) revenue comes from the same q.
    """
    rng = np.random.default_rng(seed)
    n, share, delta = 1500, 0.2, 0.02
    a, b = 0.5, 9.5
    p0 = a / (a + b)
    p1 = p0 + delta * (1 - p0)
    sigma = 0.6
    mu = math.log(5000) - sigma**2 / 2
    true_conv = p1 - p0
    true_rev = true_conv * 5000
    for _ in range(sims):
        q = rng.beta(a, b, n)
        hold = rng.random(n) < share
        p = np.where(hold, q, q + delta * (1 - q))
        buy = rng.random(n) < p
        y = buy * rng.lognormal(mu, sigma, n)
        pre = rng.poisson(3 * q) * rng.lognormal(mu, sigma, n)
        yield hold, buy, y, pre, true_conv, true_rev


@pytest.mark.slow  # 2-9 s depending on the machine's load
def test_intervals_cover_the_true_lift_95_percent():
    sims = 3000
    hits = {"newcombe": 0, "welch": 0, "cuped": 0}
    for hold, buy, y, pre, true_conv, true_rev in _small_shop_campaigns(sims, seed=2026):
        b1, n1 = int(buy[~hold].sum()), int((~hold).sum())
        b0, n0 = int(buy[hold].sum()), int(hold.sum())
        low, high = R.newcombe_interval(b1, n1, b0, n0)
        hits["newcombe"] += low <= true_conv <= high
        w = R.welch(y[~hold], y[hold])
        hits["welch"] += w["low"] <= true_rev <= w["high"]
        y1, y0, _, _ = E.cuped_adjust(y[~hold], pre[~hold], y[hold], pre[hold])
        c = R.welch(y1, y0)
        hits["cuped"] += c["low"] <= true_rev <= c["high"]
    for name, count in hits.items():
        assert abs(count / sims - 0.95) <= 0.02, (name, count / sims)


def test_chance_text_never_says_certain():
    assert E.chance_text(0.99996) == "99.9%超" and E.chance_text(0.00001) == "0.1%未満"
    assert E.chance_text(0.62) == "62%" and E.chance_text(0.995) == "99.5%" and E.chance_text(None) == "—"
