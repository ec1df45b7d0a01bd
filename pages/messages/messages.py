"""メッセージ・クーポン: templates, per-customer previews, compliance checks, one-click test sends, coupons."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
from dataclasses import fields, replace

import streamlit as st

from crm_core import clock
from crm_core.messaging import compliance, coupons, sends
from crm_core.messaging import templates as T
from crm_core.messaging.preview import customer_label
from crm_core.messaging.templates import utf16_len
from crm_core.results import attribution as R
from pages import ui
from pages.ui import session

store = ui.store()
settings = sends.console_settings(st.secrets, store.path)

st.title("✉️ メッセージ・クーポン")
st.write(
    "テンプレートを選び、実際のお客様に届く内容をLINE・メールの画面で確認できます。"
    "法令や楽天の規約に触れる表現はチェック結果に表示されます。「テスト送信」で自分のLINEやメールに送って確かめられます。"
)

# Typing kept across tabs and pages (pages.ui.session): restored before a field is drawn, remembered after drawing
# and here, before a tab is drawn (a field left by clicking the other tab sends its text with that click's run,
# which does not draw it again).  The template's fields are keyed by its stored text (see _edit_key).
CAMPAIGN_FIELDS = ("msg_coupon", "msg_utm", "msg_sale_name", "msg_sale_start", "msg_sale_end", "msg_coupon_value",
                   "msg_coupon_expiry", "msg_coupon_code", "msg_coupon_url", "msg_points", "msg_points_expire",
                   "msg_tracking", "msg_review", "msg_image", "msg_encoding")
COUPON_FIELDS = ("cpn_name", "cpn_kind", "cpn_value", "cpn_min", "cpn_from", "cpn_to", "cpn_mode", "cpn_shared",
                 "cpn_segment", "cpn_channel")
EXPANDERS = ("msg_campaign_open", "msg_editor_open")
session.remember(*CAMPAIGN_FIELDS, *COUPON_FIELDS, *EXPANDERS, *st.session_state.get("msg_edit_fields", ()))

tab_message, tab_coupon = st.tabs(["メッセージ", "クーポン"], key="msg_tab", on_change="rerun")  # the open tab survives reruns


def _edit_key(tpl: T.Template, name: str) -> str:
    """The widget key of one field of ``tpl``'s editor: after a save the field shows the stored text (a keyed field
    keeps its text when its default changes, in the browser too), and after 「最初の内容に戻す」 every field of every
    channel does (the reset starts a new generation of keys: a field the reset did not change had the same key)."""
    stored = repr((getattr(tpl, name, None), tpl.card))
    generation = st.session_state.get(f"msg_edit_generation:{tpl.key}", 0)
    return f"msg_edit_{tpl.key}_{generation}_{hashlib.blake2b(stored.encode(), digest_size=6).hexdigest()}_{name}"


def _discard_drafts(template_key: str) -> None:
    """「最初の内容に戻す」: forget the template's unsaved text on every channel, and key its fields afresh."""
    prefix = f"msg_edit_{template_key}_"
    session.forget_values(*[k for k in list(st.session_state) if isinstance(k, str) and k.startswith(prefix)],
                          *[k[len(session.PREFIX):] for k in list(st.session_state)
                            if isinstance(k, str) and k.startswith(session.PREFIX + prefix)])
    counter = f"msg_edit_generation:{template_key}"
    st.session_state[counter] = st.session_state.get(counter, 0) + 1


@st.cache_data(ttl=600, max_entries=32, show_spinner=False)
def _preview_people(db: str, version: tuple, segment: str, rule: object, limit: int) -> list[dict]:
    return T.preview_customers(ui.store(), segment, limit, rule=rule)


