"""Campaign results: attribution, metrics, lift against the holdout, A/B tests, cost, ROI and CPO.

Attribution
    A non-cancelled order in the store belongs to a campaign when its
    customer is a frozen recipient and it was placed in
    ``[sent_at, sent_at + attribution_days)``.  When several campaigns
    qualify, the one sent last before the order wins (last touch; ties go to
    the higher campaign id).  Holdout customers count as touched by the
    campaign they were held out of, so treatment and holdout are measured
    by the same rule.  A coupon is redeemed when the order's ``coupon_code``
    equals the campaign's code (case-insensitive).

Statistics (treatment = non-holdout recipients)
    * Conversion (buyers / recipients): difference treatment − holdout with
      the Newcombe hybrid score interval (Newcombe 1998, method 10, built
      from Wilson intervals) and the p-value of the two-sided two-proportion
      z-test with pooled variance.
    * Revenue per recipient (zeros included): Welch's t-test and its
      interval (Welch–Satterthwaite degrees of freedom).
    * Verdict (conversion): 「効果あり」 only when the 95% interval lies
      above zero; 「判断できません（対象が少なすぎます）」 when a group has fewer
      than :data:`MIN_GROUP` recipients or both groups together fewer than
      :data:`MIN_BUYERS` buyers.
    * A/B: the two best variants by conversion, the same z-test and
      interval, and the chance that the leader is truly better.
    * Revenue per customer is capped at the 99.9th percentile of the
      campaign's recipients before any revenue comparison
      (:func:`crm_core.experiments.cap`); the cap is reported.
    * Chance to win (Bayesian, flat prior, from per-group sums and sums of
      squares; :func:`crm_core.experiments.chance_to_win`) for conversion and
      revenue, None when the comparison is too small (same rule as above).
    * CUPED (:func:`crm_core.experiments.cuped_adjust`): revenue per
      recipient adjusted with each recipient's revenue in the
      :data:`PRE_DAYS` days before the send, with its own Welch interval,
      reported beside the plain one.
    * Sample-ratio check of the groups against the planned shares
      (:func:`crm_core.experiments.srm_check`).

Costs
    LINE: messages to the treatment group (delivered ones when results were
    imported: blocked friends are not counted) at the plan's rate
    (:func:`message_rate`); R-Mail ¥1; own e-mail ¥0 unless the campaign
    states a cost per message; plus coupon discounts on redeemed orders and
    the campaign's fixed cost.  ROI = (incremental revenue − cost) / cost;
    CPO = cost / attributed orders.  Profit ROI = (incremental gross profit −
    cost) / cost, where incremental gross profit is treatment minus holdout
    gross profit per recipient (:func:`profit_lift`; gross profit as defined
    in :mod:`crm_core.analytics.value`) -- orders and coupon redemptions that
    would have happened anyway add nothing; shown with the share of revenue
    whose cost is known, and not at all when none is.  ROI is given with the range from the
    incremental revenue's interval, and not at all when the comparison is too small.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from crm_core import jp
from crm_core.db import Store
from crm_core.purchases import GROSS_PROFIT_CTE
from crm_core.results import campaigns as C
from crm_core.results import experiments as E

MIN_GROUP = 30
"""Fewest recipients per group for a verdict."""
MIN_BUYERS = 5
"""Fewest buyers in both groups together for a verdict."""
CONFIDENCE = 0.95
PRE_DAYS = 90
"""Days before the send whose revenue CUPED uses as the covariate."""
LAST_TOUCH_NOTE = "複数の施策が重なる場合は、購入直前に送った施策の成果とします（ラストタッチ）"
CONVERSION_TEST = "購入率の差：2群の比率の差のz検定（p値）とNewcombe法の95%信頼区間"
REVENUE_TEST = "1人あたり売上の差：Welchのt検定（p値と95%信頼区間）。1人あたり売上は上位0.1%の水準（99.9パーセンタイル）で頭打ちにしてから比べます"
VERDICT_YES = "効果あり"
VERDICT_NEGATIVE = "逆効果の可能性あり"
VERDICT_NONE = "効果は確認できません（差が誤差の範囲です）"
VERDICT_SMALL = "判断できません（対象が少なすぎます）"
VERDICT_NO_HOLDOUT = "判断できません（送らないグループがありません）"


# -- attribution ----------------------------------------------------------------------------
_ATTRIBUTED_SQL = "WITH " + GROSS_PROFIT_CTE + """,
touches AS (
    SELECT o.source, o.order_id, o.customer_id, o.ordered_at,
           CAST(coalesce(o.total_amount, 0) AS DOUBLE) AS revenue,
           CAST(coalesce(o.discount_amount, 0) AS DOUBLE) AS discount,
           o.coupon_code, c.campaign_id, r.variant, r.holdout,
           c.coupon_code IS NOT NULL AND upper(trim(coalesce(o.coupon_code, ''))) = upper(trim(c.coupon_code)) AS coupon_redeemed,
           row_number() OVER (PARTITION BY o.source, o.order_id ORDER BY c.sent_at DESC, c.campaign_id DESC) AS touch_rank
    FROM orders o
    JOIN campaign_recipients r ON r.customer_id = o.customer_id
    JOIN campaigns c ON c.campaign_id = r.campaign_id
    WHERE NOT coalesce(o.cancelled, FALSE)
      AND o.ordered_at >= c.sent_at
      AND o.ordered_at < c.sent_at + to_days(c.attribution_days)
)
SELECT t.campaign_id, t.source, t.order_id, t.customer_id, t.ordered_at, t.revenue, t.discount, t.coupon_code,
       t.coupon_redeemed, t.variant, t.holdout,
       p.gross_profit, coalesce(p.covered_revenue, 0) AS covered_revenue, coalesce(p.line_revenue, 0) AS line_revenue
