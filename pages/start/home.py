"""ホーム: the shop at a glance and where to go next."""

from __future__ import annotations

import streamlit as st

from crm_core.analytics.overview import shop_overview
from pages import ui

st.title("🛍️ リピートCRMコンソール")
st.caption("楽天市場・Shopify・定期通販のリピート顧客づくりを、ひとつの画面で。")

store = ui.require_data()
ov = ui.run(shop_overview, store)

st.subheader(f"{ui.jdate(ov['as_of'])} 時点の概要")
c = st.columns(4)
c[0].metric("顧客数", ui.count(ov["customers"], "人"))
c[1].metric("直近30日の売上", ui.yen(ov["revenue_30d"]), help="キャンセルを除く注文の合計金額（送料込み）")
c[2].metric("リピート率", ui.pct(ov["repeat_rate"]), help="2回以上購入した顧客の割合")
c[3].metric("平均注文単価", ui.yen(ov["aov"]))
c = st.columns(4)
c[0].metric("注文数", ui.count(ov["orders"], "件"))
c[1].metric("直近30日の注文", ui.count(ov["orders_30d"], "件"))
c[2].metric("90日以上購入のない顧客", ui.count(ov["dormant_90d"], "人"))
c[3].metric("キャンセル率", ui.pct(ov["cancel_rate"]))

st.subheader("次にすること")
st.page_link("pages/data/import_data.py", label="最新の注文CSVを取り込む", icon="📥")
st.page_link("pages/analysis/analytics.py", label="RFM・F2転換・コホートを見る", icon="📊")
if store.get_setting("sample_loaded", False):
    st.info(
        "いま表示しているのは架空のサンプルショップです（ご自身のデータとは別のファイルにあります）。"
        "ご自身のデータを使うには「データ取込」で楽天RMSやShopifyのCSVを取り込んでください。取り込むとサンプルは表示されなくなります。",
        icon="🧪",
    )
