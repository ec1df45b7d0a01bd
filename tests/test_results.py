"""Campaign results: attribution windows and overlaps (hand-computed), statistics against scipy, verdicts, cost."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from crm_core.db import Store
from crm_core.results import attribution as R
from crm_core.results import campaigns as C

T = dt.datetime


def _order(store: Store, oid: str, cid: str, at: dt.datetime, total: float, cancelled: bool = False,
           coupon: str | None = None, discount: float = 0) -> None:
    store.execute(
        "INSERT INTO orders (order_id, source, customer_id, ordered_at, cancelled, total_amount, coupon_code, discount_amount) "
        "VALUES (?, 'rakuten', ?, ?, ?, ?, ?, ?)",
        [oid, cid, at, cancelled, total, coupon, discount],
    )


@pytest.fixture()
def overlap_store() -> Store:
    """Two overlapping campaigns, no holdout.

    Campaign 1 (e-mail) 2026-03-01 12:00, 7 days, recipients C1 C2 C3.
    Campaign 2 (LINE, coupon "spring") 2026-03-04 12:00, 7 days, recipients C2 C3.
    """
    store = Store(":memory:")
    C.freeze_campaign(store, "メール", "email", T(2026, 3, 1, 12), customer_ids=["C1", "C2", "C3"], holdout_share=0, campaign_id=1)
    C.freeze_campaign(store, "LINE", "line", T(2026, 3, 4, 12), customer_ids=["C2", "C3"], holdout_share=0, campaign_id=2,
                      coupon_code="spring", line_plan="standard")
    _order(store, "O1", "C1", T(2026, 3, 1, 11, 59), 100)   # before the send: none
    _order(store, "O2", "C1", T(2026, 3, 1, 12, 0), 1000)   # at the send: campaign 1
    _order(store, "O3", "C1", T(2026, 3, 8, 11, 59), 2000)  # last minute of the window: campaign 1
    _order(store, "O4", "C1", T(2026, 3, 8, 12, 0), 4000)   # window over: none
    _order(store, "O5", "C2", T(2026, 3, 3, 9, 0), 8000, cancelled=True)  # cancelled: none
    _order(store, "O6", "C2", T(2026, 3, 5, 10, 0), 3000, coupon="SPRING", discount=300)  # both qualify: campaign 2 (last touch)
    _order(store, "O7", "C3", T(2026, 3, 4, 11, 0), 500)    # before campaign 2: campaign 1
    _order(store, "O8", "C4", T(2026, 3, 5, 10, 0), 9999)   # not a recipient: none
    _order(store, "O9", "C3", T(2026, 3, 10, 9, 0), 700)    # campaign 1 over, campaign 2 running: campaign 2
    return store


def test_attribution_windows_and_last_touch(overlap_store):
    att = R.attributed_orders(overlap_store)
    got = dict(zip(att["order_id"], att["campaign_id"]))
    assert got == {"O2": 1, "O3": 1, "O7": 1, "O6": 2, "O9": 2}
    assert att.set_index("order_id").loc["O6", "coupon_redeemed"]
    assert not att.set_index("order_id").loc["O9", "coupon_redeemed"]


def test_metrics_per_campaign(overlap_store):
    one = R.campaign_report(overlap_store, 1)
    g = one["groups"][0]
    assert (g["recipients"], g["buyers"], g["orders"], g["revenue"]) == (3, 2, 3, 3500.0)
    assert g["conversion"] == pytest.approx(2 / 3) and g["revenue_per_recipient"] == pytest.approx(3500 / 3)
    assert one["lift"] is None and R.LAST_TOUCH_NOTE in one["notes"]
    assert one["cost"]["message_cost"] == 0  # own e-mail
    two = R.campaign_report(overlap_store, 2)
    g = two["groups"][0]
    assert (g["recipients"], g["buyers"], g["orders"], g["revenue"], g["coupon_orders"]) == (2, 2, 2, 3700.0, 1)
    cost = two["cost"]
    # Standard plan: 2 messages at ¥3.0 + the ¥300 coupon discount.
    assert cost["message_cost"] == 6.0 and cost["coupon_cost"] == 300.0 and cost["total_cost"] == 306.0
    assert cost["cpo"] == pytest.approx(153.0) and cost["roas"] == pytest.approx(3700 / 306)


def test_line_cost_counts_delivered_only(overlap_store):
    C.import_results(overlap_store, 2, b"customer,delivered\nC2,1\nC3,0\n", {"customer": "customer_id", "delivered": "delivered"})
    rep = R.campaign_report(overlap_store, 2)
    assert rep["cost"]["messages"] == 1 and rep["cost"]["message_cost"] == 3.0
    f = R.funnel(rep)
    assert f["step"].tolist() == ["配信対象", "到達", "開封", "クリック", "購入"]
    assert f["customers"].tolist() == [2, 1, 0, 0, 2]


@pytest.mark.parametrize(
    ("channel", "plan", "per", "expected"),
    [("line", "standard", None, 3.0), ("line", "light", None, 1.0), ("line", "communication", None, 0.0),
     ("rmail", None, None, 1.0), ("email", None, None, 0.0), ("email", None, 0.5, 0.5)],
)
def test_message_rate(channel, plan, per, expected):
    assert float(R.message_rate(channel, plan, per)) == expected


# -- statistics against independent computations -------------------------------------------------
def test_newcombe_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873-890, example (a): 56/70 − 48/80, method 10.
    low, high = R.newcombe_interval(56, 70, 48, 80)
    assert low == pytest.approx(0.0524, abs=1e-4) and high == pytest.approx(0.3339, abs=1e-4)


@pytest.mark.parametrize(("b1", "n1", "b0", "n0"), [(56, 70, 48, 80), (120, 1000, 80, 1000), (3, 400, 5, 420)])
def test_two_proportion_p_equals_chi_square(b1, n1, b0, n0):
    table = np.array([[b1, n1 - b1], [b0, n0 - b0]])
    expected = stats.chi2_contingency(table, correction=False).pvalue
    assert R.two_proportion_p(b1, n1, b0, n0) == pytest.approx(expected, rel=1e-9)


def test_welch_matches_scipy():
    rng = np.random.default_rng(3)
    x1 = rng.exponential(1200, 300) * (rng.random(300) < 0.1)
    x0 = rng.exponential(1000, 250) * (rng.random(250) < 0.06)
    got = R.welch(x1, x0)
    ref = stats.ttest_ind(x1, x0, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert got["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert got["low"] == pytest.approx(ci.low, rel=1e-9) and got["high"] == pytest.approx(ci.high, rel=1e-9)


def _synthetic(n: int, p_treat: float, p_hold: float, seed: int, holdout: float = 0.5) -> tuple[Store, int]:
    """``n`` recipients; each buys once in the window with the group's probability."""
    store = Store(":memory:")
    sent = T(2026, 5, 1, 12)
    ids = [f"C{i:05d}" for i in range(n)]
    cid = C.freeze_campaign(store, "合成", "email", sent, customer_ids=ids, holdout_share=holdout, campaign_id=1)
    rec = C.recipients(store, cid)
    rng = np.random.default_rng(seed)
    p = np.where(rec["holdout"], p_hold, p_treat)
    buys = rng.random(len(rec)) < p
    orders = pd.DataFrame({
        "order_id": [f"O{i}" for i in range(int(buys.sum()))],
        "customer_id": rec.loc[buys, "customer_id"].to_numpy(),
        "ordered_at": [sent + dt.timedelta(hours=int(h)) for h in rng.integers(0, 24 * 7, int(buys.sum()))],
        "total_amount": rng.integers(2000, 8000, int(buys.sum())).astype(float),
    })
    cur = store.cursor()
    cur.register("synthetic_orders", orders)
    cur.execute(
        "INSERT INTO orders (order_id, source, customer_id, ordered_at, cancelled, total_amount) "
        "SELECT order_id, 'shopify', customer_id, ordered_at, FALSE, total_amount FROM synthetic_orders"
    )
    cur.unregister("synthetic_orders")
    return store, cid


