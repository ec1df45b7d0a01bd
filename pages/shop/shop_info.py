"""ショップ情報: who sends — shop name, company, address, contact, sender name, opt-out, shop URL (stored per store)."""

from __future__ import annotations

import streamlit as st

from crm_core.messaging import templates as T
from pages import ui

store = ui.store()

st.title("🏪 ショップ情報")
st.write(
    "ここに登録した内容は、すべてのテンプレートの差し込み（{{ shop_name }} など）、メールのフッター、"
    "差出人名、配信停止の案内、チェック（特定電子メール法の表示事項）に使われます。"
    "広告メールには、送信者の名称・住所・配信停止の方法とその旨・苦情や問い合わせの連絡先の表示が必要です。"
)

profile = T.shop_profile(store)
if profile.origin == T.SAMPLE and store.get_setting("sample_loaded", False):
    st.warning(
        "いま登録されているのは、架空のサンプルショップ（ことのはコスメ）の情報です。"
        "実際のお客様に送るメッセージでは使えないため、チェックでは「要修正」になります。ご自身のショップの情報に書き換えてください。",
        icon="🧪",
    )
elif profile.origin == T.SAMPLE:
    st.info(
        "サンプルショップの架空の情報は使われません（空欄にしています）。ご自身のショップの情報を登録してください。",
        icon="ℹ️",
    )
missing = profile.missing()
if missing:
    st.warning("まだ登録されていない項目: " + "、".join(missing), icon="⚠️")

platforms = {"rakuten": "楽天市場", "shopify": "Shopify", "own": "自社サイト"}
with st.form("shop_form"):
    c1, c2 = st.columns(2)
    values = profile.to_dict()
    values["shop_name"] = c1.text_input("ショップ名", profile.shop_name, key="shop_name", placeholder="ナチュラルコスメ本舗")
    values["company_name"] = c2.text_input("運営会社（送信者の名称）", profile.company_name, key="shop_company",
                                           placeholder="株式会社ナチュラルコスメ", help="法人名や屋号。メールのフッターに表示します。")
    values["shop_address"] = c1.text_input("住所", profile.shop_address, key="shop_address", placeholder="〒150-0001 東京都渋谷区神宮前1-2-3")
    values["shop_contact"] = c2.text_input("お問い合わせ先（メール・電話）", profile.shop_contact, key="shop_contact",
                                           placeholder="support@example.jp / 03-1234-5678")
    values["sender_name"] = c1.text_input("差出人名（メールの送信者名）", profile.sender_name, key="shop_sender",
                                          help="受信箱に表示される名前です。空欄のときはショップ名を使います。")
    values["shop_url"] = c2.text_input("ショップのURL（楽天市場店のURLなど）", profile.shop_url, key="shop_url",
                                       placeholder="https://www.rakuten.co.jp/myshop/")
    values["unsubscribe_url"] = c1.text_input("配信停止のURL（https）", profile.unsubscribe_url, key="shop_unsubscribe_url",
                                              help="メールのフッターと、受信箱の「配信停止」ボタン（List-Unsubscribe）に使います。")
    values["unsubscribe_mailto"] = c2.text_input("配信停止を受け付けるメールアドレス", profile.unsubscribe_mailto, key="shop_unsubscribe_mailto",
                                                 help="URLがないときはフッターにこのアドレスを表示します。どちらもないときは、受信箱の「配信停止」は送信元アドレスに届きます。")
    one_click = c1.checkbox("このURLはワンクリック配信停止（RFC 8058）に対応しています", bool(profile.unsubscribe_one_click),
                            key="shop_one_click",
                            help="受信箱の「配信停止」ボタンが押されると、このURLにPOSTが届きます。そのPOSTだけで配信停止が完了する"
                                 "（ログインや追加の操作が要らない）URLのときだけチェックしてください。普通のお知らせページではチェックしないでください。")
    values["unsubscribe_one_click"] = "1" if one_click else ""
    values["product_url_pattern"] = c1.text_input("商品ページのURL（{product_id} が商品番号に置き換わります）", profile.product_url_pattern,
                                                  key="shop_product_url", placeholder="https://item.rakuten.co.jp/myshop/{product_id}/")
    values["image_url"] = c2.text_input("カードの標準画像URL（https）", profile.image_url, key="shop_image_url")
    values["platform"] = c1.radio("主な販売チャネル", list(platforms), index=list(platforms).index(profile.platform or "rakuten"),
                                  format_func=platforms.get, horizontal=True, key="shop_platform",
                                  help="楽天市場の場合、メールのリンクが楽天のドメインだけかをチェックします。")
    if st.form_submit_button("保存", type="primary"):
        ui.run(T.save_shop_profile, store, T.ShopProfile.from_dict(values))
        st.session_state["shop_flash"] = "ショップ情報を保存しました。"
        st.rerun()
if flash := st.session_state.pop("shop_flash", None):
    st.success(flash, icon="✅")

st.subheader("メールのフッターの見え方")
footer = T.load_presets()["thanks_first"].email_footer
context = T.build_context({}, None, profile, "email")
st.text(ui.run(T.render_string, footer, context).strip("\n") or "（未登録）")
st.caption("テンプレートごとのフッターは「メッセージ・クーポン」の「テンプレートを編集」で変えられます。")
