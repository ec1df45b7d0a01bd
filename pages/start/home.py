"""ホーム: the shop at a glance and where to go next."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from crm_core.analytics import summaries
from crm_core.analytics.overview import line_reach
from pages import ui

st.title("🛍️ リピートCRMコンソール")
st.caption("楽天市場・Shopify・定期通販のリピート顧客づくりを、ひとつの画面で。")

store = ui.require_data()


# It reads every order: stored by the refresh (crm_core.analytics.summaries), else once per data version
# (the gross profit: ui.shop_profit).
@st.cache_data(ttl=900, max_entries=16, show_spinner="集計しています…")
def _overview(db: str, version: tuple) -> dict:
    return summaries.get(ui.store(), "shop_overview", version[1:])



ov = ui.run(_overview, str(store.path), ui.data_version())

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

st.subheader("LINEで届くお客様")
reach = ui.run(line_reach, store)
c = st.columns(3)
c[0].metric("LINEで届くお客様", ui.count(reach["line_customers"], "人"), help="LINEユーザーIDが分かっているお客様")
c[1].metric("全顧客に占める割合", ui.pct(reach["share"]))
c[2].metric("LINE連携ファイルでつながった人", ui.count(reach["linked_by_files"], "人"),
            help="楽天はLINE IDを渡さないため、お客様が注文番号や電話番号を入力する連携ツールのファイルを取り込んで、LINE IDをつなぎます。")
grown = [h for h in reach["history"] if h["added"]]
if grown:
    ui.dataframe(
        pd.DataFrame([{"取込日時": f"{h['recorded_at']:%Y/%m/%d %H:%M}", "ファイル": h["file_names"],
                       "LINEで届くお客様": h["line_customers"], "増えた人数": h["added"]} for h in reversed(grown[-10:])]),
        hide_index=True, width="stretch", key="home_line_reach",
    )
    st.caption("取り込みのたびに、LINEで届くお客様の人数を記録しています（人数が変わった取り込みだけを、新しい順に最大10件）。")
else:
    st.caption("まだLINE IDの分かるお客様がいません。LINE友だちリストやLINE連携ファイル（注文番号・電話番号→LINEユーザーID）を「データ取込」で取り込むと増えます。")

st.subheader("粗利")
gp = ui.shop_profit(store)
c = st.columns(3)
if gp["gross_profit"] is None:
    c[0].metric("粗利（原価が分かる商品）", "原価未登録")
else:
    c[0].metric("粗利（原価が分かる商品）", ui.yen(gp["gross_profit"]), help=f"粗利率 {ui.pct(gp['margin_rate'])}（キャンセルを除く全期間、商品代金 − 原価）")
c[1].metric("原価が分かる売上の割合", ui.pct(gp["coverage"]), help="原価が分からない商品は粗利に含めません（0円とはみなしません）。")
c[2].metric("原価を登録した商品", f"{gp['products_costed']:,} / {gp['products']:,}品")

st.subheader("次にすること")
st.page_link("pages/data/import_data.py", label="最新の注文CSVを取り込む", icon="📥")
st.page_link("pages/analysis/analytics.py", label="RFM・F2転換・コホートを見る", icon="📊")
if store.get_setting("sample_loaded", False):
    st.info(
        "いま表示しているのは架空のサンプルショップです（ご自身のデータとは別のファイルにあります）。"
        "ご自身のデータを使うには「データ取込」で楽天RMSやShopifyのCSVを取り込んでください。取り込むとサンプルは表示されなくなります。",
        icon="🧪",
    )