def test_known_effect_is_found_and_matches_independent_computation():
    store, cid = _synthetic(6000, 0.10, 0.05, seed=11)
    rep = R.campaign_report(store, cid)
    rec = R.recipient_table(store, cid)
    t, h = rec[~rec["holdout"]], rec[rec["holdout"]]
    b1, n1, b0, n0 = int((t["orders"] > 0).sum()), len(t), int((h["orders"] > 0).sum()), len(h)
    lift = rep["lift"]
    assert lift["conversion_diff"] == pytest.approx(b1 / n1 - b0 / n0)
    assert lift["conversion_p"] == pytest.approx(stats.chi2_contingency([[b1, n1 - b1], [b0, n0 - b0]], correction=False).pvalue)
    # Revenue per customer is capped at the 99.9th percentile of all recipients before the comparison.
    cap = stats.scoreatpercentile(rec["revenue"], 99.9)
    ref = stats.ttest_ind(np.minimum(t["revenue"], cap), np.minimum(h["revenue"], cap), equal_var=False)
    assert lift["revenue_cap"] == pytest.approx(cap)
    assert lift["rpr_p"] == pytest.approx(ref.pvalue) and lift["rpr_low"] == pytest.approx(ref.confidence_interval().low)
    assert lift["incremental_buyers"] == pytest.approx((b1 / n1 - b0 / n0) * n1)
    # The true difference (0.05) lies in the interval, which excludes zero.
    assert lift["conversion_low"] < 0.05 < lift["conversion_high"] and lift["conversion_low"] > 0
    assert lift["verdict"] == R.VERDICT_YES and lift["conversion_p"] < 0.001
    assert lift["incremental_revenue_low"] > 0


