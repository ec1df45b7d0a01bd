"""Scenario results: per scenario and step the sent count, conversion, revenue and lift against its holdout.

A step's treatment group is every occurrence handed to the ledger (``queued``,
intent to treat), its control group every occurrence held out at that step.
A customer converts with a counted order in the ``days`` after the step's send
slot (revenue and gross profit as defined in :mod:`crm_core.purchases`); the lift
and its 95% interval come from :func:`crm_core.results.attribution.compare`, the
statistics of campaigns.  Every zero says why (:func:`why_zero`).
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from typing import Any

import pandas as pd

from crm_core import jp
from crm_core import purchases as P
from crm_core.db import Store
from crm_core.messaging import ledger as _ledger  # noqa: F401 - registers send_ledger, which these reports read
from crm_core.results import attribution as R
from crm_core.scenarios import definitions as D

ATTRIBUTION_DAYS = 14


def _outcomes(store: Store, occ: pd.DataFrame, days: int) -> pd.DataFrame:
    """Orders, revenue and gross profit of each occurrence's customer in the ``days`` after its send slot
    (the purchase and gross-profit definitions of :mod:`crm_core.purchases`)."""
    if occ.empty:
        return occ.assign(orders=[], revenue=[], gross_profit=[])
    profit = store.has_table("order_lines") and store.has_table("products") and store.has_table("category_margins")
    gp_cte = ("WITH " + P.GROSS_PROFIT_CTE + ", ") if profit else "WITH "
    gp_join = " LEFT JOIN order_profit op ON op.source = o.source AND op.order_id = o.order_id" if profit else ""
    gp_sum = "coalesce(sum(op.gross_profit), 0)" if profit else "0"
    df = store.df(
        gp_cte + "occ AS (SELECT unnest($c) AS customer_id, unnest($s) AS start, unnest($i) AS idx)"  # noqa: S608 - constant fragments
        " SELECT occ.idx, count(o.order_id) AS orders, coalesce(sum(" + P.revenue("o") + "), 0) AS revenue, "
        + gp_sum + " AS gross_profit FROM occ"
        " LEFT JOIN orders o ON o.customer_id = occ.customer_id AND " + P.is_purchase("o")
        + " AND o.ordered_at >= occ.start AND o.ordered_at < occ.start + to_days(CAST($days AS INTEGER))" + gp_join
        + " GROUP BY occ.idx ORDER BY occ.idx",
        {"c": occ["customer_id"].tolist(), "s": occ["start"].tolist(), "i": list(range(len(occ))), "days": int(days)})
    out = occ.reset_index(drop=True).copy()
    out["orders"] = df["orders"].to_numpy()
    out["revenue"] = df["revenue"].astype(float).to_numpy()
    out["gross_profit"] = df["gross_profit"].astype(float).to_numpy()
    return out


def _state_counts(ops: sqlite3.Connection, name: str) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for step, state, n in ops.execute("SELECT step, state, count(*) FROM scenario_occurrences WHERE scenario = ? GROUP BY step, state",
                                      [name]):
        out.setdefault(int(step), {})[state] = int(n)
    return out


def why_zero(s: D.Scenario, step: D.Step, row: dict[str, Any], states: dict[str, int]) -> str:
    """Why a step shows no sends or no lift yet, in Japanese ("" when there is nothing to explain)."""
    if row["sent"] and row["held_out"]:
        return ""
    if not row["queued"]:
        if not s.enabled and not states:
            return "シナリオがオフのため、まだ送っていません。"
        if not step.enabled:
            return "このステップはオフです。"
        if not states:
            return "オンにしてから、まだきっかけに当てはまるお客様がいません（または毎日の実行がまだです）。"
        reasons = [f"{D.STATES[k]} {v:,}人" for k, v in sorted(states.items(), key=lambda kv: -kv[1]) if k not in ("queued", "held_out")]
        return "送った人はいません: " + "、".join(reasons) + "。" if reasons else "送った人はいません。"
    if not row["sent"]:
        return (f"{row['queued']:,}人分が送信待ちです（送信時刻の前か、送信設定でLINE・メールの設定がまだです）。")
    if not row["held_out"]:
        return ("比較用に送らないお客様がまだいないため、効果（差）はまだ出せません。"
                if s.holdout else "比較用に送らない割合が0%のため、効果（差）は出せません。")
    return ""


def results(store: Store, ops: sqlite3.Connection, name: str, days: int = ATTRIBUTION_DAYS) -> dict[str, Any]:
    """Per step: ``sent``, ``held_out``, conversion, revenue and gross profit of both groups, lift with its
    interval (:func:`crm_core.results.attribution.compare`, as for campaigns), and ``why`` a count is zero."""
    s = D.get(ops, name)
    rows = [dict(r) for r in ops.execute(
        "SELECT o.step, o.customer_id, o.day, o.state, l.state AS ledger_state FROM scenario_occurrences o"
        " LEFT JOIN send_ledger_now l ON l.campaign_id = o.campaign_id AND l.customer_id = o.customer_id AND l.channel = o.channel"
        " WHERE o.scenario = ? AND o.state IN ('queued', 'held_out')", [name])]
    occ = pd.DataFrame(rows, columns=["step", "customer_id", "day", "state", "ledger_state"])
    if not occ.empty:
        slots = {i: st.slot for i, st in enumerate(s.steps)}
        occ["start"] = [dt.datetime.combine(dt.date.fromisoformat(d), dt.time.fromisoformat(slots.get(i, "00:00")))
                        for i, d in zip(occ["step"], occ["day"])]
    else:
        occ["start"] = []
    occ = _outcomes(store, occ, days)
    counts = _state_counts(ops, name)
    steps = []
    for i, step in enumerate(s.steps):
        part = occ[occ["step"] == i]
        treat, control = part[part["state"] == "queued"], part[part["state"] == "held_out"]
        row: dict[str, Any] = {
            "step": i + 1, "day": step.day, "template": step.template, "enabled": step.enabled,
            "sent": int((treat["ledger_state"] == "sent").sum()), "queued": len(treat), "held_out": len(control),
            "conversion": float((treat["orders"] > 0).mean()) if len(treat) else None,
            "control_conversion": float((control["orders"] > 0).mean()) if len(control) else None,
            "revenue": float(treat["revenue"].sum()), "control_revenue": float(control["revenue"].sum()),
            "gross_profit": float(treat["gross_profit"].sum()), "control_gross_profit": float(control["gross_profit"].sum()),
            "lift": None, "lift_low": None, "lift_high": None, "verdict": "比較用の人数がまだありません。",
        }
        if len(treat) and len(control):
            cmp = R.compare(treat, control)
            row.update(lift=_num(cmp["conversion_diff"]), lift_low=_num(cmp["conversion_low"]),
                       lift_high=_num(cmp["conversion_high"]), incremental_revenue=_num(cmp["incremental_revenue"]),
                       verdict=cmp["verdict"])
        row["why"] = why_zero(s, step, row, counts.get(i, {}))
        steps.append(row)
    return {"scenario": name, "title": s.title, "enabled": s.enabled, "days": days, "steps": steps}


def _has_costs(store: Store) -> bool:
    """Whether any product or category cost is registered (else gross profit reads 「原価未登録」, not ¥0)."""
    products = store.has_table("products") and bool(store.scalar(
        "SELECT count(*) FROM products WHERE unit_cost IS NOT NULL OR margin_rate IS NOT NULL"))
    return products or (store.has_table("category_margins") and bool(store.scalar("SELECT count(*) FROM category_margins")))


def table(store: Store, ops: sqlite3.Connection, days: int = ATTRIBUTION_DAYS, *, only_active: bool = False) -> pd.DataFrame:
    """Every scenario and step as the screens show them (施策の効果 and the scenario page): one table, Japanese
    columns and numbers (:mod:`crm_core.jp`); ``only_active``: scenarios that are on or have sent."""
    out = []
    costed = _has_costs(store)
    for s in D.list_scenarios(ops):
        res = results(store, ops, s.name, days)
        if only_active and not s.enabled and not any(r["queued"] or r["held_out"] for r in res["steps"]):
            continue
        for r in res["steps"]:
            out.append({
                "シナリオ": s.title, "状態": "オン" if s.enabled else "オフ", "ステップ": f"{r['step']}（{r['day']}日後）",
                "送信": jp.count(r["sent"], "人"), "比較用": jp.count(r["held_out"], "人"),
                "購入率": jp.pct(r["conversion"]), "比較用の購入率": jp.pct(r["control_conversion"]),
                "売上": jp.yen(r["revenue"]), "粗利": jp.yen(r["gross_profit"]) if costed else "原価未登録",
                "上乗せ（95%区間）": "—" if r["lift"] is None else
                f"{jp.points(r['lift'])}（{jp.points(r['lift_low'])}〜{jp.points(r['lift_high'])}）",
                "判定": r["verdict"] if r["lift"] is not None else "—",
                "説明": r["why"],
            })
    return pd.DataFrame(out, columns=["シナリオ", "状態", "ステップ", "送信", "比較用", "購入率", "比較用の購入率", "売上", "粗利",
                                      "上乗せ（95%区間）", "判定", "説明"])


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def timeline(scenarios: list[D.Scenario], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per step for the journey chart: scenario title, day after the trigger, template, channel.

    ``labels``: the templates' Japanese names by key (a key without one is shown as it is).
    """
    labels = labels or {}
    rows = []
    for s in scenarios:
        for i, st in enumerate(s.steps):
            rows.append({"シナリオ": s.title, "きっかけ": s.trigger_label(), "ステップ": i + 1, "日数": st.day, "時刻": st.slot,
                         "テンプレート": labels.get(st.template, st.template), "チャネル": D.CHANNELS[st.channel], "状態": "オン" if s.enabled else "オフ",
                         "クーポン": "あり" if st.coupon else "", "終了条件": D.EXITS[st.exit]})
    return pd.DataFrame(rows)


def journey_chart(df: pd.DataFrame) -> Any:
    """The journeys as steps on a timeline (Altair): one row per scenario, a mark per step at its day after the trigger."""
    import altair as alt

    if df.empty:
        return None
    base = alt.Chart(df).encode(
        x=alt.X("日数:Q", title="きっかけからの日数"),
        y=alt.Y("シナリオ:N", title=None, sort=list(dict.fromkeys(df["シナリオ"])), axis=alt.Axis(labelLimit=260)),
    )
    line = base.mark_line(color="#bbbbbb").encode(detail="シナリオ:N")
    points = base.mark_circle(size=160).encode(
        color=alt.Color("状態:N", scale=alt.Scale(domain=["オン", "オフ"], range=["#2e7d32", "#9e9e9e"]), title="状態"),
        tooltip=["シナリオ", "きっかけ", "ステップ", "日数", "時刻", "テンプレート", "チャネル", "クーポン", "終了条件"],
    )
    labels = base.mark_text(dy=-12, fontSize=11).encode(text="テンプレート:N")
    return (line + points + labels).properties(height=max(120, 40 * df["シナリオ"].nunique()))
