"""Scenario results: per scenario and step the sent count, conversion, revenue and lift against its holdout.

A step's treatment group is every occurrence handed to the ledger (``queued``,
intent to treat), its control group every occurrence held out at that step.
A customer converts with a counted order in the ``days`` after the step's send
slot; the lift and its 95% interval come from :func:`crm_core.results.attribution.compare`.
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from typing import Any

import pandas as pd

from crm_core.db import Store
from crm_core.results import attribution as R
from crm_core.scenarios import definitions as D

ATTRIBUTION_DAYS = 14


def _outcomes(store: Store, occ: pd.DataFrame, days: int) -> pd.DataFrame:
    if occ.empty:
        return occ.assign(orders=[], revenue=[])
    df = store.df(
        "WITH occ AS (SELECT unnest($c) AS customer_id, unnest($s) AS start, unnest($i) AS idx)"
        " SELECT occ.idx, count(o.order_id) AS orders, coalesce(sum(o.total_amount), 0) AS revenue FROM occ"
        " LEFT JOIN orders o ON o.customer_id = occ.customer_id AND NOT coalesce(o.cancelled, FALSE)"
        " AND o.ordered_at >= occ.start AND o.ordered_at < occ.start + to_days(CAST($days AS INTEGER))"
        " GROUP BY occ.idx ORDER BY occ.idx",
        {"c": occ["customer_id"].tolist(), "s": occ["start"].tolist(), "i": list(range(len(occ))), "days": int(days)})
    out = occ.reset_index(drop=True).copy()
    out["orders"] = df["orders"].to_numpy()
    out["revenue"] = df["revenue"].astype(float).to_numpy()
    return out


def results(store: Store, ops: sqlite3.Connection, name: str, days: int = ATTRIBUTION_DAYS) -> dict[str, Any]:
    """Per step: ``sent``, ``held_out``, conversion and revenue per customer of both groups, lift with its interval."""
    s = D.get(ops, name)
    rows = [dict(r) for r in ops.execute(
        "SELECT o.step, o.customer_id, o.day, o.state, l.state AS ledger_state FROM scenario_occurrences o"
        " LEFT JOIN send_ledger l ON l.campaign_id = o.campaign_id AND l.customer_id = o.customer_id AND l.channel = o.channel"
        " WHERE o.scenario = ? AND o.state IN ('queued', 'held_out')", [name])]
    occ = pd.DataFrame(rows, columns=["step", "customer_id", "day", "state", "ledger_state"])
    if not occ.empty:
        slots = {i: st.slot for i, st in enumerate(s.steps)}
        occ["start"] = [dt.datetime.combine(dt.date.fromisoformat(d), dt.time.fromisoformat(slots.get(i, "00:00")))
                        for i, d in zip(occ["step"], occ["day"])]
    else:
        occ["start"] = []
    occ = _outcomes(store, occ, days)
    steps = []
    for i, step in enumerate(s.steps):
        part = occ[occ["step"] == i]
        treat, control = part[part["state"] == "queued"], part[part["state"] == "held_out"]
        row: dict[str, Any] = {
            "step": i + 1, "day": step.day, "template": step.template,
            "sent": int((treat["ledger_state"] == "sent").sum()), "queued": len(treat), "held_out": len(control),
            "conversion": float((treat["orders"] > 0).mean()) if len(treat) else None,
            "control_conversion": float((control["orders"] > 0).mean()) if len(control) else None,
            "revenue": float(treat["revenue"].sum()), "control_revenue": float(control["revenue"].sum()),
            "lift": None, "lift_low": None, "lift_high": None, "verdict": "比較用の人数がまだありません。",
        }
        if len(treat) and len(control):
            cmp = R.compare(treat, control)
            row.update(lift=_num(cmp["conversion_diff"]), lift_low=_num(cmp["conversion_low"]),
                       lift_high=_num(cmp["conversion_high"]), incremental_revenue=_num(cmp["incremental_revenue"]),
                       verdict=cmp["verdict"])
        steps.append(row)
    return {"scenario": name, "title": s.title, "days": days, "steps": steps}


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def timeline(scenarios: list[D.Scenario]) -> pd.DataFrame:
    """One row per step for the journey chart: scenario title, day after the trigger, template, channel."""
    rows = []
    for s in scenarios:
        for i, st in enumerate(s.steps):
            rows.append({"シナリオ": s.title, "きっかけ": s.trigger_label(), "ステップ": i + 1, "日数": st.day, "時刻": st.slot,
                         "テンプレート": st.template, "チャネル": D.CHANNELS[st.channel], "状態": "オン" if s.enabled else "オフ",
                         "クーポン": "あり" if st.coupon else "", "終了条件": D.EXITS[st.exit]})
    return pd.DataFrame(rows)


def journey_chart(df: pd.DataFrame) -> Any:
    """The journeys as steps on a timeline (Altair): one row per scenario, a mark per step at its day after the trigger."""
    import altair as alt

    if df.empty:
        return None
    base = alt.Chart(df).encode(
        x=alt.X("日数:Q", title="きっかけからの日数"),
        y=alt.Y("シナリオ:N", title=None, sort=list(dict.fromkeys(df["シナリオ"]))),
    )
    line = base.mark_line(color="#bbbbbb").encode(detail="シナリオ:N")
    points = base.mark_circle(size=160).encode(
        color=alt.Color("状態:N", scale=alt.Scale(domain=["オン", "オフ"], range=["#2e7d32", "#9e9e9e"]), title="状態"),
        tooltip=["シナリオ", "きっかけ", "ステップ", "日数", "時刻", "テンプレート", "チャネル", "クーポン", "終了条件"],
    )
    labels = base.mark_text(dy=-12, fontSize=11).encode(text="テンプレート:N")
    return (line + points + labels).properties(height=max(120, 40 * df["シナリオ"].nunique()))
