"""シナリオ（ステップ配信）: journeys on a timeline, on/off switches, editing, caps, the dry run, results per step.

Thin: every change calls :mod:`crm_core.scenarios.engine` (validated there, stored as data, audited with
the user); session keys carry the ``scenario_`` prefix.
"""

from __future__ import annotations

import datetime as dt
from contextlib import closing

import pandas as pd
import streamlit as st

from crm_core import clock, opsdb
from crm_core.messaging import templates as T
from crm_core.messaging.preview import customer_labels
from crm_core.scenarios import definitions as SD
from crm_core.scenarios import engine, report
from pages import ui

store = ui.require_data()
user = ui.current_user()
actor = user.email if user is not None else "console"

st.title("🔁 シナリオ（ステップ配信）")
st.write(
    "初回購入のお礼・到着確認・レビュー依頼・2回目購入（F2）のクーポン・買い替え時期・誕生日・休眠復帰などを、"
    "毎日自動で送ります。同じお客様に同じメッセージが二度届くことはありません。各シナリオの10%（初期値）は"
    "比較用に送らず、送った場合との差（効果）を測ります。"
)
flash = st.session_state.pop("scenario_flash", None)
if flash:
    st.success(flash, icon="✅")

with closing(ui.run(opsdb.connect, opsdb.ops_path(store.path))) as ops:
    scenarios = ui.run(SD.list_scenarios, ops)

    # -- journeys ------------------------------------------------------------------------
    st.subheader("シナリオの流れ")
    templates = {t.key: t.label for t in ui.run(T.list_templates, store)}
    ui.altair_chart(report.journey_chart, report.timeline(scenarios, templates))  # built again only when one changed

    # -- caps (one 7-day limit for the whole shop) -----------------------------------------
    caps = ui.run(engine.settings, store, ops)
    st.subheader("送信回数の上限")
    st.caption(f"いま: 1人あたり1日{caps['daily_cap']}通まで（重要度の高いシナリオを優先）・7日間で{caps['frequency_cap']}通まで"
               f"（本番配信・カレンダーの配信も数えます）・配信しない時間帯 {caps['quiet_hours'].replace('-', '時〜')}時")
    with st.form("scenario_caps"):
        c1, c2 = st.columns(2)
        daily = c1.number_input("1人あたり1日に送るシナリオの上限（通）", min_value=1, max_value=SD.MAX_DAILY_CAP,
                                value=int(caps["daily_cap"]), step=1, key="scenario_daily_cap",
                                help="同じ日に複数のシナリオが当てはまるお客様には、重要度の高いもの（数字が小さいもの）から送ります。")
        weekly = c2.number_input("1人あたり7日間の上限（通・ショップ全体）", min_value=1, max_value=50,
                                 value=int(caps["frequency_cap"]), step=1, key="scenario_weekly_cap",
                                 help="本番配信の初期値とカレンダーの「1週間の上限」と同じ設定です。ここで変えると、そちらも変わります。")
        if st.form_submit_button("上限を保存", key="scenario_caps_save"):
            ui.run(engine.set_caps, store, ops, daily_cap=daily, frequency_cap=weekly, actor=actor)
            st.session_state["scenario_flash"] = f"上限を保存しました（1日{int(daily)}通・7日間で{int(weekly)}通）。"
            st.rerun()

    # -- switches and editing --------------------------------------------------------------------
    st.subheader("オン・オフと編集")
    for s in scenarios:
        cols = st.columns([1, 5])
        segment = s.trigger["type"] == "segment"
        include = False
        with cols[1]:
            steps = "・".join(f"{st_.day}日後（{templates.get(st_.template, st_.template)}）" + ("［オフ］" if not st_.enabled else "")
                             for st_ in s.steps)
            st.markdown(f"**{ui.md(s.title)}** — きっかけ: {s.trigger_label()}／{steps}／比較用 {s.holdout:.0%}／重要度 {s.priority}")
            if segment and not s.enabled:
                include = st.checkbox("オンにするとき、いまセグメントにいるお客様にも送る", value=False, key=f"scenario_include_{s.name}",
                                      help="通常は、オンにした後で新しくセグメントに入ったお客様だけに送ります（ステップ配信の一般的な動き）。"
                                           "チェックすると、いま当てはまるお客様全員に、次の実行でまとめて送ります。")
        on = cols[0].toggle("オン", value=s.enabled, key=f"scenario_on_{s.name}", label_visibility="collapsed")
        if on != s.enabled:
            if on:
                ui.run(engine.enable, store, ops, s.name, actor, include_current=include)
                note = ("いまセグメントにいるお客様にも、次の実行で送ります。" if include else
                        "これから新しくセグメントに入ったお客様に送ります。") if segment else ""
                st.session_state["scenario_flash"] = f"「{s.title}」をオンにしました。{note}"
            else:
                ui.run(engine.disable, ops, s.name, actor)
                st.session_state["scenario_flash"] = f"「{s.title}」をオフにしました。"
            st.rerun()
        # The editor runs only while it is open (about 20 inputs per scenario: drawing all six on every rerun
        # cost more than the rest of the page); its state is kept under this key.
        editor = cols[1].expander("編集（重要度・比較用の割合・ステップ）", key=f"scenario_editor_{s.name}", on_change="rerun")
        if not editor.open:
            continue
        with editor, st.form(f"scenario_edit_{s.name}"):
            e1, e2 = st.columns(2)
            priority = e1.number_input("重要度（1〜999、小さいほど優先）", min_value=1, max_value=999, value=int(s.priority), step=1,
                                       key=f"scenario_priority_{s.name}")
            holdout = e2.number_input("比較用に送らない割合（%）", min_value=0, max_value=int(SD.MAX_HOLDOUT * 100),
                                      value=int(round(s.holdout * 100)), step=1, key=f"scenario_holdout_{s.name}",
                                      help="割合を変えても、すでに決まったお客様の組分けは変わりません。")
            new_steps = []
            for i, step in enumerate(s.steps):
                st.markdown(f"**ステップ{i + 1}**")
                a, b, c, d = st.columns(4)
                enabled = a.checkbox("このステップを送る", value=step.enabled, key=f"scenario_{s.name}_{i}_on")
                day = b.number_input("きっかけから何日後", min_value=0, max_value=3650, value=int(step.day), step=1,
                                     key=f"scenario_{s.name}_{i}_day")
                slot = c.text_input("送信時刻（例 10:00）", value=step.slot, key=f"scenario_{s.name}_{i}_slot")
                channel = d.selectbox("チャネル", list(SD.CHANNELS), index=list(SD.CHANNELS).index(step.channel),
                                      format_func=SD.CHANNELS.get, key=f"scenario_{s.name}_{i}_channel")
                keys = list(dict.fromkeys([step.template, *templates]))
                template = st.selectbox("テンプレート", keys, index=0, format_func=lambda k: templates.get(k, f"{k}（見つかりません）"),
                                        key=f"scenario_{s.name}_{i}_template")
                has_coupon = st.checkbox("クーポンを付ける（お客様ごとのコード）", value=bool(step.coupon), key=f"scenario_{s.name}_{i}_coupon")
                spec = step.coupon or {}
                k1, k2, k3, k4 = st.columns(4)
                kinds = list(SD.COUPON_KINDS)
                kind = k1.selectbox("割引の種類", kinds, index=kinds.index(spec.get("kind", "yen")), format_func=SD.COUPON_KINDS.get,
                                    key=f"scenario_{s.name}_{i}_kind")
                value = k2.number_input("割引（円または%）", min_value=0, max_value=1_000_000, value=int(spec.get("value", 500)),
                                        step=1, key=f"scenario_{s.name}_{i}_value")
                minimum = k3.number_input("最低購入金額（円）", min_value=0, max_value=10_000_000,
                                          value=int(spec.get("min_purchase", 0)), step=100, key=f"scenario_{s.name}_{i}_min")
                valid_days = k4.number_input("有効日数（送信日から）", min_value=1, max_value=365,
                                             value=int(spec.get("valid_days", 14)), step=1, key=f"scenario_{s.name}_{i}_days")
                coupon_name = st.text_input("クーポン名", value=spec.get("name", f"{s.title}クーポン"), key=f"scenario_{s.name}_{i}_cname")
                coupon = ({"name": coupon_name, "kind": kind, "value": value, "min_purchase": minimum, "valid_days": int(valid_days)}
                          if has_coupon else None)
                new_steps.append({"enabled": enabled, "day": int(day), "slot": slot.strip(), "channel": channel, "template": template,
                                  "coupon": coupon})
            if st.form_submit_button("変更を保存", type="primary", key=f"scenario_save_{s.name}"):
                ui.run(engine.update, store, ops, s.name, {"priority": int(priority), "holdout": holdout / 100, "steps": new_steps},
                       actor)
                st.session_state["scenario_flash"] = f"「{s.title}」の変更を保存しました。"
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
        ui.dataframe(table, hide_index=True, width="stretch")
        for c in dry["steps"]:
            if c["samples"]:
                with st.expander(f"{c['title']} ステップ{c['step']} の例（{len(c['samples'])}人）"):
                    labels = ui.run(customer_labels, store, [smp["customer_id"] for smp in c["samples"]])
                    for smp in c["samples"]:
                        st.markdown(f"**{ui.md(labels[smp['customer_id']])}**（{'LINE' if smp['channel'] == 'line' else 'メール'}）"
                                    + (f" 件名: {smp['subject']}" if smp["subject"] else ""))
                        st.text(smp["text"][:600])

    # -- results -----------------------------------------------------------------------------
    st.subheader("効果（比較用グループとの差）")
    results = ui.run(report.table, store, ops, only_active=True)
    if results.empty:
        ui.empty_state("まだシナリオで送ったメッセージがありません。")
    else:
        ui.dataframe(results, hide_index=True, width="stretch")
        st.caption(f"購入率は送信時刻から{report.ATTRIBUTION_DAYS}日以内に購入したお客様の割合です。すべてのシナリオの効果は"
                   "「施策の効果」ページにもあります。")
