"""セグメント: build an audience from conditions, see who matches, save, compare and export.

The widgets are in :mod:`pages.audience` (session keys prefixed ``seg_``),
the logic in :mod:`crm_core.audience.segments` and :mod:`crm_core.audience.library`.
"""

from __future__ import annotations

import streamlit as st

from crm_core.audience import library as L
from crm_core.audience import segments as S
from pages import audience as A
from pages import ui

st.title("🎯 セグメント")
st.caption("条件を組み合わせて、施策を届けるお客様のグループ（セグメント）を作ります。"
           "条件を変えるたびに、当てはまる人数と条件の文章がすぐに更新されます。")

store = ui.require_data()
as_of = ui.run(S.model_as_of, store)
if as_of is None:
    ui.empty_state("顧客データ（顧客モデル）がまだ作られていません。「データ取込」で注文CSVを取り込むと自動で作成され、"
                   "このページでセグメントを作れるようになります。")
    st.stop()

A.init_state()
A.flash()
saved = ui.run(L.list_segments, store)
A.start_panel(saved)

st.subheader("条件")
rule = A.rule_editor(as_of, ui.data_version())

st.subheader("当てはまるお客様")
result = A.result_panel(store, rule)

st.divider()
section = st.radio("操作", ["💾 保存", "📂 保存済みセグメント", "🔀 2つのセグメントを比較", "⬇️ 書き出し"],
                   horizontal=True, key="seg_section", label_visibility="collapsed")
if section == "💾 保存":
    A.save_panel(store, rule, result is not None)
elif section == "📂 保存済みセグメント":
    A.saved_panel(store, saved)
elif section == "🔀 2つのセグメントを比較":
    A.compare_panel(store, rule, result is not None, saved)
else:
    A.export_panel(store, rule, result, as_of)