def preview_people(segment: str, limit: int = 200) -> list[dict]:
    """:func:`crm_core.messaging.preview.preview_customers` (the top-revenue customers of the segment: a sort of
    every customer of the model), kept per data version and the rule the segment stands for, so changing the
    template, channel or campaign values does not pick them again; an edited saved segment is another key."""
    from crm_core.results import campaigns

    rule = ui.run(T.preview_rule, store, segment)
    version = (ui.data_version(), *ui.run(campaigns.results_version, store))  # a rule may refer to campaigns
    return ui.run(_preview_people, str(store.path), version, segment, rule, limit)


# -- small view helpers (everything interpolated is html.escape'd) -----------------------------
def _e(text: object) -> str:
    return html.escape(str(text or ""), quote=True)


def phone_html(messages: list[dict], account: str) -> str:
    """A LINE-like phone screen: speech bubbles and Flex cards."""
    items = []
    for msg in messages:
        if msg.get("type") == "text":
            items.append(
                '<div style="display:flex;gap:6px;align-items:flex-start;margin:8px 0;">'
                '<div style="width:28px;height:28px;border-radius:50%;background:#06C755;flex:none;"></div>'
                '<div style="background:#fff;border-radius:14px;padding:8px 11px;max-width:78%;font-size:13px;'
                'line-height:1.5;color:#111;white-space:pre-wrap;word-break:break-word;">' + _e(msg.get("text")) + "</div></div>"
            )
        elif msg.get("type") == "flex":
            bubble = msg.get("contents", {})
            card = ['<div style="background:#fff;border-radius:14px;overflow:hidden;margin:8px 0 8px 34px;max-width:78%;">']
            hero = bubble.get("hero")
            if hero:
                card.append(f'<img src="{_e(hero.get("url"))}" alt="" style="width:100%;display:block;aspect-ratio:20/13;object-fit:cover;background:#ddd;">')
            card.append('<div style="padding:10px 12px;">')
            for comp in (bubble.get("body") or {}).get("contents", []):
                weight = "bold" if comp.get("weight") == "bold" else "normal"
                color = _e(comp.get("color") or "#111")
                size = {"lg": "16px", "md": "14px", "sm": "12px"}.get(comp.get("size"), "13px")
                card.append(f'<div style="font-weight:{weight};color:{color};font-size:{size};margin-top:4px;white-space:pre-wrap;">{_e(comp.get("text"))}</div>')
            card.append("</div>")
            for comp in (bubble.get("footer") or {}).get("contents", []):
                action = comp.get("action", {})
                card.append(
                    '<div style="padding:0 12px 12px;"><div style="background:#06C755;color:#fff;text-align:center;border-radius:6px;'
                    f'padding:8px;font-size:13px;" title="{_e(action.get("uri"))}">{_e(action.get("label"))}</div></div>'
                )
            card.append("</div>")
            items.append("".join(card))
    return (
        '<div data-testid="msg-phone" style="width:330px;border:10px solid #222;border-radius:28px;overflow:hidden;'
        'font-family:sans-serif;background:#8CABD9;">'
        f'<div style="background:#273246;color:#fff;padding:10px 14px;font-size:14px;font-weight:bold;">{_e(account)}</div>'
        f'<div style="padding:6px 10px 14px;min-height:320px;">{"".join(items)}</div></div>'
    )


def inbox_html(sender: str, subject: str, preheader: str) -> str:
    """One inbox row: sender, subject and the preheader in grey."""
    return (
        '<div data-testid="msg-inbox" style="border:1px solid #ddd;border-radius:8px;padding:10px 14px;font-family:sans-serif;background:#fff;">'
        f'<div style="font-weight:bold;font-size:14px;color:#111;">{_e(sender)}</div>'
        f'<div style="font-size:14px;color:#111;">{_e(subject)}</div>'
        f'<div style="font-size:13px;color:#777;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;">{_e(preheader)}</div></div>'
    )


def mail_preview_url(mail_html: str) -> str:
    """The rendered mail as a ``data:`` URL for ``st.iframe`` (isolated from the page)."""
    return "data:text/html;charset=utf-8;base64," + base64.b64encode(mail_html.encode("utf-8")).decode("ascii")


