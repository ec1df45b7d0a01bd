"""販促カレンダー: Rakuten events, own events, holidays, campaign plans, message load and cost, exports."""

from __future__ import annotations

import datetime as dt
import hashlib

import pandas as pd
import streamlit as st

from crm_core import clock, pipeline
from crm_core.analytics import summaries
from crm_core.events import calendar as cal
from crm_core.events import rakuten as sale_events
from crm_core.planning import calendar_views as views
from crm_core.planning import costs, frequency, plan_editor, planner
from pages import ui
from pages.ui import session

store = ui.store()
now = clock.now().replace(second=0, microsecond=0)
today = now.date()

st.title("📅 販促カレンダー")
st.write(
    "楽天スーパーSALE・お買い物マラソン・ポイントデー・祝日と、自社の企画や配信予定を1つのカレンダーで確認し、"
    "セールごとの配信（予告・前日クーポン・開始・最終日）を計画します。配信数とLINEプランの無料枠、"
    "送りすぎ（頻度）もここで確認できます。"
)
flash = st.session_state.pop("cal_flash", None)
if flash:
    st.success(flash, icon="✅")
flash_warning = st.session_state.pop("cal_flash_warning", None)
if flash_warning:
    st.warning(flash_warning, icon="📭")

# -- range ---------------------------------------------------------------------
months = [(today.year + (today.month - 1 + i) // 12, (today.month - 1 + i) % 12 + 1) for i in range(-12, 13)]
c1, c2, c3 = st.columns([2, 2, 3])
first = c1.selectbox("表示する最初の月", months, index=12, format_func=lambda ym: f"{ym[0]}年{ym[1]}月", key="cal_first_month")
span = c2.selectbox("表示する期間", [1, 2, 3, 6, 12], index=2, format_func=lambda n: f"{n}か月", key="cal_span")
start = dt.date(first[0], first[1], 1)
last_ym = divmod(first[0] * 12 + first[1] - 1 + span - 1, 12)
last_ym = (last_ym[0], last_ym[1] + 1)
end = cal.month_bounds(*last_ym)[1]
show_points = c3.toggle("ポイントデーも表示", value=span <= 3, key="cal_show_points",
                        help="ワンダフルデー（毎月1日）と5と0のつく日を●で表示します（6か月・12か月の表示では初めはオフ）。")

# the page's four ranges (shown, hidden, last year, the coming year) come from one reading of the events
ly_start, ly_end = start.replace(year=start.year - 1), cal.month_bounds(last_ym[0] - 1, last_ym[1])[1]
year_ahead = today + dt.timedelta(days=365)
all_events = ui.run(cal.list_events, store, min(ly_start, today), max(end, year_ahead), include_hidden=True)
events = cal.within(all_events, start, end)
hol = cal.holidays(start, end)
limit = frequency.max_per_week(store)
history = ui.run(planner.planned_sends, store, start - planner.WINDOW, end)
report = ui.run(frequency.send_counts, store, history, limit)
counted = frequency.with_counts(history, report)
sends = counted[counted.send_at >= pd.Timestamp(start)].reset_index(drop=True)
shown_events = events if show_points else events[~events.kind.isin(cal.POINT_KINDS)]



@st.cache_data(ttl=600, max_entries=4, show_spinner=False)
def _sales_by_day(db: str, version: tuple) -> list:
    """Sales of every day of the history, stored at refresh (else one scan), kept per data version: a new month is a slice."""
    return summaries.get(ui.store(), "sales_by_day", version[1:])


@st.cache_data(ttl=600, max_entries=8, show_spinner=False)
def _has_shopify_orders(db: str, version: tuple) -> bool:
    """Whether any order came from Shopify (a scan of every order), kept per data version."""
    return costs.has_shopify_orders(ui.store())


def editor_config(store) -> dict:
    """Column widgets of the editable send tables."""
    labels = ui.run(planner.template_labels, store)
    keys = list(labels)
    return {
        "日付": st.column_config.DateColumn("日付", format="YYYY/MM/DD", required=True),
        "時刻": st.column_config.TimeColumn("時刻", format="HH:mm", step=dt.timedelta(minutes=15)),
        "チャネル": st.column_config.SelectboxColumn("チャネル", options=list(planner.CHANNELS.values()), required=True),
        "テンプレート": st.column_config.SelectboxColumn("テンプレート", options=keys, required=True,
                                                     format_func=lambda k: labels.get(k, k)),
    }


def zero_audience(sends: pd.DataFrame) -> None:
    """Why saved sends reach nobody (one note per channel and audience, with a link to the fix)."""
    zero = sends[(sends.audience.fillna(0) == 0) & (sends.problem.fillna("") == "")]
    seen = set()
    for channel, segment in dict.fromkeys(zip(zero.channel, zero.segment)):
        note = ui.explain_reach(store, channel, segment)
        if note.reason and note.reason not in seen:
            seen.add(note.reason)
            n = int(((zero.channel == channel) & (zero.segment.fillna("") == (segment or ""))).sum())
            ui.reach_note(note, f"{planner.CHANNELS[channel]}の配信{n}件は対象者が0人です"
                                f"（{ui.md(planner.segment_text(segment, channel, store))}）。")


# Choices and typing in tabs that are not drawn while another is open: restored before drawing, remembered after
# drawing (the proposal's at its own end: its reruns do not reach the page's) and here, before any tab is drawn: a
# field left by clicking another tab sends its text with that click's run, which does not draw the field again.
KEPT = ("cal_edit_event", "cal_plan_pick", "cal_ics_points")
PROPOSAL_KEPT = ("cal_plan_event", "cal_plan_channel", "cal_plan_segment", "cal_plan_coupon", "cal_presale_days")
ADD_FIELDS = ("cal_add_kind", "cal_add_name", "cal_add_sday", "cal_add_stime", "cal_add_eday", "cal_add_etime", "cal_add_note")
session.remember(*KEPT, *PROPOSAL_KEPT, *ADD_FIELDS, *st.session_state.get("cal_edit_fields", ()),
                 *st.session_state.get("cal_plan_name_key", ()))

# Only the open tab runs (choosing another month redraws the calendar alone, not the proposal, the plan editors,
# costs and frequency tables); the choices and unsaved edits of the others are kept (pages.ui.session).
tab_view, tab_events, tab_plan, tab_cost, tab_freq, tab_export = st.tabs(
    ["カレンダー", "イベント", "キャンペーン計画", "配信数と費用", "配信頻度", "書き出し"],
    key="cal_tab", on_change="rerun",  # the open tab stays open when the page reruns (a saved plan, a changed setting)
)

# -- calendar ------------------------------------------------------------------
with tab_view:
    if tab_view.open is not False:
        drawn = ui.altair_chart(
            views.calendar_chart, shown_events, hol,
            sends.assign(recipients_text=[ui.count(n, "通") for n in sends.recipients]) if not sends.empty else None,
            start, end,
        )
        if not drawn:
            ui.empty_state("この期間にはイベントも配信予定もありません。")
        else:
            st.caption(
                "帯はセール期間（点線の帯は過去の開催パターンからの予測）、●はポイントデー、◆は配信予定（色はチャネル）、"
                "赤い線は祝日、灰色の日は土日祝です（4か月以上の表示では省略）。マウスを重ねると詳細が出ます。"
                "予測の日程はRMSのお知らせで確認し、「イベント」タブで確定にしてください。"
            )
        if not hol.empty:
            st.caption("この期間の祝日（赤い印）: " + "、".join(f"{d.month}月{d.day}日 {n}" for d, n in zip(hol.date, hol.name)))

        st.subheader("昨年の同じ時期の売上とイベント")
        if store.is_empty():
            ui.empty_state("注文データを取り込むと、昨年の同じ時期の日別売上をイベントと重ねて表示します。")
        else:
            daily = cal.days_of(ly_start, ly_end, ui.run(_sales_by_day, str(store.path), ui.data_version()))
            ly_events = cal.within(all_events, ly_start, ly_end)
            if not ui.altair_chart(views.sales_overlay_chart, daily, ly_events):
                ui.empty_state(f"{ui.jdate(ly_start)}〜{ui.jdate(ly_end)}の注文はありません（キャンセルを除く）。")
            else:
                perf = cal.event_sales(daily, ly_events)
                if not perf.empty:
                    ui.dataframe(pd.DataFrame({
                        "イベント": perf.name,
                        "期間": [cal.format_period(s, e) for s, e in zip(perf.starts_at, perf.ends_at)],
                        "日数": perf.days,
                        "売上": [ui.yen(v) for v in perf.revenue],
                        "注文数": [ui.count(v, "件") for v in perf.orders],
                        "1日あたり売上": [ui.yen(v) for v in perf.revenue_per_day],
                        "通常日との比": [ui.times(r) for r in perf.ratio],
                    }), hide_index=True, width="stretch")
                    st.caption("「通常日との比」は、イベント期間の1日あたり売上を、どのセール・企画にも当たらない日の平均と比べたものです"
                               "（1.0倍より大きいほど売れた期間）。キャンセルされた注文は含めていません。")

# -- events --------------------------------------------------------------------


def _reflect_in_model(kind: str) -> str:
    """Re-label customers after a sale window changed; returns a sentence for the flash message.

    The customer model labels each first order with the スーパーSALE or
    お買い物マラソン it fell in, so a corrected sale date must reach it.
    """
    if kind not in sale_events.SALE_KINDS or store.is_empty():
        return ""
    with st.spinner("顧客分析（初回購入のきっかけ・セール時だけ購入するお客様）に反映しています…"):
        ui.run(pipeline.after_settings_change, store)
    return "顧客分析（初回購入のきっかけ・セール時だけ購入するお客様）にも反映しました。"


def _add_defaults() -> dict:
    """The add-event fields' starting values (an event two weeks ahead, three days long)."""
    return {"cal_add_kind": next(iter(cal.USER_KINDS)), "cal_add_name": "", "cal_add_sday": today + dt.timedelta(days=14),
            "cal_add_stime": dt.time(0, 0), "cal_add_eday": today + dt.timedelta(days=17), "cal_add_etime": dt.time(23, 59),
            "cal_add_note": ""}


def _edit_keys(ev: pd.Series) -> dict[str, str]:
    """Widget keys of the edit fields of event ``ev``: its id and a digest of its stored values."""
    stored = "|".join(str(ev[c]) for c in ("name", "starts_at", "ends_at", "status"))
    tag = f"{ev.event_id}_{hashlib.blake2b(stored.encode(), digest_size=6).hexdigest()}"
    return {f: f"cal_edit_{f}_{tag}" for f in ("name", "sday", "stime", "eday", "etime", "status")}


with tab_events:
    if tab_events.open is not False:
        table = views.events_table(shown_events)
        if table.empty:
            ui.empty_state("この期間のイベントはありません。")
        else:
            ui.dataframe(table.drop(columns=["イベントID"]), hide_index=True, width="stretch",
                         height=min(420, 38 + 35 * len(table)))

        st.markdown("#### 自社のイベントを追加")
        # Not an st.form: a form's typing lives in the browser until it is sent, and opening another tab (which does
        # not draw this one) threw it away.  These fields are kept like the other tabs' choices (pages.ui.session).
        start_from = _add_defaults()
        if st.session_state.pop("cal_add_done", False):  # added: the next event starts from an empty form
            session.forget_values(*ADD_FIELDS)
            st.session_state.update(start_from)  # set, not dropped: the browser keeps a field's text otherwise
        for key in ADD_FIELDS:
            session.restore(key)
        with st.container(border=True):
            kinds = list(cal.USER_KINDS)
            f1, f2 = st.columns([1, 2])
            kind = f1.selectbox("種類", kinds, format_func=cal.USER_KINDS.get, key="cal_add_kind")
            name = f2.text_input("イベント名", session.kept("cal_add_name", ""), placeholder="例: 秋の新作発売 / BLACK FRIDAY", key="cal_add_name")
            d1, d2, d3, d4 = st.columns(4)
            s_day = d1.date_input("開始日", value=start_from["cal_add_sday"], format="YYYY/MM/DD", key="cal_add_sday")
            s_time = d2.time_input("開始時刻", value=start_from["cal_add_stime"], key="cal_add_stime")
            e_day = d3.date_input("終了日", value=start_from["cal_add_eday"], format="YYYY/MM/DD", key="cal_add_eday")
            e_time = d4.time_input("終了時刻", value=start_from["cal_add_etime"], key="cal_add_etime")
            note = st.text_input("メモ（任意）", session.kept("cal_add_note", ""), key="cal_add_note")
            session.remember(*ADD_FIELDS)
            if st.button("イベントを追加", type="primary", key="cal_add_submit"):
                ends = dt.datetime.combine(e_day, e_time) + dt.timedelta(seconds=59)
                ui.run(cal.add_event, store, kind, name, dt.datetime.combine(s_day, s_time), ends, note=note)
                st.session_state["cal_flash"] = f"「{name.strip()}」を追加しました。"
                st.session_state["cal_add_done"] = True
                st.rerun()

        st.markdown("#### イベントの確定・編集・削除")
        editable = events[events.kind.isin(cal.BAND_KINDS)] if not show_points else events
        if editable.empty:
            st.caption("この期間に編集できるイベントはありません。")
        else:
            options = list(editable.event_id)
            labels = {r.event_id: f"{r.name}（{cal.format_period(r.starts_at, r.ends_at)}・{cal.STATUS_LABELS.get(r.status, r.status)}）"
                      for r in editable.itertuples(index=False)}
            session.restore("cal_edit_event", options)
            chosen = st.selectbox("イベント", options, format_func=labels.get, key="cal_edit_event")
            ev = editable[editable.event_id == chosen].iloc[0]
            st.caption(f"出典: {ev.source or '—'}" + ("（同梱カレンダーの値を修正済み）" if ev.overridden else ""))
            # The fields are keyed by the event's stored values: after 確定, 戻す or a save they show what is stored
            # (a keyed widget keeps its value when its default changes), and an unsaved edit is kept across tabs.
            fields = _edit_keys(ev)
            st.session_state["cal_edit_fields"] = list(fields.values())
            for key in fields.values():
                session.restore(key)
            with st.container(border=True):
                name = st.text_input("イベント名", value=session.kept(fields["name"], ev["name"]), key=fields["name"])
                d1, d2, d3, d4 = st.columns(4)
                s_day = d1.date_input("開始日", value=ev.starts_at.date(), format="YYYY/MM/DD", key=fields["sday"])
                s_time = d2.time_input("開始時刻", value=ev.starts_at.time(), key=fields["stime"])
                e_day = d3.date_input("終了日", value=ev.ends_at.date(), format="YYYY/MM/DD", key=fields["eday"])
                e_time = d4.time_input("終了時刻", value=ev.ends_at.time().replace(second=0), key=fields["etime"])
                status = st.radio("状態", list(cal.STATUSES), index=list(cal.STATUSES).index(ev.status), horizontal=True,
                                  format_func=cal.STATUS_LABELS.get, key=fields["status"])
                session.remember(*fields.values())
                if st.button("変更を保存", key="cal_edit_submit"):
                    ui.run(cal.update_event, store, chosen, name=name, status=status,
                           starts_at=dt.datetime.combine(s_day, s_time),
                           ends_at=dt.datetime.combine(e_day, e_time) + dt.timedelta(seconds=59))
                    session.forget_values(*fields.values())
                    session.reselect("cal_edit_event")  # its label shows the name, dates and status
                    st.session_state["cal_flash"] = f"「{name.strip()}」を保存しました。" + _reflect_in_model(ev.kind)
                    st.rerun()
            b1, b2, b3 = st.columns(3)
            if b1.button("RMSで確認した日程として確定", disabled=ev.status == "confirmed", key="cal_confirm"):
                ui.run(cal.confirm_event, store, chosen)
                session.forget_values(*fields.values())  # an unsaved edit is dropped (not shown again if the event gets these values back)
                session.reselect("cal_edit_event")  # its label shows the name, dates and status
                st.session_state["cal_flash"] = f"「{ev['name']}」を確定にしました。"
                st.rerun()
            if b2.button("削除" if cal.is_user_event(chosen) else "カレンダーから外す", key="cal_delete"):
                done = ui.run(cal.delete_event, store, chosen)
                session.forget_values(*fields.values())  # an unsaved edit is dropped (not shown again if the event gets these values back)
                st.session_state["cal_flash"] = (f"「{ev['name']}」を" + ("削除しました。" if done == "deleted" else "非表示にしました（元に戻せます）。")
                                                 + _reflect_in_model(ev.kind))
                st.rerun()
            if ev.overridden and b3.button("同梱カレンダーの値に戻す", key="cal_restore"):
                ui.run(cal.restore_event, store, chosen)
                session.forget_values(*fields.values())  # an unsaved edit is dropped (not shown again if the event gets these values back)
                session.reselect("cal_edit_event")  # its label shows the name, dates and status
                st.session_state["cal_flash"] = "同梱カレンダーの値に戻しました。" + _reflect_in_model(ev.kind)
                st.rerun()
        hidden = cal.within(all_events, start, end, include_hidden=True)
        hidden = hidden[hidden.hidden]
        if not hidden.empty:
            with st.expander(f"非表示にしたイベント（{len(hidden)}件）"):
                for r in hidden.itertuples(index=False):
                    h1, h2 = st.columns([4, 1])
                    h1.write(f"{r.name}（{cal.format_period(r.starts_at, r.ends_at)}）")
                    if h2.button("元に戻す", key=f"cal_unhide_{r.event_id}"):
                        ui.run(cal.restore_event, store, r.event_id)
                        st.session_state["cal_flash"] = f"「{r.name}」を元に戻しました。" + _reflect_in_model(r.kind)
                        st.rerun()

# -- campaign plans ------------------------------------------------------------
@ui.fragment
def proposal_form(upcoming: pd.DataFrame) -> None:
    """The proposal for one sale or campaign: choosing the event, channel, segment or coupon, or editing the
    proposed sends, reruns only this part (the calendar, costs and frequency above and below stay as they are);
    saving reruns the whole page, whose saved plans, costs and timeline then include it."""
    store = ui.store()  # this run's (see ui.fragment), not the page's
    now = clock.now().replace(second=0, microsecond=0)
    ev_labels = {r.event_id: f"{r.name}（{cal.format_period(r.starts_at, r.ends_at)}）" for r in upcoming.itertuples(index=False)}
    p1, p2 = st.columns([3, 2])
    future = [i for i, s in enumerate(upcoming.starts_at) if s >= pd.Timestamp(now)]
    seg_options = ui.run(plan_editor.segment_choices, store)
    for key, valid in zip(PROPOSAL_KEPT, (list(ev_labels), list(planner.CHANNELS), [label for label, _ in seg_options], None, None)):
        session.restore(key, valid)
    event_id = p1.selectbox("セール・企画", list(ev_labels), index=future[0] if future else 0, format_func=ev_labels.get,
                            key="cal_plan_event")
    channel = p2.radio("配信チャネル", list(planner.CHANNELS), format_func=planner.CHANNEL_NAMES.get, horizontal=True,
                       key="cal_plan_channel")
    p3, p4 = st.columns([3, 2])
    seg_label = p3.selectbox("配信対象（セグメント）", [label for label, _ in seg_options], key="cal_plan_segment",
                             help="「セグメント」ページで保存したセグメントと、そのプリセットから選べます。保存済みセグメントは、"
                                  "あとで条件を変えると計画の対象者数にも反映されます。")
    segment = dict(seg_options)[seg_label]
    coupon = p4.text_input("クーポン（コードまたは名前）", session.kept("cal_plan_coupon", ""), key="cal_plan_coupon", placeholder="例: SS10OFF")
    event = upcoming[upcoming.event_id == event_id].iloc[0].to_dict()

    signature = (event_id, channel, segment, coupon)
    if st.session_state.get("cal_proposal_sig") != signature:
        proposal = ui.run(planner.propose_phases, event, channel, segment, coupon, store, now)
        st.session_state["cal_proposal_sig"] = signature
        st.session_state["cal_proposal"] = plan_editor.to_editor(proposal)
        rev = st.session_state.get("cal_proposal_rev", 0)
        session.forget(f"cal_proposal_editor_{rev}")  # the former proposal's editor is not drawn again
        st.session_state["cal_proposal_rev"] = rev + 1
    st.markdown("**提案された配信**（日時・テンプレート・クーポンは自由に変更できます。行の追加・削除もできます）")
    edited = session.editor(
        f"cal_proposal_editor_{st.session_state['cal_proposal_rev']}", st.session_state["cal_proposal"],
        hide_index=True, width="stretch", num_rows="dynamic",
        column_order=["配信", "日付", "時刻", "チャネル", "テンプレート", "クーポン"],
        column_config=editor_config(store),
    )
    draft = ui.run(plan_editor.from_editor, edited, segment)
    for w in plan_editor.send_warnings(draft, now):
        st.warning(w, icon="⏰")
    reach = ui.explain_reach(store, channel, segment)
    if not ui.reach_note(reach, f"この計画の対象者数は0人です（{planner.CHANNELS[channel]}で届くお客様がいません）。"):
        st.caption(f"対象者数: {ui.count(reach.reachable, '人')}（{ui.md(planner.segment_text(segment, channel, store))}）")
    st.caption("推奨の時間帯: 平日 12:00〜13:00・18:00〜19:00、土日祝 14:00〜16:00。")
    name_key = f"cal_plan_name_{event_id}_{channel}"
    st.session_state["cal_plan_name_key"] = (name_key,)
    session.restore(name_key)
    plan_name = st.text_input("キャンペーン名", value=session.kept(name_key, f"{event['name']}（{planner.CHANNELS[channel]}）"), key=name_key)
    if st.button("この計画を保存", type="primary", key="cal_plan_save"):
        ui.run(planner.save_plan, store, plan_name, draft, event_id=event_id, channel=channel, segment=segment, coupon=coupon)
        st.session_state["cal_flash"] = f"キャンペーン「{plan_name}」を保存しました。"
        if reach.reachable == 0:
            st.session_state["cal_flash_warning"] = (f"ただし、この計画の対象者数は0人です。配信しても誰にも届きません。{reach.reason}")
        st.rerun()

    with st.container(border=True):
        st.markdown("**LINE友だち限定の先行セール**")
        q1, q2 = st.columns([2, 1])
        days = q1.slider("本セールの何日前から", planner.PRESALE_DAYS[0], planner.PRESALE_DAYS[1], 7, key="cal_presale_days")
        if q2.button("LINE友だち先行セールを作成", key="cal_presale"):
            ui.run(planner.add_line_presale, store, event_id, days, segment, coupon, now)
            st.session_state["cal_flash"] = f"LINE友だち先行セール（{days}日前から）をカレンダーと計画に追加しました。"
            st.rerun()
        st.caption("先行セールの期間をカレンダーに追加し、LINE友だち全員（または選んだセグメント）への案内配信を計画に入れます。")
    session.remember(*PROPOSAL_KEPT, name_key)


with tab_plan:
    if tab_plan.open is not False:
        upcoming = cal.within(all_events, today, year_ahead)
        upcoming = upcoming[upcoming.kind.isin(cal.BAND_KINDS) & (upcoming.ends_at >= pd.Timestamp(now))].reset_index(drop=True)
        if upcoming.empty:
            ui.empty_state("今後1年のセール・企画がありません。「イベント」タブで追加してください。")
        else:
            proposal_form(upcoming)

        st.divider()
        st.subheader("保存した計画")
        if sends.empty:
            ui.empty_state("この期間に保存された配信予定はありません。")
        else:
            for problem in sorted({p for p in sends.problem.fillna("") if p}):
                st.warning(f"対象者を数えられない配信があります（0通として計算しています）: {problem}", icon="⚠️")
            if not report.model_ready:
                st.info("顧客データ（顧客モデル）がまだないため、対象者数は0と表示されます。注文CSVを取り込むと計算されます。", icon="ℹ️")
            else:
                zero_audience(sends)
            plan_view = frequency.plan_table(sends, store)
            ui.dataframe(plan_view, hide_index=True, width="stretch",
                         column_config=ui.count_columns(plan_view, "対象者数", "頻度上限超え", "除外", "配信数"))
            plans = ui.run(planner.list_plans, store)
            plans = plans[plans.plan_id.isin(set(sends.plan_id))]
            session.restore("cal_plan_pick", list(plans.plan_id))
            picked = st.selectbox("編集する計画", list(plans.plan_id), format_func=dict(zip(plans.plan_id, plans.name)).get,
                                  key="cal_plan_pick")
            plan = plans[plans.plan_id == picked].iloc[0]
            st.caption(f"対象: {ui.md(planner.segment_text(plan.segment, plan.channel, store))}")
            stored = plan_editor.to_editor(ui.run(planner.planned_sends, store, plan_id=picked))
            changed = session.editor(
                f"cal_stored_editor_{picked}", stored, hide_index=True, width="stretch", num_rows="dynamic",
                column_order=["配信", "日付", "時刻", "チャネル", "テンプレート", "クーポン"],
                column_config=editor_config(store),
            )
            s1, s2 = st.columns(2)
            if s1.button("この計画の変更を保存", key="cal_plan_update"):
                ui.run(planner.save_plan, store, plan["name"], ui.run(plan_editor.from_editor, changed, plan.segment),
                       event_id=plan.event_id, channel=plan.channel, segment=plan.segment, coupon=plan.coupon,
                       note=plan.note or "", plan_id=picked)
                st.session_state["cal_flash"] = f"キャンペーン「{plan['name']}」の変更を保存しました。"
                st.rerun()
            if s2.button("この計画を削除", key="cal_plan_delete"):
                ui.run(planner.delete_plan, store, picked)
                st.session_state["cal_flash"] = f"キャンペーン「{plan['name']}」を削除しました。"
                st.rerun()

# -- message load and cost -------------------------------------------------------
with tab_cost:
    if tab_cost.open is not False:
        plan_keys = list(costs.LINE_PLANS)
        current = costs.line_plan_setting(store)
        k1, k2, k3 = st.columns(3)
        chosen_plan = k1.selectbox("LINE公式アカウントのプラン", plan_keys, index=plan_keys.index(current),
                                   format_func=lambda k: f"{costs.LINE_PLANS[k].name}（月額¥{costs.LINE_PLANS[k].monthly_fee:,}・"
                                                         f"無料{costs.LINE_PLANS[k].free_messages:,}通）",
                                   key="cal_line_plan")
        if chosen_plan != current:
            ui.run(costs.set_line_plan, store, chosen_plan)
        beyond = k2.number_input("13万通を超える分の単価（円・未確認）", 0.0, 10.0, float(costs.beyond_rate_setting(store)), 0.1,
                                 key="cal_beyond_rate", disabled=chosen_plan != "standard",
                                 help="スタンダードプランで月130,000通を超える分の単価は公表値を確認できていません。契約内容に合わせて入力してください。")
        if chosen_plan == "standard" and abs(beyond - float(costs.beyond_rate_setting(store))) > 1e-9:
            ui.run(costs.set_beyond_rate, store, beyond)
        usd = float(costs.usd_jpy_setting(store))
        if ui.run(costs.uses_shopify_email, store, sends, ui.run(_has_shopify_orders, str(store.path), ui.data_version())):
            usd = k3.number_input("為替レート（1ドル＝円）", 50.0, 500.0, usd, 1.0, key="cal_usd_jpy",
                                  help="Shopify Emailの追加料金（ドル建て）を円で概算するためのレートです。")
            if abs(usd - float(costs.usd_jpy_setting(store))) > 1e-9:
                ui.run(costs.set_usd_jpy, store, usd)

        monthly = costs.monthly_costs(costs.monthly_load(sends, start, end), chosen_plan, beyond, usd)
        if sends.empty:
            ui.empty_state("この期間に配信予定がありません。「キャンペーン計画」タブで計画を保存すると、月ごとの配信数と費用を表示します。")
        elif monthly.empty or int(monthly.messages.sum()) == 0:
            st.info(f"この期間の配信予定は{ui.count(len(sends), '件')}ありますが、どの配信も対象者が0人のため、"
                    "配信数と費用は0です。", icon="ℹ️")
            if report.model_ready:
                zero_audience(sends)
        else:
            summary = costs.cost_summary(monthly, chosen_plan)
            m1, m2, m3 = st.columns(3)
            m1.metric("配信の変動費（税抜）", ui.yen(summary["variable_cost_yen"]),
                      help="表示している期間の合計（LINEの追加メッセージ・R-Mail・Shopify Email）")
            m2.metric("LINEプラン月額（税抜）", ui.yen(summary["line_fee_per_month"]))
            m3.metric("プランの上限で送れない通数", ui.count(summary["blocked"], "通"))
            st.caption(f"この期間の配信予定: {ui.count(len(sends), '件')}（メッセージ {ui.count(int(monthly.messages.sum()), '通')}）")
            for w in summary["warnings"]:
                st.warning(w, icon="⚠️")
            ui.altair_chart(costs.load_chart, monthly, chosen_plan)
            st.caption("LINEの通数は「対象者数 × 配信回数」で数えます（1回の配信で吹き出しを複数送っても1通、ブロック中の友だちは数えません）。"
                       "R-Mailは1通¥1、Shopify Emailは月10,000通まで無料でその後1,000通ごとに$1です。"
                       "コミュニケーションプランとライトプランは無料枠を超えて送ることができません。")
            load_view = costs.load_table(monthly)
            ui.dataframe(load_view, hide_index=True, width="stretch",
                         column_config=ui.count_columns(load_view, "配信回数", "メッセージ数", "無料枠", "超過", "送信不可"))

# -- frequency -----------------------------------------------------------------
with tab_freq:
    if tab_freq.open is not False:
        n = st.number_input("1人のお客様に7日間で送ってよい上限（通）", 1, 50, limit, 1, key="cal_limit",
                            help="すべてのチャネルの配信予定を合わせて数えます。")
        if int(n) != limit:
            ui.run(frequency.set_max_per_week, store, int(n))
            st.rerun()
        if sends.empty:
            ui.empty_state("この期間に配信予定がありません。")
        else:
            st.metric("7日間で上限を超えるお客様", ui.count(report.customers, "人"))
            if report.customers == 0:
                st.success(f"どのお客様も、7日間で{limit}通を超えて受け取ることはありません。", icon="✅")
            else:
                weeks = report.weeks
                ui.dataframe(pd.DataFrame({
                    "週（月曜から）": [cal.format_date(w) for w in weeks.week_start],
                    "上限を超えるお客様": [ui.count(c, "人") for c in weeks.customers],
                    "該当する配信": [ui.count(c, "回") for c in weeks.sends],
                }), hide_index=True, width="stretch")
            view = sends[["send_id", "plan_name", "label", "send_at", "channel_label", "audience", "over_limit", "excluded",
                          "recipients", "exclude_conflicts"]]
            table = pd.DataFrame({
                "キャンペーン": view.plan_name, "配信": view.label,
                "配信日時": [cal.format_datetime(t) for t in view.send_at], "チャネル": view.channel_label,
                "対象者数": view.audience, "上限超え": view.over_limit, "除外": view.excluded, "配信数": view.recipients,
                "上限を超える人を除外": view.exclude_conflicts.astype(bool),
            })
            edited = ui.data_editor(
                table, hide_index=True, width="stretch",
                disabled=[c for c in table.columns if c != "上限を超える人を除外"], key="cal_freq_editor",
                column_config=ui.count_columns(table, "対象者数", "上限超え", "除外", "配信数"),
            )
            changed = [(sid, bool(new)) for sid, old, new in zip(view.send_id, view.exclude_conflicts, edited["上限を超える人を除外"])
                       if bool(old) != bool(new)]
            for sid, flag in changed:
                ui.run(planner.set_exclude_conflicts, store, sid, flag)
            if changed:
                st.rerun()
            st.caption(f"「上限超え」は、その配信を含む直前7日間に{limit}通を超えて受け取るお客様の数です。"
                       "「除外」にチェックすると、その（後の）配信からそのお客様を外します。外したお客様は配信数と費用にも反映されます。")

# -- exports -------------------------------------------------------------------
with tab_export:
    if tab_export.open is not False:
        st.write(f"{ui.jdate(start)}〜{ui.jdate(end)}のイベントと配信予定を書き出します。")
        session.restore("cal_ics_points")
        with_points = st.checkbox("ポイントデーも含める", value=False, key="cal_ics_points")
        ics_events = events if with_points else events[~events.kind.isin(cal.POINT_KINDS)]
        export_sends = sends.assign(segment_text=[planner.segment_text(s, c, store) for s, c in zip(sends.segment, sends.channel)]) \
            if not sends.empty else sends
        # built when the button is pressed (the icalendar library takes ≈ 50 ms; every rerun of the page paid it)
        st.download_button("カレンダー（ICS）をダウンロード", lambda: views.to_ics(ics_events, export_sends),
                           file_name=f"販促カレンダー_{start:%Y%m}-{end:%Y%m}.ics", mime="text/calendar", key="cal_ics_download", on_click="ignore",
                           help="Googleカレンダーや Outlook に読み込めます（時刻は日本時間）。")
        e1, e2 = st.columns(2)
        plan_rows = frequency.plan_table(sends, store)  # read from the store now: the files are written when pressed
        e1.download_button("配信計画（CSV）をダウンロード", lambda: ui.csv_bytes(plan_rows),
                           file_name=f"配信計画_{start:%Y%m}-{end:%Y%m}.csv", mime="text/csv", key="cal_plan_csv", on_click="ignore",
                           disabled=sends.empty)
        e2.download_button("イベント一覧（CSV）をダウンロード", lambda: ui.csv_bytes(views.events_table(ics_events)),
                           file_name=f"イベント一覧_{start:%Y%m}-{end:%Y%m}.csv", mime="text/csv", key="cal_events_csv", on_click="ignore")

session.remember(*KEPT)
