"""送信設定: LINE and SMTP connection (entered here, kept outside the database), test recipients, the send log."""

from __future__ import annotations

import streamlit as st

from crm_core.messaging import sends
from pages import ui

store = ui.store()
settings = sends.console_settings(st.secrets, store.path)

st.title("⚙️ 送信設定")
st.write(
    "テスト送信に使うLINEとメールの接続先を登録します。トークンやパスワードはデータベースには保存せず、"
    "このパソコン（サーバー）の中の、コンソールを動かしているユーザーだけが読めるファイルに保存します。"
    "保存した値は画面には表示しません（変えるときは新しい値を入力してください）。"
)
st.page_link("pages/shop/shop_info.py", label="メールに表示する送信者の情報は「ショップ情報」で登録します", icon="🏪")


def _status(names: tuple[str, ...]) -> str:
    sources = {settings.sources.get(n) for n in names if n in settings.present}
    if not sources:
        return "— 未設定"
    if sends.SERVER in sources:
        return "✅ 設定済み（サーバーの設定ファイルで指定されています。この画面での変更は使われません）"
    return "✅ 設定済み（この画面で登録）"


def _fixed(name: str) -> bool:
    """True when the server's configuration provides ``name`` (then it wins over this page)."""
    return settings.sources.get(name) == sends.SERVER


def _show_check(key: str) -> None:
    if result := st.session_state.pop(key, None):
        (st.success if result["ok"] else st.error)(result["message"], icon="✅" if result["ok"] else "🚫")


# -- LINE ------------------------------------------------------------------------------------------
st.subheader("LINE")
st.caption("チャネルアクセストークン: " + _status(("LINE_CHANNEL_ACCESS_TOKEN",)))
with st.form("set_line", clear_on_submit=True):
    token = st.text_input(
        "チャネルアクセストークン（長期）", type="password", key="set_line_token", disabled=_fixed("LINE_CHANNEL_ACCESS_TOKEN"),
        placeholder="登録済みです。変えるときだけ入力してください" if settings.line_token else "",
        help="LINE Developersコンソールで、Messaging APIのチャネルの［Messaging API設定］タブにある"
             "［チャネルアクセストークン（長期）］で発行できます。",
    )
    if st.form_submit_button("保存", type="primary"):
        if not token.strip():
            st.warning("チャネルアクセストークンを入力してください。", icon="⚠️")
        else:
            ui.run(sends.save_console_settings, store.path, {"LINE_CHANNEL_ACCESS_TOKEN": token})
            st.session_state["set_flash"] = "LINEのチャネルアクセストークンを保存しました。"
            st.rerun()
c1, c2 = st.columns([1, 1])
if c1.button("LINEの接続を確認", key="set_line_check"):
    with st.spinner("LINEに接続しています…"):
        st.session_state["set_line_result"] = ui.run(sends.check_connection, settings, "line").to_dict()
if settings.sources.get("LINE_CHANNEL_ACCESS_TOKEN") == sends.CONSOLE and c2.button("登録したトークンを削除", key="set_line_forget"):
    ui.run(sends.save_console_settings, store.path, {}, ("LINE_CHANNEL_ACCESS_TOKEN",))
    st.session_state["set_flash"] = "LINEのチャネルアクセストークンを削除しました。"
    st.rerun()
_show_check("set_line_result")
with st.expander("自分のLINEユーザーIDの調べ方（テスト送信先に登録します）"):
    st.markdown(
        "1. [LINE Developersコンソール](https://developers.line.biz/console/)にログインし、LINE公式アカウントの"
        "Messaging APIチャネルを開きます。\n"
        "2. ［チャネル基本設定］タブの下のほうにある **［あなたのユーザーID］** が、あなたのLINEユーザーIDです"
        "（「U」で始まる33文字。例: U8189cf6745fc0d808977bdb0b9f22995）。\n"
        "3. 表示されないときは、LINE DevelopersのアカウントにLINEアカウントを連携してください"
        "（LINEアカウントと連携していないビジネスIDでは表示されません）。\n"
        "4. テスト送信を受け取るには、スマートフォンのLINEでそのLINE公式アカウントを友だち追加しておいてください"
        "（［Messaging API設定］タブのQRコードから追加できます）。\n\n"
        "LINEのユーザーIDは、友だち検索に使う「LINE ID」や表示名とは別のものです。"
    )

