"""配信（本番送信）: new campaign → funnel → previews → cost → lint → test send → approve → send progress.

Thin: every step calls :mod:`crm_core.results.live` (the same functions as the
command line and the worker).  Session keys carry the ``live_`` prefix.
"""

from __future__ import annotations

import datetime as dt
from contextlib import closing
from functools import partial

import pandas as pd
import streamlit as st

from crm_core import access
from crm_core.messaging import audit, choice, sends
from crm_core.messaging import ledger as LG
from crm_core.messaging import templates as T
from crm_core.messaging.preview import customer_label
from crm_core.results import live
from pages import ui

st.title("🚀 配信（本番送信）")
CHANNEL_NAMES = {**T.CHANNEL_LABELS, "line_or_email": choice.LABELS["line_or_email"]}
st.caption("セグメントにLINE・メールで本番の配信をします。送る前に、届く人数・費用・表示義務のチェック・3人分のプレビューを確認し、"
           "テスト送信と承認をしてから送ります。配信停止・ブロック・宛先不明のお客様と、比較用に送らないお客様には送りません。")

store = ui.require_data()


def _secrets() -> dict:
    try:
        return dict(st.secrets)
    except Exception:  # noqa: BLE001 - no secrets.toml is a normal state
        return {}


def _settings() -> sends.ChannelSettings:
    return ui.run(sends.console_settings, _secrets(), ui.real_store().path)  # 送信設定's values too


def _jst(iso: str) -> str:
    """A stored UTC time as the marketer reads it (JST)."""
    return f"{dt.datetime.fromisoformat(iso).astimezone(live.JST):%Y年%m月%d日 %H:%M}"


settings = _settings()
user = ui.current_user()
actor = user.name if user else "console"  # who creates, tests and approves (the audit log and the approval record)
named = user is not None and user.email not in ("local", "password")  # a signed-in person, not the one-person install


def _who(name: str) -> str:
    """「花子 さんが」 for a named person; nothing for the one-person install (「このパソコン さんが」 reads oddly)."""
    return f"{name} さんが" if named or name != actor else ""