def show_findings(findings: list[compliance.Finding]) -> None:
    st.markdown("**チェック結果**")
    if not findings:
        st.success("問題は見つかりませんでした。", icon="✅")
        return
    for f in findings:
        box = st.error if f.severity == compliance.ERROR else st.warning
        box(f"**{compliance.SEVERITY_LABELS[f.severity]}**: {f.message}\n\n対処: {f.fix}", icon="⚠️")


def preview(customer_id: str) -> None:
    """The right-hand side: preview, counters, checks and the test send."""
    campaign_values = {k: v for k, v in values.items() if v}
    if picked:
        coupon = next(c for c in all_coupons if c.coupon_id == picked)
        campaign_values.update(ui.run(coupons.placeholder_values, store, coupon, customer_id))
    campaign = T.Campaign(**campaign_values)
    customer = ui.run(T.customer_fields, store, customer_id)
    rendered = ui.run(T.render_for_customer, store, edited, customer_id, channel, campaign, customer=customer)
    profile = T.shop_profile(store)
    findings = compliance.lint(rendered, profile, encoding=encoding, customer=customer)

    if channel == "line":
        st.html(phone_html(rendered.line_messages, profile.shop_name or "LINE公式アカウント"))
        counts = [f"{i}個目 {utf16_len(m['text']):,} / 5,000文字" for i, m in enumerate(rendered.line_messages, 1) if m["type"] == "text"]
        st.caption(f"吹き出し {len(rendered.line_messages)} / 5個 ・ " + " ・ ".join(counts))
        with st.expander("LINEに送る内容（JSON）"):
            st.json(rendered.line_messages, expanded=False)
    elif channel in ("email", "rmail"):
        sender_name = profile.sender_name or profile.shop_name or "（送信者名未設定）"
        st.html(inbox_html(sender_name, rendered.subject, rendered.preheader))
        st.caption(f"件名 {len(rendered.subject)}文字（スマートフォンでは30文字前後まで表示）・ プリヘッダー {len(rendered.preheader)}文字 ・ 本文 {len(rendered.text):,}文字")
        view_html, view_text = st.tabs(["HTML", "テキスト"])
        with view_html:
            # A data: URL gives the mail its own opaque origin: its HTML (customer data, edited templates)
            # cannot reach the console, unlike an HTML string, which st.iframe embeds same-origin.
            st.iframe(mail_preview_url(rendered.html), height=560)
        with view_text:
            st.text(rendered.text)
        if channel == "rmail":
            st.download_button("R-Mail用HTMLをダウンロード", rendered.html.encode("utf-8"), file_name=f"rmail_{tpl.key}.html",
                               mime="text/html", key="msg_rmail_html")
    else:
        st.text(rendered.text or "（このテンプレートには同梱物の文面がありません）")
        st.caption(f"{len(rendered.text):,}文字")

    show_findings(findings)
    if any(f.rule in ("shop_identity", "email_display") for f in findings):
        st.page_link("pages/shop/shop_info.py", label="ショップ情報を登録する", icon="🏪")

    if channel in sends.SEND_CHANNELS:
        st.divider()
        st.markdown("**テスト送信**")
        recipients = sends.test_recipients(store, settings, channel)
        missing = sends.channel_ready(settings, channel)
        if missing:
            st.warning(missing, icon="⚙️")
            st.page_link("pages/settings/settings.py", label="送信設定へ", icon="⚙️")
        if not recipients:
            st.info("テスト送信先が登録されていません。「送信設定」ページで自分のLINEユーザーIDやメールアドレスを登録してください。", icon="ℹ️")
            st.page_link("pages/settings/settings.py", label="送信設定へ", icon="⚙️")
        else:
            labels = {r["address"]: (f"{r['label']}（{r['address']}）" if r["label"] else r["address"]) for r in recipients}
            to = st.selectbox("送信先（テスト送信先だけ選べます）", list(labels), format_func=labels.get, key=f"msg_to_{channel}")
            if st.button("テスト送信", key="msg_send", type="primary", disabled=bool(missing)):
                with st.spinner("送信しています…"):
                    result = ui.run(sends.test_send, store, settings, channel=channel, recipient=to, template_key=edited,
                                    customer_id=customer_id, campaign=campaign, actor="console", encoding=encoding)
                if result.ok:
                    st.success(f"{result.message} 送信先: {to}" + (f"（リクエストID: {result.request_id}）" if result.request_id else ""), icon="✅")
                else:
                    st.error(result.message, icon="🚫")
            st.caption("テスト送信では、いま表示しているお客様向けの内容（保存前の編集も含む）を送ります。メールの件名には【テスト】が付きます。")