def test_no_effect_is_not_called_an_effect():
    store, cid = _synthetic(4000, 0.06, 0.06, seed=5)
    lift = R.campaign_report(store, cid)["lift"]
    assert lift["conversion_low"] < 0 < lift["conversion_high"]
    assert lift["verdict"] == R.VERDICT_NONE


def test_too_small_to_tell():
    store, cid = _synthetic(40, 0.9, 0.0, seed=1)  # a huge effect, but only ~20 per group
    rep = R.campaign_report(store, cid)
    assert rep["lift"]["too_small"] and rep["lift"]["verdict"] == R.VERDICT_SMALL
    assert R.verdict(0.1, 0.2, small=False) == R.VERDICT_YES
    assert R.verdict(-0.2, -0.1, small=False) == R.VERDICT_NEGATIVE


def test_ab_winner_and_too_small_warning():
    store = Store(":memory:")
    sent = T(2026, 6, 1, 12)
    ids = [f"C{i:05d}" for i in range(4000)]
    cid = C.freeze_campaign(store, "AB", "email", sent, customer_ids=ids, holdout_share=0.1, variants=["A", "B"], campaign_id=1)
    rec = C.recipients(store, cid)
    rng = np.random.default_rng(2)
    p = np.select([rec["variant"] == "A", rec["variant"] == "B"], [0.04, 0.10], 0.03)
    buys = rng.random(len(rec)) < p
    for i, c in enumerate(rec.loc[buys, "customer_id"]):
        _order(store, f"O{i}", c, sent + dt.timedelta(days=1), 3000)
    ab = R.campaign_report(store, cid)["ab"]
    assert ab["winner"] == "B" and ab["leader"] == "B" and ab["prob_leader_better"] > 0.99
    names = [v["variant"] for v in ab["variants"]]
    assert names == ["A", "B"]
    small = R.ab_test(R.recipient_table(store, cid).head(30).assign(holdout=False), ["A", "B"])
    assert small["too_small"] and small["winner"] is None and "判断できません" in small["message"]
    assert small["prob_leader_better"] is None  # no chance to win on a sample this small