# -- e-mail ---------------------------------------------------------------------------------------
st.subheader("メール（SMTPサーバー）")
smtp_names = ("SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_FROM", "SMTP_STARTTLS")
st.caption("SMTPサーバー: " + _status(("SMTP_HOST", "SMTP_FROM")) + " ・ パスワード: " + _status(("SMTP_PASSWORD",)))
with st.form("set_smtp"):
    c1, c2 = st.columns([3, 1])
    host = c1.text_input("SMTPサーバー", settings.smtp_host, key="set_smtp_host", disabled=_fixed("SMTP_HOST"),
                         placeholder="smtp.example.jp", help="メールサービスの「送信（SMTP）サーバー」の名前です。")
    port = c2.text_input("ポート番号", str(settings.smtp_port), key="set_smtp_port", disabled=_fixed("SMTP_PORT"),
                         help="多くのサービスは 587（STARTTLS）です。465 は最初から暗号化（SSL/TLS）する番号です。")
    tls_now = "auto" if settings.smtp_starttls is None else ("true" if settings.smtp_starttls else "false")
    tls = st.selectbox("暗号化", list(sends.TLS_MODES), index=list(sends.TLS_MODES).index(tls_now), format_func=sends.TLS_MODES.get,
                       key="set_smtp_tls", disabled=_fixed("SMTP_STARTTLS"),
                       help="「自動」では、サーバーが対応していればSTARTTLSで暗号化します。ポート465は常にSSL/TLSです。"
                            "暗号化できない外部のサーバーにはパスワードを送りません。")
    c1, c2 = st.columns(2)
    user = c1.text_input("ユーザー名（ログインが必要なとき）", settings.smtp_username, key="set_smtp_user", disabled=_fixed("SMTP_USERNAME"))
    password = c2.text_input("パスワード", type="password", key="set_smtp_password", disabled=_fixed("SMTP_PASSWORD"),
                             placeholder="登録済みです。変えるときだけ入力してください" if settings.smtp_password else "")
    sender = st.text_input("送信元メールアドレス", settings.smtp_from, key="set_smtp_from", disabled=_fixed("SMTP_FROM"),
                           placeholder="shop@example.jp")
    if st.form_submit_button("保存", type="primary"):
        entered = {"SMTP_HOST": host, "SMTP_PORT": port, "SMTP_STARTTLS": tls, "SMTP_USERNAME": user,
                   "SMTP_PASSWORD": password, "SMTP_FROM": sender}
        ui.run(sends.save_console_settings, store.path, {k: v for k, v in entered.items() if not _fixed(k)})
        st.session_state["set_flash"] = "SMTPサーバーの設定を保存しました。"
        st.rerun()
c1, c2 = st.columns([1, 1])
if c1.button("SMTPサーバーの接続を確認", key="set_smtp_check"):
    with st.spinner("SMTPサーバーに接続しています…"):
        st.session_state["set_smtp_result"] = ui.run(sends.check_connection, settings, "email").to_dict()
if any(settings.sources.get(n) == sends.CONSOLE for n in smtp_names) and c2.button("登録したSMTPの設定を削除", key="set_smtp_forget"):
    ui.run(sends.save_console_settings, store.path, {}, smtp_names)
    st.session_state["set_flash"] = "SMTPサーバーの設定を削除しました。"
    st.rerun()
_show_check("set_smtp_result")
if flash := st.session_state.pop("set_flash", None):
    st.success(flash, icon="✅")

# -- test recipients ----------------------------------------------------------------------------
st.subheader("テスト送信先")
st.write("テスト送信は、ここに登録した宛先（ご自身のLINEユーザーIDやメールアドレス）にだけ送られます。お客様に送られることはありません。")
recipients = sends.test_recipients(store, settings)
if recipients:
    ui.dataframe(
        [{"種類": "LINE" if r["channel"] == "line" else "メール", "宛先": r["address"], "メモ": r["label"], "登録元": r["source"]} for r in recipients],
        hide_index=True, width="stretch",
    )
else:
    ui.empty_state("まだテスト送信先がありません。下のフォームから追加してください。")
with st.form("set_add_recipient", clear_on_submit=True):
    c1, c2 = st.columns([3, 2])
    address = c1.text_input("LINEユーザーID（U＋32文字）またはメールアドレス", key="set_address",
                            help="自分のLINEユーザーIDの調べ方は、上の「LINE」の説明を開いてください。")
    label = c2.text_input("メモ（例: 自分のiPhone）", key="set_label")
    if st.form_submit_button("追加", type="primary"):
        channel = ui.run(sends.add_test_recipient, store, address, label)
        st.success(f"{'LINE' if channel == 'line' else 'メール'}のテスト送信先を追加しました。")
        st.rerun()
stored = [r["address"] for r in recipients if r["source"] == "画面"]
if stored:
    c1, c2 = st.columns([3, 1])
    drop = c1.selectbox("削除する宛先", stored, key="set_remove_pick")
    if c2.button("削除", key="set_remove"):
        ui.run(sends.remove_test_recipient, store, drop)
        st.rerun()
if any(r["source"] != "画面" for r in recipients):
    st.caption("登録元が「環境設定」の宛先は、サーバーの設定ファイルで指定されています（この画面からは削除できません）。")

st.subheader("送信履歴")
log = sends.send_log(store)
if log.empty:
    ui.empty_state("まだ送信履歴はありません。")
else:
    log["日時"] = log["日時"].dt.strftime("%Y/%m/%d %H:%M:%S")
    ui.dataframe(log, hide_index=True, width="stretch")
st.caption("送信履歴には、宛先・結果・リクエストIDだけを記録します。アクセストークンやメッセージの本文は記録しません。")
