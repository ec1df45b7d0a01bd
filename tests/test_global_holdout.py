"""Global holdout: stable membership, never frozen into a campaign, the programme's lift against it by month."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.results import attribution as R
from crm_core.results import campaigns as C

T = dt.datetime


def test_membership_is_stable_and_nested():
    ids = [f"C{i:05d}" for i in range(20_000)]
    five = {c for c in ids if C.in_global_holdout(c, 0.05)}
    ten = {c for c in ids if C.in_global_holdout(c, 0.10)}
    assert five <= ten  # raising the share only adds members
    assert len(five) == pytest.approx(1000, abs=3 * (20_000 * 0.05 * 0.95) ** 0.5)
    assert five == {c for c in ids if C.in_global_holdout(c, 0.05)}
    assert not any(C.in_global_holdout(c, 0.0) for c in ids[:100])
    # Independent of campaigns' own holdouts: the overlap is the product of the shares.
    camp = {c for c in ids if C.assign(7, c, 0.5, ["A"])[1]}
    assert len(five & camp) == pytest.approx(len(five) * 0.5, abs=3 * (len(five) * 0.25) ** 0.5)


def test_setting_and_freeze_leaves_the_global_holdout_out():
    store = Store(":memory:")
    assert C.global_holdout_setting(store) == {"share": 0.0, "since": None}
    ids = [f"C{i:04d}" for i in range(2000)]
    C.set_global_holdout(store, 0.05, today=dt.date(2026, 1, 1))
    assert C.global_holdout_setting(store) == {"share": 0.05, "since": "2026-01-01"}
    C.set_global_holdout(store, 0.05, today=dt.date(2026, 2, 1))  # unchanged share: the period goes on
    assert C.global_holdout_setting(store)["since"] == "2026-01-01"
    held = {c for c in ids if C.in_global_holdout(c, 0.05)}
    cid = C.freeze_campaign(store, "全体比較あり", "email", T(2026, 3, 1, 12), customer_ids=ids, holdout_share=0.1)
    frozen = set(C.recipients(store, cid)["customer_id"])
    assert frozen == set(ids) - held and held
    with pytest.raises(InputError):
        C.set_global_holdout(store, 0.5)
    with pytest.raises(InputError, match="全体の比較グループ"):
        C.freeze_campaign(store, "全員除外", "email", T(2026, 3, 1, 12), customer_ids=sorted(held))
    C.set_global_holdout(store, 0)
    assert C.global_holdout_setting(store) == {"share": 0.0, "since": None}


def _programme_store(seed: int = 4) -> tuple[Store, pd.DataFrame]:
    """3,000 customers with a first order in 2025; Jan-Mar 2026 monthly purchases: 12% reached, 8% held out."""
    rng = np.random.default_rng(seed)
    store = Store(":memory:")
    C.set_global_holdout(store, 0.1, today=dt.date(2026, 1, 1))
    ids = [f"C{i:05d}" for i in range(3000)]
    rows = []
    for c in ids:
        rows.append((f"F{c}", c, T(2025, 6, 1, 10) + dt.timedelta(days=int(rng.integers(0, 180))), 5000.0))
        held = C.in_global_holdout(c, 0.1)
        for month in (1, 2, 3):
            if rng.random() < (0.08 if held else 0.12):
                rows.append((f"O{c}-{month}", c, T(2026, month, int(rng.integers(1, 28)), 10), float(rng.integers(2000, 9000))))
    frame = pd.DataFrame(rows, columns=["order_id", "customer_id", "ordered_at", "total_amount"])
    cur = store.cursor()
    cur.register("gen", frame)
    cur.execute("INSERT INTO orders (order_id, source, customer_id, ordered_at, cancelled, total_amount) "
                "SELECT order_id, 'shopify', customer_id, ordered_at, FALSE, total_amount FROM gen")
    cur.unregister("gen")
    return store, frame


def test_programme_lift_by_month_matches_independent_computation():
    store, orders = _programme_store()
    out = R.programme_lift(store, as_of=dt.date(2026, 3, 31))
    months = out["months"]
    assert [m.month for m in months["month"]] == [1, 2, 3] and out["message"] == ""
    customers = orders["customer_id"].unique()
    held = np.array([C.in_global_holdout(c, 0.1) for c in customers])
    for _, row in months.iterrows():
        start = pd.Timestamp(row["start"])
        end = pd.Timestamp(row["end"]) + pd.Timedelta(days=1)
        part = orders[(orders["ordered_at"] >= start) & (orders["ordered_at"] < end)]
        rev = part.groupby("customer_id")["total_amount"].sum().reindex(customers, fill_value=0.0).to_numpy()
        cap = stats.scoreatpercentile(rev, 99.9)
        rev = np.minimum(rev, cap)
        ref = stats.ttest_ind(rev[~held], rev[held], equal_var=False)
        ci = ref.confidence_interval()
        assert row["customers"] == (~held).sum() and row["holdout_customers"] == held.sum()
        assert row["diff"] == pytest.approx(rev[~held].mean() - rev[held].mean())
        assert (row["low"], row["high"], row["p"]) == pytest.approx((ci.low, ci.high, ref.pvalue))
        assert row["incremental_revenue"] == pytest.approx(row["diff"] * (~held).sum())
    total = out["total"]
    # True lift: 4 points of monthly purchase at ¥5,500 on average = ¥220 per customer per month, ¥660 over the quarter.
    assert 0 < total["low"] < 660 < total["high"]
    assert total["start"] == dt.date(2026, 1, 1) and total["end"] == dt.date(2026, 3, 31)


def test_programme_lift_without_a_global_holdout():
    store = Store(":memory:")
    out = R.programme_lift(store)
    assert out["months"].empty and "まだ設定されていません" in out["message"]
