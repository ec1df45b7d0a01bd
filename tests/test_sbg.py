"""sBG subscription retention (crm_core.model.sbg, crm_core.analytics.subscription): Fader & Hardie (2007) reproduced, censoring, DERL, cohorts from the store, command line."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from crm_core.analytics import subscription
from crm_core.db import Store
from crm_core.model import sbg
from tests.analytics_shop import add_order
from tests.test_cli import cli

# Fader & Hardie (2007), "How to project customer retention", Journal of Interactive Marketing 21(1), Table 1:
# customers (of 1,000) still active at the start of years 0..12.
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241, 223, 207, 194, 183, 173]
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491, 468, 445, 427, 409, 394]


@pytest.mark.parametrize(("data", "alpha", "beta"), [(REGULAR, 0.704, 1.182), (HIGH_END, 0.668, 3.806)])
def test_fader_hardie_2007_estimates_and_projection(data, alpha, beta):
    # The paper fits years 1-7 and reports these maximum-likelihood estimates.
    f = sbg.fit_survivors(data[:8])
    assert f.converged
    assert f.alpha == pytest.approx(alpha, abs=5e-4) and f.beta == pytest.approx(beta, abs=5e-4)
    # Its projection of years 8-12 tracks the actual survival closely.
    proj = sbg.projected_survival(f.alpha, f.beta, 13)
    actual = np.array(data) / 1000
    assert np.abs(proj[8:] - actual[8:]).max() < 0.02
    # Survival is the product of the model's (rising) retention rates.
    rates = sbg.retention_rate(f.alpha, f.beta, np.arange(1, 13))
    assert np.all(np.diff(rates) > 0)
    assert proj[1:] == pytest.approx(np.cumprod(rates))


def test_censored_and_truncated_fit_recovers_known_parameters():
    rng = np.random.default_rng(5)
    alpha, beta, n = 1.3, 3.0, 10_000
    theta = rng.beta(alpha, beta, n)
    lifetime = rng.geometric(theta)  # deliveries received, >= 1
    seen = rng.integers(1, 15, n)  # deliveries that could have happened by the as-of day
    deliveries = np.minimum(lifetime, seen)
    active = lifetime >= seen  # reached the last possible delivery: may continue (censored)
    f = sbg.fit(deliveries, active)
    assert f.alpha == pytest.approx(alpha, rel=0.1) and f.beta == pytest.approx(beta, rel=0.1)
    # Treating the censored as ended would make long subscriptions look much rarer than they are.
    naive = sbg.fit(deliveries, np.zeros(n, dtype=bool))
    true_12 = float(sbg.survival(alpha, beta, 11))
    assert float(sbg.survival(f.alpha, f.beta, 11)) == pytest.approx(true_12, rel=0.05)
    assert float(sbg.survival(naive.alpha, naive.beta, 11)) < 0.5 * true_12
    # Left truncation: only subscriptions that reached delivery e are in the data.
    # Subscriptions that started before the data: delivery e is the first one seen, and only those
    # that reached it are in the data at all.
    entry = rng.integers(1, 5, n)
    last_seen = entry + rng.integers(0, 12, n)
    keep = lifetime >= entry
    g = sbg.fit(np.minimum(lifetime, last_seen)[keep], (lifetime >= last_seen)[keep], entry[keep])
    assert g.alpha == pytest.approx(alpha, rel=0.15) and g.beta == pytest.approx(beta, rel=0.15)


def test_derl_equals_direct_discounted_sum():
    for alpha, beta in [(0.704, 1.182), (0.668, 3.806), (2.5, 6.0)]:
        for n in (1, 2, 5):
            for d in (0.1, 0.01):
                t = np.arange(n, n + 20_000)
                direct = (sbg.survival(alpha, beta, t) / sbg.survival(alpha, beta, n - 1) * (1 / (1 + d)) ** (t - n)).sum()
                assert float(sbg.derl(alpha, beta, n, d)) == pytest.approx(direct, rel=1e-6)
    # Undiscounted: finite only when alpha > 1, (beta + n - 1) / (alpha - 1).
    assert float(sbg.derl(2.5, 6.0, 3, 0.0)) == pytest.approx((6.0 + 2) / 1.5, rel=1e-9)
    assert np.isinf(sbg.derl(0.7, 1.2, 1, 0.0))
    assert sbg.expected_deliveries(2.5, 6.0, 1, 12) < float(sbg.derl(2.5, 6.0, 1, 0.0))


def _store_with_subscriptions(seed: int = 3) -> Store:
    """Subscriptions started monthly over 2025-2026 with sBG lifetimes; monthly deliveries up to 2026-06-30."""
    rng = np.random.default_rng(seed)
    store = Store(":memory:")
    as_of = dt.date(2026, 6, 30)
    i = 0
    for s in range(160):
        start = dt.date(2025, 1, 5) + dt.timedelta(days=int(rng.integers(0, 500)))
        life = int(rng.geometric(rng.beta(1.0, 2.5)))
        for k in range(1, life + 1):
            day = start + dt.timedelta(days=30 * (k - 1))
            if day > as_of:
                break
            add_order(store, f"o{i}", f"cust{s}", day.isoformat(), 3980 + 100 * (s % 3), subscription=(f"S{s}", k))
            i += 1
    return store


def test_subscription_table_marks_censored():
    store = Store(":memory:")
    for k, day in enumerate(["2026-01-10", "2026-02-10", "2026-03-10"], start=1):
        add_order(store, f"a{k}", "ca", day, 3000, subscription=("A", k))
    add_order(store, "b1", "cb", "2026-06-20", 5000, subscription=("B", 4))  # started before the data
    t = subscription.subscription_table(store, dt.date(2026, 6, 30), grace_days=45).set_index("subscription_id")
    assert t.loc["A", "deliveries"] == 3 and not t.loc["A", "active"] and t.loc["A", "median_interval_days"] == 29.5  # 31 and 28 days
    assert t.loc["B", "first_seq"] == 4 and t.loc["B", "active"] and t.loc["B", "avg_amount"] == 5000


def test_cohort_fits_and_values_from_the_store():
    store = _store_with_subscriptions()
    report = subscription.retention_projection(store, as_of="2026-06-30", unit="half")
    pooled = report["cohorts"][0]
    assert pooled["cohort"] == subscription.ALL_COHORTS and pooled["fitted"]
    subs = subscription.subscription_table(store, "2026-06-30")
    direct = sbg.fit(subs["deliveries"], subs["active"], subs["first_seq"])
    assert pooled["alpha"] == pytest.approx(direct.alpha) and pooled["beta"] == pytest.approx(direct.beta)
    assert pooled["subscriptions"] == len(subs) == 160
    assert len(pooled["survival"]) == sbg.HORIZON and pooled["survival"][0] == 1.0
    labels = [c["cohort"] for c in report["cohorts"][1:]]
    assert labels == ["2025年上期", "2025年下期", "2026年上期"]
    assert all(c["fitted"] or c["note"] for c in report["cohorts"])
    assert pooled["value_new"] == pytest.approx((1 + pooled["derl_new"]) * pooled["avg_amount"])
    # The projection follows the observed share reaching each delivery.
    obs = pooled["observed"]
    assert abs(pooled["survival"][1] - obs[1]) < 0.08
    values = subscription.subscriber_values(store, as_of="2026-06-30")
    assert len(values) == int(subs["active"].sum())
    assert (values["projected_value"] > 0).all()
    longer = values.sort_values("deliveries")
    assert longer["p_next"].is_monotonic_increasing  # survivors are the loyal ones


@pytest.mark.slow  # two command-line subprocesses
def test_cli_subscription_retention(tmp_path):
    db = tmp_path / "crm.duckdb"
    store = Store(db)
    src = _store_with_subscriptions()
    frame = src.df("SELECT * FROM orders")
    cur = store.cursor()
    cur.register("src_orders", frame)
    cur.execute("INSERT INTO orders BY NAME SELECT * FROM src_orders")
    cur.unregister("src_orders")
    store.close()
    out = cli("subscription", "retention", "--json", db=db)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["cohorts"][0]["cohort"] == subscription.ALL_COHORTS and report["cohorts"][0]["alpha"] > 0
    text = cli("subscription", "retention", db=db)
    assert text.returncode == 0 and "alpha=" in text.stdout and "到達率" in text.stdout


def test_projection_chart():
    from crm_core.analytics import charts

    report = subscription.retention_projection(_store_with_subscriptions(), as_of="2026-06-30")
    spec = charts.subscription_projection_chart(report["cohorts"][0]).to_dict()
    assert len(spec["layer"]) == 2 and "実績と予測" in str(spec)
    assert charts.subscription_projection_chart({"fitted": False}) is None


def test_homogeneous_churn_ends_at_the_geometric_limit():
    # Every subscription stops with the same 30% chance after each delivery: no heterogeneity.
    rng = np.random.default_rng(11)
    k = rng.geometric(0.3, 5000)
    f = sbg.fit(k, np.zeros(len(k), dtype=bool))
    assert f.mean_churn == pytest.approx(0.3, abs=0.01)
    assert f.alpha + f.beta > 1000  # the geometric limit, not a drift to overflow
    assert sbg.survival(f.alpha, f.beta, 5) == pytest.approx(0.7**5, rel=0.05)