with closing(ui.run(live.open_ops, store)) as ops:
    # -- new campaign -------------------------------------------------------------------------
    existing = len(ui.run(live.list_live, ops))
    # the label changes with each new campaign, so the section closes after a campaign is created
    with st.expander("➕ 新しい配信を作る" + (f"（これまでの配信 {existing}件）" if existing else ""), expanded=not existing):
        when = st.radio("送信する時刻", ["now", "later"], horizontal=True, key="live_when",
                        format_func={"now": "承認したらすぐ", "later": "日時を指定（予約）"}.get)
        with st.form("live_new"):
            # one row per pair, so that a phone (one column) reads them in this order too
            c1, c2 = st.columns(2)
            name = c1.text_input("配信名", key="live_name", placeholder="例: 冬のセール告知")
            channel = c2.selectbox("チャネル", ["line", "email", "line_or_email", "rmail"], format_func=CHANNEL_NAMES.get,
                                   key="live_channel", help="「LINE（なければメール）」: " + choice.EXPLANATION)
            c1, c2 = st.columns(2)
            choices = ui.run(T.segment_choices, store)
            segment = c1.selectbox("送る相手（セグメント）", list(choices), format_func=choices.get, key="live_segment")
            templates = {t.key: t.label for t in ui.run(T.list_templates, store)}
            template = c2.selectbox("テンプレート", list(templates), format_func=templates.get, key="live_template")
            c1, c2 = st.columns(2)
            holdout = c1.slider("比較用に送らない割合（%）", 0, 50, 10, key="live_holdout",
                                help="この割合のお客様にはあえて送らず、送った人との購入率の差で効果を測ります（「施策の効果」ページ）。")
            variants = c2.text_input("A/Bパターン（カンマ区切り）", "A", key="live_variants",
                                     help="1つならA/Bテストなし。「A,B」のように2つ以上で、お客様をパターンに振り分けます。")
            if when == "later":
                c1, c2 = st.columns(2)
                day = c1.date_input("送信日", dt.date.today() + dt.timedelta(days=1), key="live_day")
                hour = c2.time_input("送信時刻", dt.time(12, 0), key="live_time")
            c1, c2 = st.columns(2)
            quiet = c1.checkbox("21:00〜08:00は送らない（おすすめ）", True, key="live_quiet",
                                help="この時間にかかる送信は、次の8:00に送ります。")
            cap = c2.number_input("1人あたり7日間の送信回数の上限（0は上限なし）", 0, 100, ui.run(live.shop_frequency_cap, store),
                                  key="live_cap", help="初期値はショップ全体の7日間の上限（シナリオ・カレンダーと共通）です。"
                                                       "上限に達したお客様には送りません。")
            st.caption("💡 「LINE（なければメール）」を選ぶと、" + choice.EXPLANATION)
            created = st.form_submit_button("配信を作成して人数を確認", type="primary")
        if created:
            rule = ui.run(T.segment_rule, store, segment)
            out = ui.run(live.create, store, ops, name=name, channel=channel, rule=rule, template=template,
                         holdout=holdout / 100, variants=[v.strip() for v in variants.split(",") if v.strip()],
                         send_at=dt.datetime.combine(day, hour) if when == "later" else None, quiet_hours="21-08" if quiet else "off",
                         frequency_cap=int(cap), actor=actor)
            st.session_state["live_pick"] = out["campaign_id"]
            st.session_state["live_flash"] = (
                f"「{name.strip()}」を下書きとして作成しました。下で届く人数とプレビューを確認し、テスト送信と承認をしてください。"
                + (" " + out["send_at_note"] if out["send_at_note"] else ""))
            st.rerun()

    if "live_flash" in st.session_state:
        st.success(st.session_state.pop("live_flash"), icon="✅")
    rows = ui.run(live.list_live, ops)
    if not rows:
        ui.empty_state("まだ配信がありません。上の「新しい配信を作る」から作成してください。")
        st.stop()
    labels = {r["campaign_id"]: f"#{r['campaign_id']} {r['name']}（{r['status_label']}）" for r in rows}
    if st.session_state.get("live_pick") not in labels:
        st.session_state["live_pick"] = next(iter(labels))
    cid = st.selectbox("配信", list(labels), format_func=labels.get, key="live_pick")
    state = ui.run(live.status, ops, cid)
    c = LG.get(ops, cid)

    # -- funnel, cost, lint, previews -------------------------------------------------------------
    st.subheader("届く人数")
    ui.dataframe(pd.DataFrame(live.funnel_table(state["funnel"])), hide_index=True, width="content")
    n = int(state["funnel"].get("will_receive", 0))
    used = state["channels"]  # the channels this send goes out on (both for LINE（なければメール）)
    if c["channel"] == "line_or_email":
        st.caption(f"📨 {choice.LABELS['line_or_email']}: " + choice.EXPLANATION)
    cost = ui.run(live.send_cost, store, c["channel"], state["funnel"])
    for part in cost.get("parts", [cost]):
        label = f"（{CHANNEL_NAMES[part['channel']]} {part['messages']:,}通）" if "parts" in cost else ""
        if part["yen"] is None:
            st.caption(f"💴 {label}" + " ".join(part["warnings"]))
        else:
            st.caption(f"💴 この配信の追加費用{label}（税抜）: {ui.yen(part['yen'])}"
                       + (" ・ " + " ".join(part["warnings"]) if part["warnings"] else ""))
    if state["funnel"].get("rakuten_relay"):
        st.warning(live.RAKUTEN_NOTE, icon="📮")
    st.caption(f"送信予定: {dt.datetime.fromisoformat(state['send_at']):%Y年%m月%d日 %H:%M}"
               + ("（21:00〜08:00は送りません）" if c["quiet_hours"] != "off" else ""))

    st.subheader("3人分のプレビュー" + ("（チャネルごと）" if len(used) > 1 else ""))
    for p in ui.run(live.previews, store, ops, cid):
        with st.expander(f"{ui.md(customer_label(p))}・パターン {p['variant']}・{CHANNEL_NAMES[p['channel']]}"):
            r = p["rendered"]
            if p["channel"] == "line":
                for m in r.line_messages:
                    st.text(m.get("text") or m.get("altText") or "（カード）")
            else:
                st.markdown(f"**件名:** {r.subject}")
                st.text(r.text)

    # -- test send ---------------------------------------------------------------------------
    st.subheader("テスト送信")
    if state["tested"]:
        st.success("この内容でテスト送信済みです。", icon="✅")
    elif c["channel"] == "line_or_email":
        st.caption("LINEとメールの両方で送る配信は、それぞれのチャネルでこの内容のテスト送信が必要です。")
    if "live_test_flash" in st.session_state:
        ok, message = st.session_state.pop("live_test_flash")
        (st.success if ok else st.error)(message)
    # LINE（なければメール）: each channel used; a paused send also offers the other (it may have gained recipients since)
    tests = (list(choice.modes_of(c["channel"])) if c["status"] == "paused" else used) if c["channel"] == "line_or_email" else [
        "email" if c["channel"] == "rmail" else c["channel"]]
    for send_channel in tests:
        mixed = c["channel"] == "line_or_email"
        if mixed and send_channel in state["tested_channels"]:
            st.caption(f"✅ {CHANNEL_NAMES[send_channel]}: テスト送信済み")
        recipients = sends.test_recipients(store, settings, send_channel)
        if not recipients:
            st.info(f"{CHANNEL_NAMES[send_channel] + 'の' if mixed else ''}テスト送信先が登録されていません。「送信設定」ページで登録してください。",
                    icon="ℹ️")
            continue
        to = st.selectbox("テスト送信先" + (f"（{CHANNEL_NAMES[send_channel]}）" if mixed else ""),
                          [r["address"] for r in recipients], key=f"live_to_{send_channel}" if mixed else "live_to")
        if st.button("この内容でテスト送信" + (f"（{CHANNEL_NAMES[send_channel]}）" if mixed else ""),
                     key=f"live_test_{send_channel}" if mixed else "live_test"):
            result = ui.run(live.test_send, store, ops, cid, settings=settings, recipient=to, actor=actor,
                            channel=send_channel if mixed else None)
            st.session_state["live_test_flash"] = (result.ok, result.message)
            st.rerun()  # the approval below follows the test send at once

    # -- approve -------------------------------------------------------------------------------
    st.subheader("承認")
    if c["status"] not in ("done", "cancelled"):
        for problem in [p for ch in used for p in live.readiness(ch, settings, _secrets())]:
            st.warning(problem, icon="⚠️")
    if state["approved_by"]:
        st.success(f"{_who(state['approved_by'])}承認しました（{_jst(state['approved_at'])}）。", icon="✅")
    elif c["status"] == "draft":
        own = actor == c["created_by"]
        if own:  # the single user of a small shop approves their own send by typing the count back
            typed = st.number_input(f"確認のため、送信する人数（{n:,}）を入力してください", min_value=0, step=1, value=0, key="live_count",
                                    help="作成した人が自分で承認するときは、送信する人数を数字で入力して確かめます。")
        else:
            typed = None
            st.caption(f"{c['created_by']} さんが作成した配信を、{actor} さん（承認者）として承認します。")
        overage = st.checkbox("LINEの今月の上限を超える分の追加料金を承諾する", key="live_overage") if "line" in used else False
        if st.button("承認する", key="live_approve", type="primary", disabled=not state["tested"]):
            role = "approver" if user is not None and user.role is access.Role.ADMIN else ""
            ui.run(live.approve, ops, cid, by=actor, confirm_count=None if typed is None else int(typed), role=role,
                   accept_overage=overage)
            st.rerun()
        if not state["tested"]:
            st.caption("承認の前に、この内容のテスト送信が必要です。")

    # -- send ------------------------------------------------------------------------------------
    st.subheader("送信")

    @st.fragment(run_every=3 if c["status"] in ("approved", "sending") else None)
    def progress() -> None:
        # refreshes itself every few seconds while the worker sends, so the marketer sees it move
        with closing(ui.run(live.open_ops, store)) as con:
            now_state = ui.run(live.status, con, cid)
            queued_at = ui.run(live.pending_send, con, cid)
        counts = now_state["ledger"]
        done = counts["sent"] + counts["failed"]
        todo = done + counts["queued"] + counts["sending"]
        st.progress(done / todo if todo else 0.0,
                    text=f"{now_state['status_label']} ・ 送信済み {counts['sent']:,}人 ・ 失敗 {counts['failed']:,}人"
                         f" ・ 残り {(counts['queued'] + counts['sending']) if todo else n:,}人")
        if len(now_state["by_channel"]) > 1:
            st.caption(" ・ ".join(f"{CHANNEL_NAMES.get(ch, ch)}: 送信済み {k['sent']:,}人・失敗 {k['failed']:,}人・残り {k['queued'] + k['sending']:,}人"
                                   for ch, k in sorted(now_state["by_channel"].items())))
        status_now = now_state["status"]
        if status_now == "draft":
            st.caption("テスト送信と承認が終わると、送信を予約します。")
        elif status_now in ("approved", "waiting", "sending", "ab_waiting") and queued_at is not None:
            st.info(f"{queued_at:%m月%d日 %H:%M}から、バックグラウンドの処理（ワーカー）が送信します。この画面を閉じても送信は続きます。"
                    "進み具合はこの画面と「ジョブ履歴」で確認できます。", icon="📨")
        elif status_now in ("approved", "waiting", "sending", "ab_waiting"):
            st.warning("送信の予約が見つかりません（ワーカーの処理が途中で止まった可能性があります）。"
                       "「送信を予約し直す」を押すと、続きから送ります（同じ人に二度は送りません）。", icon="⚠️")
        if now_state["note"] and status_now != "done":
            st.info(now_state["note"], icon="ℹ️")
        if status_now == "done":
            st.success(f"送信が完了しました（{counts['sent']:,}人）。比較用に送らなかったお客様との差は、"
                       "「施策の効果」ページで確認できます（注文が集まるまで数日かかります）。", icon="✅")
            st.page_link("pages/results/results.py", label="施策の効果を見る", icon="📈")
        if status_now != c["status"]:
            st.rerun()  # the buttons below follow the new state

    progress()
    b1, b2, b3, b4 = st.columns(4)
    stuck = c["status"] in ("approved", "waiting", "sending") and ui.run(live.pending_send, ops, cid) is None
    if stuck and b1.button("送信を予約し直す", key="live_send",
                           help="承認した配信は自動で送信されます。送信が止まったままのときだけ使います。"):
        # Long work runs in the worker (started by ./run.sh), never in the page: it survives closing the
        # browser and a restart, and sends each recipient once (the ledger).
        when = ui.run(live.schedule_send, ops, cid, actor=actor)
        st.success("送信を予約しました。" + (f"{when.astimezone(live.JST):%m月%d日 %H:%M}から、" if when else "")
                   + "バックグラウンドの処理（ワーカー）が送信します。", icon="📨")
    if b2.button("一時停止", key="live_pause", disabled=c["status"] in ("done", "cancelled", "paused", "draft")):
        ui.run(live.pause, ops, cid, actor)
        st.rerun()
    if b3.button("再開", key="live_resume", disabled=c["status"] != "paused"):
        ui.run(live.resume, ops, cid, actor)
        st.rerun()
    if b4.button("中止", key="live_cancel", disabled=c["status"] in ("done", "cancelled")):
        ui.run(live.cancel, ops, cid, actor)
        st.rerun()
    if c["channel"] == "rmail" or state["funnel"].get("rakuten_relay"):
        rows_r = ui.run(live.rmail_export, ops, cid)
        if rows_r:
            st.download_button("R-Mail用のリストをダウンロード（Shift_JIS）", partial(ui.csv_bytes, pd.DataFrame(rows_r), "cp932"),
                               file_name=f"rmail_{cid}.csv", key="live_rmail", on_click="ignore")

    with st.expander("操作の記録"):
        log = audit.entries(ops, cid)
        ui.dataframe(pd.DataFrame([{"日時": _jst(e["at"]), "操作": e["label"], "実行者": e["actor"]} for e in log]),
                     hide_index=True)