# -- message tab -------------------------------------------------------------------------------
with tab_message:
    if tab_message.open is not False:  # only the open tab runs (the coupon tab counts its audience)
        templates = ui.run(T.list_templates, store)
        by_key = {t.key: t for t in templates}
        left, right = st.columns([5, 6], gap="large")

        with left:
            if flash := st.session_state.pop("msg_flash", None):
                st.success(flash, icon="✅")
            # the page's choices survive a visit to 送信設定 / ショップ情報 and back (issue 11 item 14)
            session.restore("msg_template", by_key)

            def _preview_its_audience(by_key: dict = by_key) -> None:
                """A template chosen: preview the customers it is written for (a thank-you to a first-time buyer,
                not to the best customer of the shop, whom the check would then flag) — unless the marketer
                picked a segment of their own (「すべてのお客様」 included), which stays."""
                chosen = by_key.get(st.session_state.get("msg_template"))
                if chosen is None:  # the browser sent the former label (「（編集済み）」 came or went): no other template
                    return
                if not st.session_state.get("msg_filter_picked"):
                    fit = T.fit_choice(chosen)
                    st.session_state["msg_filter"] = fit[0] if fit else "all"

            def _segment_picked() -> None:
                st.session_state["msg_filter_picked"] = not str(st.session_state.get("msg_filter")).startswith(T.FIT_PREFIX)

            key = st.selectbox("テンプレート", list(by_key), format_func=lambda k: by_key[k].label + ("（編集済み）" if by_key[k].edited else ""),
                               key="msg_template", on_change=_preview_its_audience)
            tpl = by_key[key]
            if tpl.description:
                st.caption(tpl.description)
            session.restore("msg_channel", T.CHANNEL_LABELS)
            channel = st.radio("チャネル", list(T.CHANNEL_LABELS), format_func=T.CHANNEL_LABELS.get, horizontal=True, key="msg_channel")
            fit = T.fit_choice(tpl)
            choices = ({fit[0]: fit[1]} if fit else {}) | ui.run(T.segment_choices, store)  # its own audience first
            session.restore("msg_filter", choices)
            if st.session_state.get("msg_filter") not in choices:  # another template's audience: this one's, or everyone
                st.session_state["msg_filter"] = next(iter(choices))
            segment = st.selectbox("プレビューするお客様（セグメント）", list(choices), format_func=choices.get, key="msg_filter",
                                   on_change=_segment_picked,
                                   help="「セグメント」ページで保存したセグメントも選べます。購入金額の多い順に表示します。")
            people = preview_people(segment)
            if not people and fit and segment == fit[0]:  # e.g. no birthdays in the shop's data: show everyone, and say so
                people = preview_people("all")
                if people:
                    st.caption(f"「{tpl.fit_label or 'このテンプレートの対象'}」に当てはまるお客様がいないため、すべてのお客様で表示しています。")
            customer_id = None
            if people:
                ids = [p["customer_id"] for p in people]
                session.restore("msg_customer", ids)
                names = {p["customer_id"]: customer_label(p) for p in people}
                # another segment (chosen, or a template's own audience) starts at its first customer
                if st.session_state.get("msg_customer") not in ids or st.session_state.get("msg_customer_of") != segment:
                    st.session_state["msg_customer"] = ids[0]
                st.session_state["msg_customer_of"] = segment

                def _step(delta: int, ids: list[str] = ids) -> None:
                    i = ids.index(st.session_state["msg_customer"])
                    st.session_state["msg_customer"] = ids[(i + delta) % len(ids)]

                customer_id = st.selectbox("お客様", ids, format_func=names.get, key="msg_customer")
                b1, b2, b3 = st.columns([1, 1, 2])
                b1.button("◀ 前", key="msg_prev", on_click=_step, args=(-1,), width="stretch")
                b2.button("次 ▶", key="msg_next", on_click=_step, args=(1,), width="stretch")
                b3.caption(f"{ids.index(customer_id) + 1} / {len(ids)}人目")
            else:
                ui.empty_state("この条件に当てはまるお客様がいません（または顧客モデルがまだありません）。")
            session.remember("msg_template", "msg_channel", "msg_filter", "msg_customer")

            # keyed and tracked: an open part stays open after a save and when the marketer comes back
            session.restore("msg_campaign_open")
            session.restore("msg_editor_open")
            with st.expander("キャンペーンの設定（クーポン・セール・リンク）", expanded=False, key="msg_campaign_open", on_change="rerun"):
                all_coupons = ui.run(coupons.list_coupons, store)
                coupon_labels = {c.coupon_id: f"{c.name}（{c.discount_label()}）" for c in all_coupons}
                coupon_options = ["", *coupon_labels]
                was = session.kept("msg_coupon", "")
                picked = st.selectbox("クーポン", coupon_options, format_func=lambda c: coupon_labels.get(c, "（使わない・手入力）"), key="msg_coupon",
                                      index=coupon_options.index(was) if was in coupon_options else 0)
                values: dict[str, str] = {}
                c1, c2 = st.columns(2)
                values["utm_campaign"] = c1.text_input("キャンペーン名（utm_campaign）", key="msg_utm", placeholder=tpl.key,
                                                      value=session.kept("msg_utm", ""))
                values["sale_name"] = c2.text_input("セール名", key="msg_sale_name", placeholder="楽天スーパーSALE", value=session.kept("msg_sale_name", ""))
                values["sale_start"] = c1.text_input("セール開始", key="msg_sale_start", placeholder="12月4日 20:00", value=session.kept("msg_sale_start", ""))
                values["sale_end"] = c2.text_input("セール終了", key="msg_sale_end", placeholder="12月11日 01:59", value=session.kept("msg_sale_end", ""))
                if not picked:
                    values["coupon_value"] = c1.text_input("クーポンの割引", key="msg_coupon_value", placeholder="10%OFF", value=session.kept("msg_coupon_value", ""))
                    values["coupon_expiry"] = c2.text_input("クーポンの有効期限", key="msg_coupon_expiry", placeholder="12月31日 23:59まで", value=session.kept("msg_coupon_expiry", ""))
                    values["coupon_code"] = c1.text_input("クーポンコード", key="msg_coupon_code", value=session.kept("msg_coupon_code", ""))
                values["coupon_url"] = c2.text_input("クーポン取得URL", key="msg_coupon_url", placeholder="https://coupon.rakuten.co.jp/...", value=session.kept("msg_coupon_url", ""))
                values["points"] = c1.text_input("失効予定ポイント", key="msg_points", value=session.kept("msg_points", ""))
                values["points_expire_on"] = c2.text_input("ポイントの有効期限", key="msg_points_expire", value=session.kept("msg_points_expire", ""))
                values["tracking_url"] = c1.text_input("配送状況の確認URL", key="msg_tracking", value=session.kept("msg_tracking", ""))
                values["review_url"] = c2.text_input("レビュー投稿URL", key="msg_review", value=session.kept("msg_review", ""))
                values["image_url"] = st.text_input("カード画像のURL（https）", key="msg_image", value=session.kept("msg_image", ""))
                encodings = list(compliance.EMAIL_ENCODINGS)
                encoding = st.radio("メールの文字コード", encodings, horizontal=True, key="msg_encoding",
                                    index=encodings.index(session.kept("msg_encoding", encodings[0])),
                                    format_func=lambda e: {"utf-8": "UTF-8（推奨）", "iso-2022-jp": "ISO-2022-JP（古い携帯向け）"}[e])
                session.remember(*CAMPAIGN_FIELDS)

            with st.expander("テンプレートを編集", expanded=False, key="msg_editor_open", on_change="rerun"):
                st.caption("差し込み項目は {{ name }} のように書きます。LINEは「---」だけの行で吹き出しを分けられます。")
                parts = {
                    "line": [("line_text", "LINE本文")],
                    "email": [("email_subject", "件名"), ("email_preheader", "プリヘッダー（件名の後に表示される一文）"),
                              ("email_body", "本文"), ("email_footer", "フッター（送信者情報・配信停止）")],
                    "rmail": [("email_subject", "件名"), ("email_body", "本文"), ("rmail_footer", "フッター")],
                    "insert": [("insert_text", "同梱物の文面")],
                }[channel]
                edits: dict[str, str] = {}
                keys = {name: _edit_key(tpl, name) for name, _ in parts}
                if channel == "line" and tpl.card is not None:
                    keys |= {f"card_{f.name}": _edit_key(tpl, f"card_{f.name}") for f in fields(T.Card)}
                st.session_state["msg_edit_fields"] = list(keys.values())
                for name, label in parts:
                    edits[name] = st.text_area(label, session.kept(keys[name], getattr(tpl, name)), key=keys[name],
                                               height=68 if name in ("email_subject", "email_preheader") else 220)
                card_edits = {}
                if channel == "line" and tpl.card is not None:
                    st.markdown("**カード**")
                    for f in fields(T.Card):
                        card_edits[f.name] = st.text_input(f"カード: {f.name}", session.kept(keys[f"card_{f.name}"], getattr(tpl.card, f.name)),
                                                                key=keys[f"card_{f.name}"])
                session.remember(*keys.values(), *EXPANDERS)
                edited = replace(tpl, **edits, card=replace(tpl.card, **card_edits) if tpl.card and card_edits else tpl.card)
                if st.button("テンプレートを保存", key="msg_save_template", type="primary"):
                    ui.run(T.save_template, store, edited)
                    session.reselect("msg_template")  # 「（編集済み）」 comes or goes in its label
                    session.forget_values(*keys.values())
                    st.session_state["msg_flash"] = "テンプレートを保存しました。"
                    st.rerun()
                if tpl.edited and st.button("最初の内容に戻す", key="msg_reset_template"):
                    ui.run(T.reset_template, store, tpl.key)
                    session.reselect("msg_template")  # 「（編集済み）」 comes or goes in its label
                    _discard_drafts(tpl.key)
                    st.rerun()
                with st.popover("使える差し込み項目"):
                    ui.dataframe(
                        [{"項目": "{{ " + p.key + " }}", "内容": p.label, "例": p.example, "空のとき": p.fallback or "（空欄）"} for p in T.PLACEHOLDERS.values()],
                        hide_index=True,
                    )

        with right:
            if customer_id is None:
                st.caption("お客様を選ぶと、ここにプレビューが表示されます。")
            else:
                preview(customer_id)