FROM touches t LEFT JOIN order_profit p ON p.source = t.source AND p.order_id = t.order_id
WHERE t.touch_rank = 1
"""  # noqa: S608 - constant SQL fragments


def attributed_orders(store: Store, campaign_id: int | None = None) -> pd.DataFrame:
    """Orders attributed to campaigns by last touch.

    Returns
    -------
    DataFrame
        ``campaign_id, source, order_id, customer_id, ordered_at, revenue,
        discount, coupon_code, coupon_redeemed, variant, holdout,
        gross_profit`` (None when no line has a known cost),
        ``covered_revenue, line_revenue``.
    """
    if campaign_id is None:
        return store.df(_ATTRIBUTED_SQL + " ORDER BY campaign_id, ordered_at")
    return store.df("SELECT * FROM (" + _ATTRIBUTED_SQL + ") WHERE campaign_id = ? ORDER BY ordered_at", [int(campaign_id)])  # noqa: S608 - constant SQL


def recipient_table(store: Store, campaign_id: int) -> pd.DataFrame:
    """One row per recipient with results and attributed outcome.

    Returns
    -------
    DataFrame
        ``customer_id, variant, holdout, has_result, delivered, opened,
        clicked, orders, revenue, coupon_orders, discount, gross_profit``
        (of the lines with a known cost), ``covered_revenue, line_revenue``.
    """
    return store.df(
        "WITH att AS (SELECT * FROM (" + _ATTRIBUTED_SQL + ") WHERE campaign_id = $cid) "  # noqa: S608 - constant SQL
        """SELECT r.customer_id, r.variant, r.holdout, e.customer_id IS NOT NULL AS has_result,
                  coalesce(e.delivered, FALSE) AS delivered, coalesce(e.opened, FALSE) AS opened,
                  coalesce(e.clicked, FALSE) AS clicked,
                  count(a.order_id) AS orders, coalesce(sum(a.revenue), 0) AS revenue,
                  count(a.order_id) FILTER (WHERE a.coupon_redeemed) AS coupon_orders,
                  coalesce(sum(a.discount) FILTER (WHERE a.coupon_redeemed), 0) AS discount,
                  coalesce(sum(a.gross_profit), 0) AS gross_profit,
                  coalesce(sum(a.covered_revenue), 0) AS covered_revenue,
                  coalesce(sum(a.line_revenue), 0) AS line_revenue
           FROM campaign_recipients r
           LEFT JOIN campaign_events e ON e.campaign_id = r.campaign_id AND e.customer_id = r.customer_id
           LEFT JOIN att a ON a.customer_id = r.customer_id
           WHERE r.campaign_id = $cid
           GROUP BY ALL ORDER BY r.customer_id""",
        {"cid": int(campaign_id)},
    )


def pre_period_revenue(store: Store, campaign_id: int, days: int = PRE_DAYS) -> pd.DataFrame:
    """Each recipient's revenue in the ``days`` days before the send (CUPED's covariate).

    Returns
    -------
    DataFrame
        ``customer_id, pre_revenue`` (0 without orders), one row per recipient.
    """
    return store.df(
        """SELECT r.customer_id, coalesce(sum(CAST(o.total_amount AS DOUBLE)), 0) AS pre_revenue
           FROM campaign_recipients r JOIN campaigns c ON c.campaign_id = r.campaign_id
           LEFT JOIN orders o ON o.customer_id = r.customer_id AND NOT coalesce(o.cancelled, FALSE)
                AND o.ordered_at >= c.sent_at - to_days($days) AND o.ordered_at < c.sent_at
           WHERE r.campaign_id = $cid
           GROUP BY r.customer_id ORDER BY r.customer_id""",
        {"cid": int(campaign_id), "days": int(days)},
    )


def sample_ratio(camp: dict[str, Any], rec: pd.DataFrame) -> dict[str, Any]:
    """Sample-ratio check of a campaign's frozen groups against its holdout share and variants."""
    variants = [v for v in camp["variants"] if v] or ["A"]
    share = float(camp.get("holdout_share") or 0)
    counts = [int(rec["holdout"].sum())] + [int(((~rec["holdout"]) & (rec["variant"] == v)).sum()) for v in variants]
    shares = [share] + [(1 - share) / len(variants)] * len(variants)
    out = E.srm_check(counts, shares)
    out["groups"] = ["送らないグループ"] + [f"パターン{v}" for v in variants]
    out["observed"] = counts
    return out


