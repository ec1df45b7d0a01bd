"""送信設定: which channel settings are configured, test recipients, the shop's display items, the send log."""

from __future__ import annotations

from dataclasses import asdict

import streamlit as st

from crm_core.messaging import sends
from crm_core.messaging import templates as T
from pages import ui

store = ui.store()
settings = sends.load_settings(st.secrets)

st.title("⚙️ 送信設定")

st.subheader("接続設定")
st.write(
    "LINEのチャネルアクセストークンやSMTPサーバーのパスワードは、`.streamlit/secrets.toml` か環境変数で設定します。"
    "安全のため、データベースには保存せず、この画面にも値は表示しません。"
)
st.dataframe(
    [{"設定名": s["name"], "内容": s["label"], "状態": "✅ 設定済み" if s["configured"] else "— 未設定"} for s in sends.settings_status(settings)],
    hide_index=True, width="stretch",
)
for channel, label in (("line", "LINE"), ("email", "メール")):
    missing = sends.channel_ready(settings, channel)
    if missing:
        st.caption(f"{label}: {missing}")
    else:
        st.caption(f"{label}: テスト送信できます。")

st.subheader("テスト送信先")
st.write("テスト送信は、ここに登録した宛先（ご自身のLINEユーザーIDやメールアドレス）にだけ送られます。お客様に送られることはありません。")
recipients = sends.test_recipients(store, settings)
if recipients:
    st.dataframe(
        [{"種類": "LINE" if r["channel"] == "line" else "メール", "宛先": r["address"], "メモ": r["label"], "登録元": r["source"]} for r in recipients],
        hide_index=True, width="stretch",
    )
else:
    ui.empty_state("まだテスト送信先がありません。下のフォームから追加してください。")
with st.form("set_add_recipient", clear_on_submit=True):
    c1, c2 = st.columns([3, 2])
    address = c1.text_input("LINEユーザーID（U＋32文字）またはメールアドレス", key="set_address")
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
st.caption("環境変数・secrets.toml の CRM_TEST_RECIPIENTS（カンマ区切り）に書いた宛先も使えます（この画面からは削除できません）。")

st.subheader("ショップ情報（メールの表示事項）")
st.write("特定電子メール法により、広告メールには送信者の名称・住所・配信停止の方法・問い合わせ先の表示が必要です。テンプレートのフッターに差し込まれます。")
profile = T.shop_profile(store)
with st.form("set_shop"):
    c1, c2 = st.columns(2)
    values = asdict(profile)
    values["shop_name"] = c1.text_input("ショップ名", profile.shop_name, key="set_shop_name")
    values["sender_name"] = c2.text_input("送信者の名称（事業者名）", profile.sender_name, key="set_sender_name")
    values["shop_address"] = c1.text_input("送信者の住所", profile.shop_address, key="set_shop_address")
    values["shop_contact"] = c2.text_input("お問い合わせ先（メール・電話）", profile.shop_contact, key="set_shop_contact")
    values["shop_url"] = c1.text_input("ショップのURL", profile.shop_url, key="set_shop_url")
    values["unsubscribe_url"] = c2.text_input("配信停止のURL（https）", profile.unsubscribe_url, key="set_unsubscribe_url")
    values["product_url_pattern"] = c1.text_input("商品ページのURL（{product_id} が商品番号に置き換わります）", profile.product_url_pattern,
                                                  key="set_product_url", placeholder="https://item.rakuten.co.jp/myshop/{product_id}/")
    values["image_url"] = c2.text_input("カードの標準画像URL（https）", profile.image_url, key="set_image_url")
    platforms = {"rakuten": "楽天市場", "shopify": "Shopify", "own": "自社サイト"}
    values["platform"] = c1.radio("主な販売チャネル", list(platforms), index=list(platforms).index(profile.platform),
                                  format_func=platforms.get, horizontal=True, key="set_platform",
                                  help="楽天市場の場合、メールのリンクが楽天のドメインだけかをチェックします。")
    if st.form_submit_button("保存", type="primary"):
        ui.run(T.save_shop_profile, store, T.ShopProfile(**values))
        st.success("ショップ情報を保存しました。")

st.subheader("送信履歴")
log = sends.send_log(store)
if log.empty:
    ui.empty_state("まだ送信履歴はありません。")
else:
    log["日時"] = log["日時"].dt.strftime("%Y/%m/%d %H:%M:%S")
    st.dataframe(log, hide_index=True, width="stretch")
st.caption("送信履歴には、宛先・結果・リクエストIDだけを記録します。アクセストークンやメッセージの本文は記録しません。")