# -- coupon tab ------------------------------------------------------------------------------------
def new_coupon_form() -> None:
    """The new coupon's fields: what was typed is kept when the marketer looks at the other tab or page (it was a
    form, whose typing the browser dropped).  Not a fragment: a name typed into a fragment and left by a click on a
    page in the menu came back empty in the browser (≈ 180 ms a change for the whole tab at 2.3 M customers)."""
    for field_key in COUPON_FIELDS:
        session.restore(field_key)
    with st.container(border=True):
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("クーポン名", session.kept("cpn_name", ""), key="cpn_name", placeholder="誕生日クーポン")
        kind = c2.selectbox("割引の種類", list(coupons.KINDS), format_func=coupons.KINDS.get, key="cpn_kind")
        value = c3.number_input("割引（%または円。送料無料は0）", min_value=0.0, value=session.kept("cpn_value", 10.0), step=1.0, key="cpn_value")
        min_purchase = c1.number_input("利用条件（最低購入金額・円）", min_value=0, value=session.kept("cpn_min", 0), step=500, key="cpn_min")
        today = clock.today()
        valid_from = c2.date_input("開始日", today, key="cpn_from")
        valid_to = c3.date_input("終了日（23:59まで）", today + dt.timedelta(days=30), key="cpn_to")
        mode = c1.radio("コード", list(coupons.CODE_MODES), format_func=coupons.CODE_MODES.get, key="cpn_mode", horizontal=True)
        shared_code = c2.text_input("共通コード（全員共通のとき）", session.kept("cpn_shared", ""), key="cpn_shared")
        choices = ui.run(T.segment_choices, store)
        target = c3.selectbox("対象（セグメント）", list(choices), format_func=choices.get, key="cpn_segment")
        channel_for = c1.selectbox("配信チャネル", ["line", "email", "rmail"], format_func=T.CHANNEL_LABELS.get, key="cpn_channel")
        session.remember(*COUPON_FIELDS)
        if st.button("クーポンを作成", type="primary", key="cpn_create"):
            new = coupons.Coupon(
                name=name, kind=kind, value=value, min_purchase=min_purchase,
                valid_from=dt.datetime.combine(valid_from, dt.time(0, 0)), valid_to=dt.datetime.combine(valid_to, dt.time(23, 59)),
                code_mode=mode, shared_code=shared_code, segment=target, channel=channel_for,
            )
            ui.run(coupons.create_coupon, store, new)
            st.session_state["cpn_flash"] = f"クーポン「{new.name}」を作成しました。"
            st.rerun()  # the whole page: the list below shows the new coupon