# -- statistics --------------------------------------------------------------------------------
def _z(confidence: float = CONFIDENCE) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n <= 0:
        return (math.nan, math.nan)
    z = _z(confidence)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_interval(b1: int, n1: int, b0: int, n0: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``b1/n1 − b0/n0`` (method 10)."""
    if n1 <= 0 or n0 <= 0:
        return (math.nan, math.nan)
    p1, p0 = b1 / n1, b0 / n0
    l1, u1 = wilson_interval(b1, n1, confidence)
    l0, u0 = wilson_interval(b0, n0, confidence)
    d = p1 - p0
    lower = d - math.sqrt((p1 - l1) ** 2 + (u0 - p0) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p0 - l0) ** 2)
    return (lower, upper)


def two_proportion_p(b1: int, n1: int, b0: int, n0: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test."""
    if n1 <= 0 or n0 <= 0:
        return math.nan
    pooled = (b1 + b0) / (n1 + n0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    if se == 0:
        return 1.0
    z = (b1 / n1 - b0 / n0) / se
    return float(2 * stats.norm.sf(abs(z)))


def welch(x1: np.ndarray, x0: np.ndarray, confidence: float = CONFIDENCE) -> dict[str, float]:
    """Welch's t-test of ``mean(x1) − mean(x0)``: ``diff, low, high, p``."""
    x1 = np.asarray(x1, dtype=float)
    x0 = np.asarray(x0, dtype=float)
    n1, n0 = len(x1), len(x0)
    if n1 < 2 or n0 < 2:
        return {"diff": math.nan, "low": math.nan, "high": math.nan, "p": math.nan}
    m1, m0 = x1.mean(), x0.mean()
    v1, v0 = x1.var(ddof=1) / n1, x0.var(ddof=1) / n0
    diff = float(m1 - m0)
    se = math.sqrt(v1 + v0)
    if se == 0:
        return {"diff": diff, "low": diff, "high": diff, "p": 1.0 if diff == 0 else 0.0}
    df = (v1 + v0) ** 2 / (v1**2 / (n1 - 1) + v0**2 / (n0 - 1))
    t = diff / se
    q = float(stats.t.ppf(0.5 + confidence / 2, df))
    return {"diff": diff, "low": diff - q * se, "high": diff + q * se, "p": float(2 * stats.t.sf(abs(t), df))}


def too_small(n1: int, n0: int, buyers: int) -> bool:
    """True when a comparison has too few recipients or buyers to tell."""
    return n1 < MIN_GROUP or n0 < MIN_GROUP or buyers < MIN_BUYERS


def verdict(low: float, high: float, small: bool) -> str:
    """The plain-language verdict of an interval of a difference."""
    if small or math.isnan(low):
        return VERDICT_SMALL
    if low > 0:
        return VERDICT_YES
    if high < 0:
        return VERDICT_NEGATIVE
    return VERDICT_NONE


# -- metrics -----------------------------------------------------------------------------------
def _group(df: pd.DataFrame, label: str, with_results: bool) -> dict[str, Any]:
    n = len(df)
    buyers = int((df["orders"] > 0).sum())
    orders = int(df["orders"].sum())
    revenue = float(df["revenue"].sum())
    out: dict[str, Any] = {
        "group": label, "recipients": n, "buyers": buyers, "orders": orders, "revenue": revenue,
        "conversion": buyers / n if n else math.nan, "revenue_per_recipient": revenue / n if n else math.nan,
        "coupon_orders": int(df["coupon_orders"].sum()), "coupon_discount": float(df["discount"].sum()),
        "gross_profit": float(df["gross_profit"].sum()) if "gross_profit" in df else None,
        "delivered": None, "opened": None, "clicked": None,
        "delivery_rate": None, "open_rate": None, "click_rate": None,
    }
    if with_results:
        delivered = int(df["delivered"].sum())
        out.update(delivered=delivered, opened=int(df["opened"].sum()), clicked=int(df["clicked"].sum()))
        out["delivery_rate"] = delivered / n if n else None
        out["open_rate"] = out["opened"] / delivered if delivered else None
        out["click_rate"] = out["clicked"] / delivered if delivered else None
    return out


def compare(treat: pd.DataFrame, control: pd.DataFrame, revenue_cap: float | None = None) -> dict[str, Any]:
    """Lift of ``treat`` over ``control`` (recipient tables of :func:`recipient_table`).

    Revenue is capped at ``revenue_cap`` (default: the 99.9th percentile of
    both groups pooled).  With a ``pre_revenue`` column in both tables, the
    result also holds ``cuped`` (the CUPED-adjusted revenue comparison).
    """
    n1, n0 = len(treat), len(control)
    b1, b0 = int((treat["orders"] > 0).sum()), int((control["orders"] > 0).sum())
    p1 = b1 / n1 if n1 else math.nan
    p0 = b0 / n0 if n0 else math.nan
    low, high = newcombe_interval(b1, n1, b0, n0)
    raw1 = treat["revenue"].to_numpy(dtype=float)
    raw0 = control["revenue"].to_numpy(dtype=float)
    limit = E.revenue_cap(np.concatenate([raw1, raw0])) if revenue_cap is None else float(revenue_cap)
    y1, y0 = E.cap(raw1, limit), E.cap(raw0, limit)
    rev = welch(y1, y0)
    small = too_small(n1, n0, b1 + b0)
    ctw_conv = E.chance_to_win(n1, b1, b1, n0, b0, b0)
    ctw_rev = E.chance_to_win_arrays(y1, y0)
    out = {
        "conversion_treatment": p1, "conversion_control": p0,
        "conversion_diff": p1 - p0, "conversion_low": low, "conversion_high": high,
        "conversion_p": two_proportion_p(b1, n1, b0, n0),
        "relative_lift": (p1 / p0 - 1) if p0 and not math.isnan(p0) else None,
        "incremental_buyers": (p1 - p0) * n1 if n1 and n0 else math.nan,
        "incremental_buyers_low": low * n1, "incremental_buyers_high": high * n1,
        "rpr_diff": rev["diff"], "rpr_low": rev["low"], "rpr_high": rev["high"], "rpr_p": rev["p"],
        "incremental_revenue": rev["diff"] * n1, "incremental_revenue_low": rev["low"] * n1,
        "incremental_revenue_high": rev["high"] * n1,
        "revenue_cap": limit, "revenue_cap_percentile": E.CAP_PERCENTILE,
        "capped_customers": int((raw1 > limit).sum() + (raw0 > limit).sum()) if not math.isnan(limit) else 0,
        "rpr_diff_uncapped": float(raw1.mean() - raw0.mean()) if n1 and n0 else math.nan,
        "chance_to_win": None if small else ctw_conv["chance"],
        "chance_to_win_revenue": None if small else ctw_rev["chance"],
        "chance_lift": ctw_conv,
        "too_small": small,
        "verdict": verdict(low, high, small),
        "revenue_verdict": verdict(rev["low"], rev["high"], small),
        "cuped": None,
        "tests": [CONVERSION_TEST, REVENUE_TEST],
    }
    if "pre_revenue" in treat.columns and "pre_revenue" in control.columns and n1 >= 2 and n0 >= 2:
        a1, a0, theta, corr = E.cuped_adjust(y1, treat["pre_revenue"].to_numpy(dtype=float),
                                              y0, control["pre_revenue"].to_numpy(dtype=float))
        cu = welch(a1, a0)
        out["cuped"] = {
            "pre_days": PRE_DAYS, "theta": theta, "corr": corr,
            "rpr_diff": cu["diff"], "rpr_low": cu["low"], "rpr_high": cu["high"], "rpr_p": cu["p"],
            "incremental_revenue": cu["diff"] * n1, "incremental_revenue_low": cu["low"] * n1,
            "incremental_revenue_high": cu["high"] * n1,
            "width_ratio": ((cu["high"] - cu["low"]) / (rev["high"] - rev["low"])
                            if rev["high"] - rev["low"] > 0 and not math.isnan(cu["high"]) else None),
            "verdict": verdict(cu["low"], cu["high"], small),
        }
    return out


def message_rate(channel: str, line_plan: str | None, cost_per_message: float | None = None) -> Decimal:
    """Yen per message of a campaign.

    LINE uses :mod:`crm_core.planning.costs`: on a plan that allows extra messages
    (スタンダード) the rate of the first paid tier, assuming the month's free
    messages are used by other sends (the marginal price); on plans with a
    hard quota (コミュニケーション, ライト) the monthly fee spread over the
    included messages (ライト: ¥5,000 / 5,000 = ¥1).  R-Mail ¥1; own e-mail ¥0.
    """
    from crm_core.planning import costs

    if cost_per_message is not None and not (isinstance(cost_per_message, float) and math.isnan(cost_per_message)):
        return Decimal(str(cost_per_message))
    if channel == "rmail":
        return costs.RMAIL_YEN
    if channel == "line":
        plan = costs.line_plan(line_plan or costs.DEFAULT_LINE_PLAN)
        if plan.can_exceed:
            return costs.line_cost(plan.free_messages + 1, plan).overage_cost
        return Decimal(plan.monthly_fee) / Decimal(plan.free_messages) if plan.free_messages else Decimal(0)
    return Decimal(0)


def campaign_report(store: Store, campaign_id: int) -> dict[str, Any]:
    """Everything the results page and ``results --json`` show for one campaign.

    Returns
    -------
    dict
        ``campaign`` (the record), ``groups`` (treatment, holdout and one per
        variant: recipients, delivered, open / click rates, buyers,
        conversion, orders, revenue, revenue per recipient), ``lift``
        (:func:`compare` of treatment vs holdout, or None), ``ab`` (variant
        test or None), ``variant_lifts`` (one :func:`compare` per variant
        against the holdout, plus ``variant``; empty without a holdout or
        with one variant), ``cost`` and ``notes``.
    """
    camp = C.get_campaign(store, campaign_id)
    rec = recipient_table(store, campaign_id)
    pre = pre_period_revenue(store, campaign_id)
    rec = rec.merge(pre, on="customer_id", how="left")
    rec["pre_revenue"] = rec["pre_revenue"].fillna(0.0)
    with_results = bool(rec["has_result"].any()) if len(rec) else False
    treat = rec[~rec["holdout"]]
    control = rec[rec["holdout"]]
    groups = [_group(treat, "配信", with_results)]
    if len(control):
        groups.append(_group(control, "送らないグループ", False))
    variants = [v for v in camp["variants"] if v]
    if len(variants) > 1:
        for v in variants:
            groups.append(_group(treat[treat["variant"] == v], f"パターン{v}", with_results))
    limit = E.revenue_cap(rec["revenue"].to_numpy(dtype=float)) if len(rec) else math.nan
    lift = compare(treat, control, limit) if len(control) else None
    ab = ab_test(treat, variants, limit) if len(variants) > 1 else None
    srm = sample_ratio(camp, rec) if len(control) or len(variants) > 1 else None
    variant_lifts = [
        {"variant": v, **compare(treat[treat["variant"] == v], control, limit)}
        for v in variants
    ] if len(variants) > 1 and len(control) else []
    # Cost
    sent = int(treat["delivered"].sum()) if with_results and camp["channel"] == "line" else len(treat)
    rate = message_rate(camp["channel"], camp.get("line_plan"), camp.get("cost_per_message"))
    message_cost = float(rate * sent)
    coupon_cost = float(treat["discount"].sum())
    fixed = float(camp.get("fixed_cost") or 0)
    total = message_cost + coupon_cost + fixed
    orders = int(treat["orders"].sum())
    revenue = float(treat["revenue"].sum())
    incremental = lift["incremental_revenue"] if lift else None
    profit = profit_lift(treat, control) if len(control) else None
    line_rev = float(rec["line_revenue"].sum())
    coverage = float(rec["covered_revenue"].sum()) / line_rev if line_rev else None
    gp_usable = profit is not None and coverage is not None and coverage > 0
    cost = {
        "messages": sent, "rate": float(rate), "message_cost": message_cost, "coupon_cost": coupon_cost,
        "fixed_cost": fixed, "total_cost": total,
        "cpo": total / orders if orders else None,
        "roas": revenue / total if total else None,
        "roi": _roi(incremental, total, lift),
        "roi_low": _roi(lift["incremental_revenue_low"], total, lift) if lift else None,
        "roi_high": _roi(lift["incremental_revenue_high"], total, lift) if lift else None,
        "incremental_cpo": total / lift["incremental_buyers"] if lift and lift["incremental_buyers"] and lift["incremental_buyers"] > 0 else None,
        "gross_profit": float(treat["gross_profit"].sum()),
        "cost_coverage": coverage,
        "incremental_gross_profit": profit["incremental"] if gp_usable else None,
        "incremental_gross_profit_low": profit["low"] if gp_usable else None,
        "incremental_gross_profit_high": profit["high"] if gp_usable else None,
        "roi_gross_profit": _roi(profit["incremental"], total, lift) if gp_usable else None,
        "roi_gross_profit_low": _roi(profit["low"], total, lift) if gp_usable else None,
        "roi_gross_profit_high": _roi(profit["high"], total, lift) if gp_usable else None,
    }
    notes = [LAST_TOUCH_NOTE]
    if srm and srm["broken"]:
        notes.append(srm["message"])
    if not len(control):
        notes.append("送らないグループ（比較用）がないため、効果（上乗せ分）は計算できません。")
    if not with_results:
        notes.append("配信結果（到達・開封・クリック）のファイルがまだ取り込まれていません。")
    if coverage is None or coverage == 0:
        if line_rev:
            notes.append("商品の原価が登録されていないため、粗利ベースの効果とROIは計算できません（「データ取込」で商品マスタを取り込むか、原価を入力してください）。")
    elif coverage < 1:
        notes.append(f"粗利は、原価が分かる商品（この施策の注文の商品売上の{coverage:.0%}）だけで計算しています。"
                     "残りの商品の粗利は含まれないため、粗利ベースの数字は控えめ（少なめ）です。")
    window_end = camp["sent_at"] + dt.timedelta(days=int(camp["attribution_days"]))
    last_order = store.scalar("SELECT max(ordered_at) FROM orders")
    if last_order is not None and pd.Timestamp(last_order) < pd.Timestamp(window_end):
        notes.append("集計期間がまだ終わっていません（最新の注文データより後の日が含まれます）。数字は途中経過です。")
    campaign = {k: (v.isoformat() if isinstance(v, (dt.datetime, pd.Timestamp)) else v) for k, v in camp.items()}
    return {"campaign": campaign, "groups": groups, "lift": lift, "ab": ab, "variant_lifts": variant_lifts,
            "cost": cost, "with_results": with_results, "notes": notes, "srm": srm}


def profit_lift(treat: pd.DataFrame, control: pd.DataFrame) -> dict[str, float]:
    """Incremental gross profit of ``treat`` over ``control``: Welch on gross profit per recipient × treated recipients.

    Only the difference to the holdout counts, so orders (and coupon
    redemptions) that would have happened anyway bring no profit.  Gross
    profit per customer is capped at the same percentile as revenue.
    """
    g1 = treat["gross_profit"].to_numpy(dtype=float)
    g0 = control["gross_profit"].to_numpy(dtype=float)
    limit = E.revenue_cap(np.concatenate([g1, g0]))
    res = welch(E.cap(g1, limit), E.cap(g0, limit))
    n1 = len(treat)
    return {"diff": res["diff"], "incremental": res["diff"] * n1, "low": res["low"] * n1, "high": res["high"] * n1,
            "p": res["p"], "cap": limit}


def coupon_incremental_share(store: Store) -> dict[str, Any] | None:
    """Share of coupon redemptions that were extra orders, measured on past campaigns with a coupon and a holdout.

    ``share = Σ incremental orders / Σ coupon orders`` over those campaigns,
    where incremental orders = (orders per treated recipient − orders per
    holdout recipient) × treated recipients; clipped to 0-1.  None when no
    campaign with a coupon code and a holdout of at least :data:`MIN_GROUP`
    has redemptions.

    Returns
    -------
    dict or None
        ``share``, ``campaigns`` (how many were used), ``coupon_orders``.
    """
    ids = [int(r[0]) for r in store.fetchall(
        "SELECT campaign_id FROM campaigns WHERE coupon_code IS NOT NULL AND trim(coupon_code) <> '' AND holdout_share > 0")]
    extra = redeemed = 0.0
    used = 0
    for cid in ids:
        rec = recipient_table(store, cid)
        treat, control = rec[~rec["holdout"]], rec[rec["holdout"]]
        coupon_orders = float(treat["coupon_orders"].sum())
        if len(control) < MIN_GROUP or len(treat) < MIN_GROUP or not coupon_orders:
            continue
        extra += (treat["orders"].mean() - control["orders"].mean()) * len(treat)
        redeemed += coupon_orders
        used += 1
    if not used:
        return None
    return {"share": min(max(extra / redeemed, 0.0), 1.0), "campaigns": used, "coupon_orders": int(redeemed)}


def _roi(incremental: float | None, total: float, lift: dict[str, Any] | None) -> float | None:
    """(incremental revenue − cost) / cost; None without a cost, a holdout or enough data."""
    if not total or incremental is None or lift is None or lift["too_small"] or math.isnan(incremental):
        return None
    return (incremental - total) / total


def ab_test(treat: pd.DataFrame, variants: list[str], revenue_cap: float | None = None) -> dict[str, Any]:
    """Compare the two best variants by conversion (see the module docstring)."""
    limit = E.revenue_cap(treat["revenue"].to_numpy(dtype=float)) if revenue_cap is None else float(revenue_cap)
    rows = []
    values: dict[str, np.ndarray] = {}
    for v in variants:
        part = treat[treat["variant"] == v]
        n = len(part)
        b = int((part["orders"] > 0).sum())
        low, high = wilson_interval(b, n)
        values[v] = E.cap(part["revenue"].to_numpy(dtype=float), limit)
        rows.append({"variant": v, "recipients": n, "buyers": b, "conversion": b / n if n else math.nan,
                     "low": low, "high": high, "revenue_per_recipient": float(part["revenue"].mean()) if n else math.nan})
    ranked = sorted(rows, key=lambda r: (-(r["conversion"] if not math.isnan(r["conversion"]) else -1), r["variant"]))
    best, second = ranked[0], ranked[1]
    low, high = newcombe_interval(best["buyers"], best["recipients"], second["buyers"], second["recipients"])
    p = two_proportion_p(best["buyers"], best["recipients"], second["buyers"], second["recipients"])
    small = too_small(best["recipients"], second["recipients"], best["buyers"] + second["buyers"])
    chance = E.chance_to_win(best["recipients"], best["buyers"], best["buyers"], second["recipients"], second["buyers"], second["buyers"])
    chance_rev = E.chance_to_win_arrays(values[best["variant"]], values[second["variant"]])
    prob = None if small else chance["chance"]
    if small:
        message = "対象が少なすぎて、どちらが良いか判断できません。"
        winner = None
    elif low > 0:
        message = f"パターン{best['variant']}の購入率が高く、差は偶然とは考えにくいです（p={p:.3f}）。"
        winner = best["variant"]
    else:
        message = f"パターン{best['variant']}がやや良いものの、差は誤差の範囲です（p={p:.3f}）。"
        winner = None
    return {"variants": rows, "leader": best["variant"], "runner_up": second["variant"], "winner": winner,
            "diff": best["conversion"] - second["conversion"], "low": low, "high": high, "p": p,
            "prob_leader_better": prob, "prob_leader_better_revenue": None if small else chance_rev["chance"],
            "too_small": small, "message": message,
            "test": "購入率の差：2群の比率の差のz検定とNewcombe法の95%信頼区間。勝つ確率は一様な事前分布のベイズ推定（GrowthBookと同じ考え方）"}


# -- lists and series for the page ---------------------------------------------------------------
def campaign_summaries(store: Store) -> pd.DataFrame:
    """One row per campaign with headline numbers and a daily revenue trend.

    Returns
    -------
    DataFrame
        ``campaign_id, name, channel, sent_at, recipients, buyers,
        conversion, revenue, lift, verdict, trend`` (``trend``: the
        recipients' daily revenue from 7 days before to the end of the window).
    """
    camps = C.list_campaigns(store)
    if camps.empty:
        return camps
    att = attributed_orders(store)
    trend = store.df(
        """SELECT c.campaign_id, CAST(o.ordered_at AS DATE) - CAST(c.sent_at AS DATE) AS day,
                  sum(CAST(o.total_amount AS DOUBLE)) AS revenue
           FROM campaigns c JOIN campaign_recipients r USING (campaign_id)
           JOIN orders o ON o.customer_id = r.customer_id AND NOT coalesce(o.cancelled, FALSE)
           WHERE NOT r.holdout AND o.ordered_at >= c.sent_at - INTERVAL 7 DAY
             AND o.ordered_at < c.sent_at + to_days(c.attribution_days)
           GROUP BY ALL"""
    )
    rows = []
    for _, c in camps.iterrows():
        cid = int(c["campaign_id"])
        mine = att[(att["campaign_id"] == cid)]
        treat_orders = mine[~mine["holdout"].astype(bool)]
        n_treat = int(c["recipients"] - c["holdout"])
        buyers = treat_orders["customer_id"].nunique()
        conv = buyers / n_treat if n_treat else math.nan
        lift_text, verdict_text = None, VERDICT_NO_HOLDOUT
        if c["holdout"]:
            hold = mine[mine["holdout"].astype(bool)]
            b0 = hold["customer_id"].nunique()
            n0 = int(c["holdout"])
            low, high = newcombe_interval(buyers, n_treat, b0, n0)
            lift_text = conv - b0 / n0
            verdict_text = verdict(low, high, too_small(n_treat, n0, buyers + b0))
        days = range(-7, int(c["attribution_days"]))
        t = trend[trend["campaign_id"] == cid].set_index("day")["revenue"]
        rows.append({
            "campaign_id": cid, "name": c["name"], "channel": C.CHANNEL_LABELS.get(c["channel"], c["channel"]),
            "sent_at": c["sent_at"], "recipients": int(c["recipients"]), "buyers": int(buyers), "conversion": conv,
            "revenue": float(treat_orders["revenue"].sum()), "lift": lift_text, "verdict": verdict_text,
            "trend": [float(t.get(d, 0.0)) for d in days],
        })
    return pd.DataFrame(rows)


def daily_sales(store: Store, campaign_id: int, before: int = 14, after: int = 14) -> pd.DataFrame:
    """Shop-wide daily revenue and orders around the send day.

    Returns
    -------
    DataFrame
        ``day`` (date), ``offset`` (days from the send day), ``revenue``, ``orders``.
    """
    camp = C.get_campaign(store, campaign_id)
    start = camp["sent_at"].date() - dt.timedelta(days=before)
    end = camp["sent_at"].date() + dt.timedelta(days=after)
    df = store.df(
        """WITH days AS (SELECT CAST(d AS DATE) AS day FROM range(CAST($start AS TIMESTAMP), CAST($end AS TIMESTAMP) + INTERVAL 1 DAY, INTERVAL 1 DAY) t(d))
           SELECT days.day, coalesce(sum(CAST(o.total_amount AS DOUBLE)), 0) AS revenue, count(o.order_id) AS orders
           FROM days LEFT JOIN orders o ON CAST(o.ordered_at AS DATE) = days.day AND NOT coalesce(o.cancelled, FALSE)
           GROUP BY days.day ORDER BY days.day""",
        {"start": start, "end": end},
    )
    df["offset"] = (pd.to_datetime(df["day"]) - pd.Timestamp(camp["sent_at"].date())).dt.days
    return df


def cumulative_revenue(store: Store, campaign_id: int) -> pd.DataFrame:
    """Attributed revenue per recipient, cumulated by day since the send, treatment vs holdout.

    Returns
    -------
    DataFrame
        ``day`` (0 .. attribution_days − 1), ``group`` ('配信' | '送らないグループ'),
        ``revenue_per_customer``.
    """
    camp = C.get_campaign(store, campaign_id)
    rec = C.recipients(store, campaign_id)
    att = attributed_orders(store, campaign_id)
    days = int(camp["attribution_days"])
    sent = pd.Timestamp(camp["sent_at"])
    att["day"] = ((pd.to_datetime(att["ordered_at"]) - sent).dt.total_seconds() // 86400).astype(int)
    out = []
    for holdout, label in ((False, "配信"), (True, "送らないグループ")):
        n = int((rec["holdout"] == holdout).sum())
        if not n:
            continue
        part = att[att["holdout"].astype(bool) == holdout].groupby("day")["revenue"].sum()
        running = 0.0
        for d in range(days):
            running += float(part.get(d, 0.0))
            out.append({"day": d, "group": label, "revenue_per_customer": running / n})
    return pd.DataFrame(out, columns=["day", "group", "revenue_per_customer"])


def funnel(report: dict[str, Any]) -> pd.DataFrame:
    """Delivered → opened → clicked → bought counts of the treatment group.

    Returns
    -------
    DataFrame
        ``step`` (Japanese), ``customers``, ``share`` (of recipients), ``rate`` and
        ``rate_label``: the rate the page's metrics show for that step, on the
        same base (到達率 and 購入率 of recipients, 開封率 and クリック率 of the
        delivered), so that the chart and the metrics agree; empty without
        imported results.
    """
    g = report["groups"][0]
    if not report["with_results"]:
        return pd.DataFrame(columns=["step", "customers", "share", "rate", "rate_label"])
    n = g["recipients"] or 1
    delivered = g["delivered"] or 0
    steps = [
        ("配信対象", g["recipients"], 1.0, ""),
        ("到達", g["delivered"], g["delivered"] / n, "到達率"),
        ("開封", g["opened"], g["opened"] / delivered if delivered else float("nan"), "開封率"),
        ("クリック", g["clicked"], g["clicked"] / delivered if delivered else float("nan"), "クリック率"),
        ("購入", g["buyers"], g["buyers"] / n, "購入率"),
    ]
    return pd.DataFrame([{"step": s, "customers": int(v), "share": v / n, "rate": r, "rate_label": lab}
                         for s, v, r, lab in steps])


def groups_frame(report: dict[str, Any]) -> pd.DataFrame:
    """The report's groups as a Japanese table for display and CSV download."""
    rows = []
    for g in report["groups"]:
        rows.append({
            "グループ": g["group"], "対象者数": g["recipients"], "到達数": g["delivered"],
            "開封率": g["open_rate"], "クリック率": g["click_rate"], "購入者数": g["buyers"],
            "購入率": g["conversion"], "注文数": g["orders"], "売上（円）": round(g["revenue"]),
            "1人あたり売上（円）": round(g["revenue_per_recipient"], 1) if not math.isnan(g["revenue_per_recipient"]) else None,
            "クーポン利用注文": g["coupon_orders"],
            "粗利（円、原価が分かる商品）": round(g["gross_profit"]) if g.get("gross_profit") is not None else None,
        })
    out = pd.DataFrame(rows)
    for col in ("到達数", "開封率", "クリック率"):
        out[col] = pd.to_numeric(out[col], errors="coerce")  # missing results show as blanks, not "None"
    return out


def report_text(report: dict[str, Any]) -> str:
    """A plain-text summary for the command line."""
    c = report["campaign"]
    lines = [f"施策 {c['campaign_id']}: {c['name']}（{C.CHANNEL_LABELS.get(c['channel'], c['channel'])}、送信 {c['sent_at']}、{c['attribution_days']}日間）"]
    for g in report["groups"]:
        lines.append(
            f"  {g['group']}: 対象 {g['recipients']:,}人 / 購入者 {g['buyers']:,}人 (購入率 {g['conversion']:.2%}) / "
            f"注文 {g['orders']:,}件 / 売上 ¥{g['revenue']:,.0f} / 1人あたり ¥{g['revenue_per_recipient']:,.1f}"
        )
    lift = report["lift"]
    srm = report.get("srm")
    if srm and srm["broken"]:
        lines.append("  ⚠ " + srm["message"])
    if lift:
        lines.append(
            f"  効果: {lift['verdict']} — 購入率の差 {lift['conversion_diff']:+.2%} "
            f"(95%信頼区間 {lift['conversion_low']:+.2%}〜{lift['conversion_high']:+.2%}, p={lift['conversion_p']:.3f}"
            + (f", 勝つ確率 {E.chance_text(lift['chance_to_win'])}" if lift.get("chance_to_win") is not None else "") + "); "
            f"上乗せ売上 ¥{lift['incremental_revenue']:,.0f} (¥{lift['incremental_revenue_low']:,.0f}〜¥{lift['incremental_revenue_high']:,.0f}, p={lift['rpr_p']:.3f}"
            + (f", 勝つ確率 {E.chance_text(lift['chance_to_win_revenue'])}" if lift.get("chance_to_win_revenue") is not None else "") + ")"
        )
        if not math.isnan(lift.get("revenue_cap", math.nan)):
            lines.append(f"  売上は1人あたり¥{lift['revenue_cap']:,.0f}（{lift['revenue_cap_percentile']:g}パーセンタイル）で頭打ちにして比較"
                         f"（該当 {lift['capped_customers']}人）")
        cu = lift.get("cuped")
        if cu and not math.isnan(cu["rpr_low"]):
            lines.append(f"  分散削減（CUPED、送信前{cu['pre_days']}日の購入額で補正）: 上乗せ売上 ¥{cu['incremental_revenue']:,.0f} "
                         f"(¥{cu['incremental_revenue_low']:,.0f}〜¥{cu['incremental_revenue_high']:,.0f}, p={cu['rpr_p']:.3f})")
    if report["ab"]:
        ab = report["ab"]
        lines.append("  A/B: " + ab["message"]
                     + (f" パターン{ab['leader']}が勝つ確率 {E.chance_text(ab['prob_leader_better'])}" if ab["prob_leader_better"] is not None else ""))
    for v in report.get("variant_lifts", []):
        lines.append(
            f"  パターン{v['variant']}の効果: {v['verdict']} — 購入率の差 {v['conversion_diff']:+.2%} "
            f"(95%信頼区間 {v['conversion_low']:+.2%}〜{v['conversion_high']:+.2%}, p={v['conversion_p']:.3f})"
        )
    cost = report["cost"]
    lines.append(f"  費用 {jp.yen(cost['total_cost'])} (配信 {jp.yen(cost['message_cost'])} + クーポン {jp.yen(cost['coupon_cost'])}"
                 f" + 固定 {jp.yen(cost['fixed_cost'])})"
                 + (f" / CPO {jp.yen(cost['cpo'])}" if cost["cpo"] else "")
                 + (f" / ROI {jp.pct(cost['roi'], 0)}" if cost["roi"] is not None else "")
                 + (f" / 粗利ROI {jp.pct(cost['roi_gross_profit'], 0)}" if cost.get("roi_gross_profit") is not None else ""))
    if cost.get("incremental_gross_profit") is not None:
        lines.append(f"  上乗せ粗利 {jp.yen(cost['incremental_gross_profit'])} ({jp.yen(cost['incremental_gross_profit_low'])}〜"
                     f"{jp.yen(cost['incremental_gross_profit_high'])}、原価が分かる売上 {jp.pct(cost['cost_coverage'], 0)})")
    lines.extend("  ※" + n for n in report["notes"])
    return "\n".join(lines)


# -- the whole programme against the global holdout ---------------------------------------------------
PROGRAMME_NOTE = ("全体の比較グループ（どの施策も送らないお客様）と、それ以外のお客様の1人あたり売上を月ごとに比べています。"
                  "差が、LINE・メール・R-Mailなどの施策全体による上乗せです（その月の初めまでに購入したことのあるお客様が対象）。")


def programme_lift(store: Store, as_of: dt.date | None = None, months: int = 12) -> dict[str, Any]:
    """Incremental revenue of the whole CRM programme against the global holdout, month by month.

    For every month since the global holdout took effect (the first month
    starts on that day; at most ``months`` months, ending at ``as_of``, by
    default the latest order), customers whose first order came before the
    month's start are split into the global holdout and everyone else; revenue
    per customer (zeros included, non-cancelled orders, capped at the 99.9th
    percentile of the month) is compared with Welch's interval.  The same for
    the whole period in ``total``.

    Returns
    -------
    dict
        ``share``, ``since``, ``months`` (DataFrame: ``month`` (first day),
        ``start``, ``end``, ``customers``, ``holdout_customers``,
        ``revenue_per_customer``, ``holdout_revenue_per_customer``,
        ``diff``, ``low``, ``high``, ``p``, ``incremental_revenue``,
        ``incremental_low``, ``incremental_high``, ``too_small``), ``total``
        (the same keys for the whole period, or None) and ``message`` (why
        there is nothing to show, else empty).
    """

    setting = C.global_holdout_setting(store)
    share, since = setting["share"], setting["since"]
    columns = ["month", "start", "end", "customers", "holdout_customers", "revenue_per_customer",
               "holdout_revenue_per_customer", "diff", "low", "high", "p", "incremental_revenue",
               "incremental_low", "incremental_high", "too_small"]
    out: dict[str, Any] = {"share": share, "since": since, "months": pd.DataFrame(columns=columns), "total": None, "message": ""}
    if share <= 0 or since is None:
        out["message"] = "全体の比較グループはまだ設定されていません（割合を0%より大きくすると、その日から比較を始めます）。"
        return out
    last = store.scalar("SELECT max(ordered_at) FROM orders WHERE NOT coalesce(cancelled, FALSE)")
    if as_of is None:
        if last is None:
            out["message"] = "注文データがありません。"
            return out
        as_of = pd.Timestamp(last).date()
    start_day = dt.date.fromisoformat(since)
    if as_of < start_day:
        out["message"] = f"比較は{start_day:%Y年%m月%d日}から始まります。その後の注文が取り込まれると表示されます。"
        return out
    windows = []
    cursor = start_day
    while cursor <= as_of:
        nxt = (pd.Timestamp(cursor) + pd.offsets.MonthBegin(1)).date()
        windows.append((cursor.replace(day=1), cursor, min(nxt, as_of + dt.timedelta(days=1))))
        cursor = nxt
    windows = windows[-int(months):]
    ids = [r[0] for r in store.fetchall("SELECT DISTINCT customer_id FROM orders WHERE customer_id IS NOT NULL")]
    flags = pd.DataFrame({"customer_id": ids, "held": [C.in_global_holdout(c, share) for c in ids]})
    rows = []
    with store.transaction() as cur:
        cur.register("global_flags", flags)
        for month, begin, end in [*windows, (None, windows[0][1], windows[-1][2])]:
            per = cur.execute(
                """WITH firsts AS (SELECT customer_id, min(ordered_at) AS first_at FROM orders
                                   WHERE NOT coalesce(cancelled, FALSE) AND customer_id IS NOT NULL GROUP BY ALL),
                        base AS (SELECT f.customer_id, g.held FROM firsts f JOIN global_flags g USING (customer_id)
                                 WHERE f.first_at < CAST($begin AS TIMESTAMP))
                   SELECT b.held, coalesce(sum(CAST(o.total_amount AS DOUBLE)), 0) AS revenue
                   FROM base b LEFT JOIN orders o ON o.customer_id = b.customer_id AND NOT coalesce(o.cancelled, FALSE)
                        AND o.ordered_at >= CAST($begin AS TIMESTAMP) AND o.ordered_at < CAST($end AS TIMESTAMP)
                   GROUP BY b.customer_id, b.held""",
                {"begin": begin, "end": end},
            ).df()
            rev = per["revenue"].to_numpy(dtype=float)
            held = per["held"].to_numpy(dtype=bool)
            limit = E.revenue_cap(rev) if len(rev) else math.nan
            capped = E.cap(rev, limit)
            t, h = capped[~held], capped[held]
            w = welch(t, h)
            n1, n0 = len(t), len(h)
            buyers = int((rev > 0).sum())
            rows.append({
                "month": month, "start": begin, "end": end - dt.timedelta(days=1), "customers": n1, "holdout_customers": n0,
                "revenue_per_customer": float(t.mean()) if n1 else math.nan,
                "holdout_revenue_per_customer": float(h.mean()) if n0 else math.nan,
                "diff": w["diff"], "low": w["low"], "high": w["high"], "p": w["p"],
                "incremental_revenue": w["diff"] * n1, "incremental_low": w["low"] * n1, "incremental_high": w["high"] * n1,
                "too_small": too_small(n1, n0, buyers),
            })
        cur.unregister("global_flags")
    out["total"] = rows.pop()
    out["months"] = pd.DataFrame(rows, columns=columns)
    return out
