"""RFM・ランクの基準: edit the RFM scoring, the segment grid and the loyalty ranks, then rebuild."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from crm_core import model, pipeline
from pages import ui

st.title("🧮 RFM・ランクの基準")
st.write(
    "お客様をRFMスコア（最終購入の新しさ・購入回数・購入金額を1〜5点で評価）でグループ分けする基準と、"
    "会員ランクの基準をショップに合わせて変更できます。保存すると、すべてのお客様のスコア・セグメント・ランクを計算し直します。"
)
store = ui.require_data()

DIMS = {
    "r": ("R：最終購入からの日数", "日以内", "5点・4点・3点・2点になる最大の日数（これを超えると1点）"),
    "f": ("F：購入回数", "回以上", "2点・3点・4点・5点になる最小の回数"),
    "m": ("M：累計購入金額", "円以上", "2点・3点・4点・5点になる最小の金額"),
}
EXAMPLES = {"r": [30, 90, 180, 365], "f": [2, 3, 5, 8], "m": [5000, 15000, 30000, 60000]}

st.subheader("スコアの付け方")
current = model.rfm_thresholds(store)
new_thresholds: dict[str, object] = {}
for dim, (label, unit, help_text) in DIMS.items():
    value = current[dim]
    mode = st.radio(
        label,
        ["quintile", "fixed"],
        index=0 if value == model.QUINTILE else 1,
        format_func=lambda m: "自動（お客様を5等分）" if m == "quintile" else "しきい値を指定",
        horizontal=True,
        key=f"ms_mode_{dim}",
    )
    if mode == "quintile":
        new_thresholds[dim] = model.QUINTILE
        continue
    start = value if isinstance(value, list) else EXAMPLES[dim]
    cols = st.columns(4)
    points = (5, 4, 3, 2) if dim == "r" else (2, 3, 4, 5)
    new_thresholds[dim] = [
        int(cols[i].number_input(f"{p}点: {unit}", min_value=0, value=int(start[i]), step=1, key=f"ms_{dim}_{i}"))
        for i, p in enumerate(points)
    ]
    st.caption(help_text)

st.subheader("RFMセグメント")
st.caption(
    "上の行から順に判定し、最初に当てはまったセグメント名がお客様に付きます。どれにも当てはまらないお客様は「その他」になります。"
    "行を追加・削除できます（スコアは1〜5）。"
)
segments = pd.DataFrame(model.rfm_segments(store))
segments = segments[[c for c in ["name", "r_min", "r_max", "f_min", "f_max", "m_min", "m_max", "description"] if c in segments]]
edited_segments = ui.data_editor(
    segments,
    num_rows="dynamic",
    hide_index=True,
    width="stretch",
    column_config={
        "name": st.column_config.TextColumn("セグメント名", required=True, max_chars=30),
        "r_min": st.column_config.NumberColumn("R下限", min_value=1, max_value=5, step=1, default=1),
        "r_max": st.column_config.NumberColumn("R上限", min_value=1, max_value=5, step=1, default=5),
        "f_min": st.column_config.NumberColumn("F下限", min_value=1, max_value=5, step=1, default=1),
        "f_max": st.column_config.NumberColumn("F上限", min_value=1, max_value=5, step=1, default=5),
        "m_min": st.column_config.NumberColumn("M下限", min_value=1, max_value=5, step=1, default=1),
        "m_max": st.column_config.NumberColumn("M上限", min_value=1, max_value=5, step=1, default=5),
        "description": st.column_config.TextColumn("説明"),
    },
    key="ms_segments",
)

st.subheader("会員ランク")
stored_ranks = model.rank_thresholds(store)
BASIS_LABELS = {"revenue_12m": "購入金額（直近12か月）", "orders_12m": "購入回数（直近12か月）"}
basis = st.radio("ランクを決める基準", list(BASIS_LABELS), format_func=BASIS_LABELS.get, horizontal=True,
                 index=list(BASIS_LABELS).index(model.rank_basis(stored_ranks)), key="ms_rank_basis")
by_orders = basis == "orders_12m"
if model.rank_basis(stored_ranks) != basis:
    # Switching the basis starts from the defaults of the other basis (yen and counts do not convert).
    stored_ranks = model.DEFAULT_ORDER_RANK_THRESHOLDS if by_orders else model.DEFAULT_RANK_THRESHOLDS
st.caption(
    "直近12か月（365日）の" + ("購入回数" if by_orders else "購入金額") + "で決まります。一番下のランクは"
    + ("0回" if by_orders else "0円") + "から始めてください。お客様ごとの「次のランクまであと○"
    + ("回" if by_orders else "円") + "」はメッセージの差し込みとセグメントの条件に使えます。"
)
rank_key = model.RANK_KEYS[basis]
edited_ranks = ui.data_editor(
    pd.DataFrame(stored_ranks),
    num_rows="dynamic",
    hide_index=True,
    width="stretch",
    column_config={
        "name": st.column_config.TextColumn("ランク名", required=True, max_chars=20),
        rank_key: st.column_config.NumberColumn("12か月の購入回数（回以上）", min_value=0, step=1, format="%d回")
        if by_orders else
        ui.yen_column("12か月の購入金額（円以上）", min_value=0, step=1000),
    },
    key=f"ms_ranks_{basis}",
)


def _records(df: pd.DataFrame) -> list[dict]:
    rows = []
    for record in df.dropna(how="all").to_dict("records"):
        rows.append({k: (int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in record.items() if not pd.isna(v)})
    return rows


col1, col2 = st.columns([1, 1])
if col1.button("保存して計算し直す", type="primary", key="ms_save"):
    ui.run(model.set_rfm_thresholds, store, new_thresholds)
    ui.run(model.set_rfm_segments, store, _records(edited_segments))
    ui.run(model.set_rank_thresholds, store, _records(edited_ranks))
    with st.spinner("お客様のスコア・セグメント・ランクを計算し直しています…"):
        ui.run(pipeline.after_settings_change, store)
    st.success("基準を保存し、顧客データを計算し直しました。")
if col2.button("初期設定に戻す", key="ms_reset"):
    ui.run(model.set_rfm_thresholds, store, model.DEFAULT_RFM_THRESHOLDS)
    ui.run(model.set_rfm_segments, store, model.DEFAULT_RFM_SEGMENTS)
    ui.run(model.set_rank_thresholds, store, model.DEFAULT_RANK_THRESHOLDS)
    with st.spinner("初期設定で計算し直しています…"):
        ui.run(pipeline.after_settings_change, store)
    for key in [k for k in st.session_state if str(k).startswith("ms_")]:
        del st.session_state[key]
    st.rerun()

st.subheader("現在の人数")
if not store.has_table("customer_model"):
    ui.empty_state("顧客モデルがまだ計算されていません。「保存して計算し直す」を押してください。")
    st.stop()
sizes, ranks_now = model.current_sizes(store)
c1, c2 = st.columns(2)
with c1:
    ui.dataframe(sizes, hide_index=True, width="stretch", column_config={"累計売上": ui.yen_column("累計売上")})
with c2:
    ui.dataframe(ranks_now, hide_index=True, width="stretch")
