"""シナリオ（ステップ配信）: journeys on a timeline, on/off switches, the dry run, results per step against the holdout."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from crm_core import clock, opsdb
from crm_core.scenarios import definitions as SD
from crm_core.scenarios import engine, report
from pages import ui

store = ui.require_data()
ops = ui.run(opsdb.connect, opsdb.ops_path(store.path))

st.title("🔁 シナリオ（ステップ配信）")
st.write(
    "初回購入のお礼・到着確認・レビュー依頼・2回目購入（F2）のクーポン・買い替え時期・誕生日・休眠復帰などを、"
    "毎日自動で送ります。同じお客様に同じメッセージが二度届くことはありません。各シナリオの10%（初期値）は"
    "比較用に送らず、送った場合との差（効果）を測ります。"
)
flash = st.session_state.pop("scenario_flash", None)
if flash:
    st.success(flash, icon="✅")

scenarios = ui.run(SD.list_scenarios, ops)

# -- journeys ------------------------------------------------------------------------
st.subheader("シナリオの流れ")
chart = report.journey_chart(report.timeline(scenarios))
if chart is not None:
    st.altair_chart(chart, use_container_width=True)

# -- switches --------------------------------------------------------------------------
st.subheader("オン・オフ")
settings = ui.run(SD.settings, ops)
st.caption(f"1人あたり1日{settings['daily_cap']}通まで（重要度の高いシナリオを優先）・7日間で{settings['frequency_cap']}通まで"
           f"（ほかの配信も含む）・配信しない時間帯 {settings['quiet_hours']}")
for s in scenarios:
    cols = st.columns([1, 5])
    on = cols[0].toggle("オン", value=s.enabled, key=f"scenario_on_{s.name}", label_visibility="collapsed")
    steps = "・".join(f"{st_.day}日後（{st_.template}）" for st_ in s.steps)
    cols[1].markdown(f"**{s.title}** — きっかけ: {s.trigger_label()}／{steps}／比較用 {s.holdout:.0%}／重要度 {s.priority}")
    if on != s.enabled:
        if on:
            ui.run(engine.enable, store, ops, s.name, "console")
            st.session_state["scenario_flash"] = f"「{s.title}」をオンにしました。"
        else:
            ui.run(engine.disable, ops, s.name, "console")
            st.session_state["scenario_flash"] = f"「{s.title}」をオフにしました。"
        st.rerun()

# -- dry run -----------------------------------------------------------------------------
st.subheader("この日だれに何が届くか（送信前の確認）")
day = st.date_input("日付", value=clock.today() + dt.timedelta(days=1), key="scenario_day", format="YYYY/MM/DD")
enabled = [s.name for s in scenarios if s.enabled]
if not enabled:
    ui.empty_state("オンになっているシナリオがありません。上のスイッチでオンにすると、届く予定がここに表示されます。")
else:
    dry = ui.run(engine.dry_run, store, ops, day)
    st.metric(f"{day.year}年{day.month}月{day.day}日に送るメッセージ", f"{dry['total']:,}通")
    table = pd.DataFrame([{"シナリオ": c["title"], "ステップ": c["step"], "きっかけからの日数": c["day"], "送信": c["queued"],
                           "比較用に送らない": c["held_out"], "上限・優先で見送り": c["daily_cap"] + c["capped"],
                           "購入済みで終了": c["exited"], "配信停止・宛先なし": c["suppressed"] + c["global_holdout"]}
                          for c in dry["steps"]])
    st.dataframe(table, hide_index=True, use_container_width=True)
    for c in dry["steps"]:
        if c["samples"]:
            with st.expander(f"{c['title']} ステップ{c['step']} の例（{len(c['samples'])}人）"):
                for smp in c["samples"]:
                    st.markdown(f"**顧客ID {smp['customer_id']}**（{'LINE' if smp['channel'] == 'line' else 'メール'}）"
                                + (f" 件名: {smp['subject']}" if smp["subject"] else ""))
                    st.text(smp["text"][:600])

# -- results -----------------------------------------------------------------------------
st.subheader("効果（比較用グループとの差）")
rows = []
for s in scenarios:
    res = ui.run(report.results, store, ops, s.name)
    for r in res["steps"]:
        if r["queued"] or r["held_out"]:
            rows.append({"シナリオ": s.title, "ステップ": r["step"], "送信": r["sent"], "比較用": r["held_out"],
                         "購入率": ui.pct(r["conversion"]), "比較用の購入率": ui.pct(r["control_conversion"]),
                         "売上": ui.yen(r["revenue"]),
                         "上乗せ（95%区間）": "-" if r["lift"] is None else
                         f"{r['lift']:+.1%}（{r['lift_low']:+.1%}〜{r['lift_high']:+.1%}）",
                         "判定": r["verdict"]})
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, use_container_width=True)
    st.caption(f"購入率は送信時刻から{report.ATTRIBUTION_DAYS}日以内に購入したお客様の割合です。")
else:
    ui.empty_state("まだシナリオで送ったメッセージがありません。")
ops.close()