with tab_coupon:
    if tab_coupon.open is not False:  # only the open tab runs
        st.subheader("新しいクーポン")
        if flash := st.session_state.pop("cpn_flash", None):
            st.success(flash, icon="✅")
        new_coupon_form()
        choices = ui.run(T.segment_choices, store)

        all_coupons = ui.run(coupons.list_coupons, store)
        st.subheader("クーポン一覧")
        if not all_coupons:
            ui.empty_state("まだクーポンはありません。上のフォームから作成してください。")
            st.stop()
        ui.dataframe(
            [{"クーポン名": c.name, "割引": c.discount_label(), "利用条件": c.condition_label() or "なし", "有効期限": c.expiry_label(),
              "コード": c.shared_code if c.code_mode == "shared" else "お客様ごと", "対象": choices.get(c.segment or "all", "（削除されたセグメント）"),
              "チャネル": T.CHANNEL_LABELS.get(c.channel, c.channel)} for c in all_coupons],
            hide_index=True, width="stretch",
        )
        by_id = {c.coupon_id: c for c in all_coupons}
        cid = st.selectbox("クーポンを選ぶ", list(by_id), format_func=lambda c: by_id[c].name, key="cpn_pick")
        coupon = by_id[cid]
        target_problem = ui.run(coupons.target_problem, store, coupon)
        if target_problem:
            st.error(target_problem, icon="🚫")
            audience = 0
        else:
            audience = ui.run(coupons.target_size, store, coupon)  # a count: the ids are fetched only when issuing

        st.markdown("**費用の見積もり**")
        shop_gp = ui.shop_profit(store)
        measured = ui.run(R.coupon_incremental_share, store)
        e1, e2, e3, e4 = st.columns(4)
        aov = e1.number_input("平均購入単価（円）", min_value=0, value=int(ui.run(coupons.average_order_value, store)), step=100, key="cpn_aov")
        margin_default = round(shop_gp["margin_rate"] * 100) if shop_gp["margin_rate"] is not None else 30
        margin = e2.number_input("粗利率（%）", min_value=0, max_value=100, value=min(max(margin_default, 0), 100), key="cpn_margin",
                                 help=(f"登録した原価から計算したお店の粗利率です（原価が分かる売上 {ui.pct(shop_gp['coverage'])}）。"
                                       if shop_gp["margin_rate"] is not None else "商品の原価が未登録のため、仮の値です。「データ取込」で原価を登録すると実績の粗利率になります。"))
        rate = e3.number_input("想定利用率（%）", min_value=0.0, max_value=100.0, value=5.0, step=0.5, key="cpn_rate",
                               help="過去に発行したお客様ごとのコードの利用実績が十分にあるときは、その実績を使います。")
        share_default = round(measured["share"] * 100) if measured else 20
        share = e4.number_input("利用のうち上乗せになる割合（%）", min_value=0, max_value=100, value=share_default, key="cpn_incremental",
                                help=(f"過去のクーポン施策{measured['campaigns']}件で、送らないグループと比べて増えた注文の割合（実績）です。"
                                      if measured else "クーポンがなくても買っていたお客様の利用は、利益を増やしません。送らないグループ付きのクーポン施策の"
                                      "実績ができると、ここに実績が入ります（それまでは仮の値20%）。"))
        est = ui.run(coupons.estimate_cost, store, coupon, audience, average_order_value=aov, margin=margin / 100,
                     redemption_rate=rate / 100, incremental_share=share / 100)
        m = st.columns(5)
        m[0].metric("対象のお客様", ui.count(est.recipients, "人"))
        m[1].metric("想定利用数", ui.count(round(est.redemptions), "件"), help=f"利用率 {ui.pct(est.redemption_rate)}（{est.rate_source}）")
        m[2].metric("割引コスト", ui.yen(est.discount_cost), help="値引きは、利用されたすべての注文にかかります。")
        m[3].metric("上乗せ注文の粗利", ui.yen(est.gross_profit),
                    help=f"上乗せになる注文 約{est.incremental_orders:,.1f}件 × 注文単価 × 粗利率。クーポンがなくても買っていた注文は数えません。")
        m[4].metric("差し引き", ui.yen(est.net))

        if coupon.code_mode == "unique":
            st.markdown("**お客様ごとのコード**")
            if st.button(f"対象のお客様{audience:,}人にコードを発行", key="cpn_issue", disabled=bool(target_problem)):
                issued = ui.run(coupons.issue_for_target, store, cid)
                st.success(f"{issued:,}件のコードを発行しました（発行済みのお客様には新しく発行しません）。")
            issued_n = ui.run(coupons.issued_count, store, cid)
            if not ui.allowed("coupons.export"):
                st.caption(f"発行済み {issued_n:,}件。コード一覧（氏名・メールアドレス付き）のダウンロードは、担当以上の役割の方ができます。")
            elif issued_n:
                st.caption(f"発行済み {issued_n:,}件。RMSやShopifyへの登録用にダウンロードできます（Excelで開けるUTF-8 BOM付きCSV）。")
                ready = st.session_state.get("cpn_csv")
                if ready is not None and ready[0] == (cid, issued_n):  # the file is made on request, not on every rerun
                    if st.download_button("コード一覧をダウンロード（CSV）", ready[1], file_name=f"クーポンコード_{coupon.name}.csv",
                                          mime="text/csv", key="cpn_download"):
                        ui.audit("coupons.export", f"export_codes {cid}")  # the download, not each look at the page
                elif st.button(f"コード一覧（{issued_n:,}件）のファイルを用意", key="cpn_prepare"):
                    st.session_state["cpn_csv"] = ((cid, issued_n), ui.run(coupons.export_codes_bytes, store, cid))
                    st.rerun()
            else:
                st.caption("まだコードを発行していません。")