def test_summaries_series_and_tables(overlap_store):
    s = R.campaign_summaries(overlap_store)
    assert s["campaign_id"].tolist() == [2, 1]
    assert s.set_index("campaign_id").loc[1, "revenue"] == 3500.0
    assert len(s.iloc[0]["trend"]) == 7 + 7
    d = R.daily_sales(overlap_store, 1, before=2, after=2)
    assert d["offset"].tolist() == [-2, -1, 0, 1, 2]
    assert d.set_index("offset").loc[0, "revenue"] == 1100.0  # O1 + O2 on the send day (shop-wide)
    cum = R.cumulative_revenue(overlap_store, 1)
    last = cum[cum["day"] == 6].iloc[0]
    assert last["revenue_per_customer"] == pytest.approx(3500 / 3)
    table = R.groups_frame(R.campaign_report(overlap_store, 1))
    assert table.loc[0, "売上（円）"] == 3500
    assert not math.isnan(R.campaign_report(overlap_store, 2)["groups"][0]["conversion"])


def test_each_variant_is_compared_with_the_holdout():
    # A converts like the holdout (3%), B much better (12%): only B is an effect.
    store = Store(":memory:")
    sent = T(2026, 6, 1, 12)
    ids = [f"C{i:05d}" for i in range(6000)]
    cid = C.freeze_campaign(store, "AB+holdout", "email", sent, customer_ids=ids, holdout_share=0.3,
                            variants=["A", "B"], campaign_id=1)
    rec = C.recipients(store, cid)
    rng = np.random.default_rng(7)
    p = np.select([rec["holdout"], rec["variant"] == "A", rec["variant"] == "B"], [0.03, 0.03, 0.12], 0.0)
    buys = rng.random(len(rec)) < p
    for i, c in enumerate(rec.loc[buys, "customer_id"]):
        _order(store, f"O{i}", c, sent + dt.timedelta(days=1), 3000)
    report = R.campaign_report(store, cid)
    lifts = {v["variant"]: v for v in report["variant_lifts"]}
    assert set(lifts) == {"A", "B"}
    table = R.recipient_table(store, cid)
    hold = table[table["holdout"]]
    b0, n0 = int((hold["orders"] > 0).sum()), len(hold)
    for name, lift in lifts.items():
        part = table[~table["holdout"] & (table["variant"] == name)]
        b1, n1 = int((part["orders"] > 0).sum()), len(part)
        assert lift["conversion_diff"] == pytest.approx(b1 / n1 - b0 / n0)
        assert (lift["conversion_low"], lift["conversion_high"]) == pytest.approx(R.newcombe_interval(b1, n1, b0, n0))
    assert lifts["B"]["verdict"] == R.VERDICT_YES
    assert lifts["A"]["verdict"] == R.VERDICT_NONE
    assert "パターンBの効果: " + R.VERDICT_YES in R.report_text(report)


def test_no_variant_lifts_without_a_holdout_or_with_one_variant():
    store, cid = _synthetic(400, 0.1, 0.05, seed=3)  # one variant
    assert R.campaign_report(store, cid)["variant_lifts"] == []
    store = Store(":memory:")
    cid = C.freeze_campaign(store, "AB", "email", T(2026, 6, 1, 12), customer_ids=[f"C{i}" for i in range(50)],
                            holdout_share=0.0, variants=["A", "B"], campaign_id=1)
    assert R.campaign_report(store, cid)["variant_lifts"] == []


# -- experiment checks in the report -----------------------------------------------------------------
def test_report_has_sample_ratio_chance_to_win_and_cuped():
    from crm_core.results import experiments as E

    store, cid = _synthetic(6000, 0.10, 0.05, seed=11)
    # Pre-period orders for a third of the recipients: the covariate of CUPED.
    rec = C.recipients(store, cid)
    loyal = rec["customer_id"].iloc[::3]
    for i, c in enumerate(loyal):
        _order(store, f"P{i}", c, T(2026, 2, 15, 10) + dt.timedelta(days=i % 60), 1000 + 10 * (i % 50))  # all before the send
    rep = R.campaign_report(store, cid)
    srm = rep["srm"]
    table = R.recipient_table(store, cid)
    counts = [int(table["holdout"].sum()), int((~table["holdout"]).sum())]
    assert srm["observed"] == counts
    assert srm["p"] == pytest.approx(stats.chisquare(counts, [3000, 3000]).pvalue) and not srm["broken"]
    lift = rep["lift"]
    t, h = table[~table["holdout"]], table[table["holdout"]]
    b1, b0 = int((t["orders"] > 0).sum()), int((h["orders"] > 0).sum())
    assert lift["chance_to_win"] == pytest.approx(E.chance_to_win(len(t), b1, b1, len(h), b0, b0)["chance"])
    assert lift["chance_to_win"] > 0.999
    cu = lift["cuped"]
    assert cu["pre_days"] == R.PRE_DAYS and cu["rpr_low"] <= cu["rpr_diff"] <= cu["rpr_high"]
    pre = R.pre_period_revenue(store, cid).set_index("customer_id")["pre_revenue"]
    assert pre.loc[loyal.iloc[0]] == 1000 and pre.sum() == pytest.approx(sum(1000 + 10 * (i % 50) for i in range(len(loyal))))
    text = R.report_text(rep)
    assert "勝つ確率" in text and "CUPED" in text and "頭打ち" in text


def test_broken_split_is_flagged():
    store, cid = _synthetic(4000, 0.06, 0.05, seed=2)
    # Holdout customers lost after assignment (e.g. deleted by hand): the split no longer matches 50/50.
    store.execute("DELETE FROM campaign_recipients WHERE campaign_id = ? AND holdout AND customer_id < 'C01500'", [cid])
    rep = R.campaign_report(store, cid)
    assert rep["srm"]["broken"] and rep["srm"]["p"] < 0.001
    assert any("信頼できません" in n for n in rep["notes"])
    assert "⚠" in R.report_text(rep)


def test_one_bulk_buyer_is_capped():
    store, cid = _synthetic(3000, 0.06, 0.06, seed=9)
    rec = C.recipients(store, cid)
    whale = rec.loc[~rec["holdout"], "customer_id"].iloc[0]
    _order(store, "WHALE", whale, T(2026, 5, 2, 10), 3_000_000)
    rep = R.campaign_report(store, cid)
    lift = rep["lift"]
    assert lift["capped_customers"] >= 1 and lift["revenue_cap"] < 3_000_000
    assert lift["rpr_diff_uncapped"] > lift["rpr_diff"] + 500  # uncapped, one buyer adds ¥2,000 per recipient
    assert lift["revenue_verdict"] != R.VERDICT_YES
    assert f"¥{lift['revenue_cap']:,.0f}（99.9パーセンタイル）で頭打ち" in R.report_text(rep)


def test_chance_to_win_is_withheld_for_small_samples():
    store, cid = _synthetic(40, 0.9, 0.0, seed=1)
    lift = R.campaign_report(store, cid)["lift"]
    assert lift["too_small"] and lift["chance_to_win"] is None and lift["chance_to_win_revenue"] is None


def test_funnel_rates_are_the_metrics_rates(overlap_store):
    """The funnel and the metrics show the same open rate (issue 11, item 16): opened / delivered, not / recipients."""
    C.import_results(overlap_store, 2, b"customer,delivered,opened,clicked\nC2,1,1,0\nC3,0,0,0\n",
                     {"customer": "customer_id", "delivered": "delivered", "opened": "opened", "clicked": "clicked"})
    rep = R.campaign_report(overlap_store, 2)
    treat = rep["groups"][0]
    f = R.funnel(rep).set_index("step")
    assert (treat["recipients"], treat["delivered"], treat["opened"]) == (2, 1, 1)
    assert f.loc["開封", "rate"] == treat["open_rate"] == 1.0  # 1 of the 1 delivered, not 1 of 2 recipients
    assert f.loc["クリック", "rate"] == treat["click_rate"] == 0.0
    assert f.loc["到達", "rate"] == treat["delivery_rate"] == 0.5
    assert f.loc["購入", "rate"] == treat["conversion"]
    from crm_core.results import charts as RC

    texts = [row["text"] for data in RC.funnel_chart(R.funnel(rep)).to_dict()["datasets"].values() for row in data]
    assert "1人（開封率 100%）" in texts and "1人（到達率 50%）" in texts
