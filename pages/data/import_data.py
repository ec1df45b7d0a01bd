"""データ取込: upload Rakuten / Shopify / generic CSV files into the store."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from crm_core.errors import InputError
from crm_core.ingest import formats as F
from crm_core.ingest.identity import IDENTITY_KEYS, identity_key_setting
from crm_core.ingest.importer import import_history, rejects_table
from crm_core.ingest.mappings import list_mappings, save_mapping
from crm_core.ingest.preview import preview
from crm_core.pipeline import import_files
from pages import ui

store = ui.store()

st.title("📥 データ取込")
st.write(
    "楽天RMSやShopifyからダウンロードした注文CSVを、そのままドラッグ＆ドロップしてください。"
    "形式（楽天の新旧フォーマット・Shopify）と文字コード（Shift_JIS / UTF-8）は自動で判別します。"
    "同じファイルを何度取り込んでも注文が重複することはありません。"
)

with st.expander("顧客の識別方法（同じお客様の注文をまとめるキー）", expanded=False):
    current = identity_key_setting(store)
    keys = list(IDENTITY_KEYS)
    chosen = st.radio(
        "識別キー",
        keys,
        index=keys.index(current),
        format_func=lambda k: IDENTITY_KEYS[k],
        key="imp_identity_key",
        help="楽天のメールアドレスは匿名化された転送用アドレスです。同じお客様が別人として数えられる場合は「電話番号」をお試しください。",
    )
    if chosen != current and st.button("このキーで顧客をまとめ直す", key="imp_rekey"):
        from crm_core import pipeline
        from crm_core.ingest.identity import rekey

        with st.spinner("顧客をまとめ直しています…"):
            stats = ui.run(rekey, store, chosen)
            ui.run(pipeline.after_import, store)
        st.success(f"顧客 {stats['customers']:,}人にまとめました（複数回の注文をまとめた件数 {stats['orders_merged']:,}件）。")

uploads = st.file_uploader(
    "注文CSV・顧客リスト・商品マスタ（複数選択できます）",
    type=["csv", "txt"],
    accept_multiple_files=True,
    key="imp_files",
    help="楽天RMS「受注データダウンロード」、Shopify「注文をエクスポート」「顧客をエクスポート」のCSV、またはその他のシステムのCSV。",
)

mapping: dict[str, str] = {}
generic_kind: str | None = None
if uploads:
    previews = []
    for up in uploads:
        head = up.getvalue()[: 256 * 1024]
        try:
            previews.append((up, preview(head, up.name)))
        except InputError as exc:  # show the reason, keep the other files
            previews.append((up, None))
            st.error(exc.message if up.name in exc.message else f"「{up.name}」: {exc.message}", icon="⚠️")
    summary = pd.DataFrame(
        [
            {
                "ファイル": up.name,
                "サイズ": f"{up.size / 1024 / 1024:,.1f} MB" if up.size >= 1024 * 1024 else f"{up.size / 1024:,.0f} KB",
                "判別した形式": p.format_label if p else "読み込めません",
                "文字コード": p.encoding_label if p else "—",
                "列数": len(p.headers) if p else 0,
            }
            for up, p in previews
        ]
    )
    st.dataframe(summary, hide_index=True, width="stretch")

    generic = [(up, p) for up, p in previews if p is not None and p.format == "generic"]
    if len(generic) > 1:
        st.warning("汎用CSVは1回に1ファイルずつ取り込んでください（列の対応をファイルごとに指定するため）。")
    elif generic:
        up, p = generic[0]
        st.subheader(f"列の対応：{up.name}")
        st.caption("このファイルの各列が何を表すかを選んでください。使わない列は空欄のままで構いません。")
        saved = list_mappings(store)
        names = ["（新規）"] + [m["name"] for m in saved]
        pick = st.selectbox("保存済みの対応を使う", names, key="imp_saved_mapping")
        kinds = list(F.KIND_FIELDS)
        start_kind = p.kind
        start_map = p.suggested_mapping
        if pick != "（新規）":
            chosen_map = next(m for m in saved if m["name"] == pick)
            start_kind, start_map = chosen_map["kind"], chosen_map["mapping"]
        generic_kind = st.radio(
            "データの種類", kinds, index=kinds.index(start_kind), format_func=lambda k: F.KIND_LABELS[k], horizontal=True,
            key=f"imp_kind_{pick}",
        )
        fields = F.KIND_FIELDS[generic_kind]
        options = [""] + list(fields)
        label_of = {"": "（使わない）", **{k: f"{v}（{k}）" for k, v in fields.items()}}
        editor = pd.DataFrame(
            {
                "CSVの列": p.headers,
                "例": [str(p.rows.iloc[0, i]) if len(p.rows) else "" for i in range(len(p.headers))],
                "項目": [start_map.get(h, "") if start_map.get(h, "") in fields else "" for h in p.headers],
            }
        )
        edited = st.data_editor(
            editor,
            hide_index=True,
            width="stretch",
            disabled=["CSVの列", "例"],
            column_config={
                "項目": st.column_config.SelectboxColumn("項目", options=options, format_func=lambda v: label_of.get(v, v)),
            },
            key=f"imp_map_editor_{pick}_{generic_kind}",
        )
        mapping = {row["CSVの列"]: row["項目"] for _, row in edited.iterrows() if row["項目"]}
        st.caption("先頭の数行（プレビュー）")
        st.dataframe(p.rows, hide_index=True, width="stretch")
        col1, col2 = st.columns([3, 1])
        name = col1.text_input("この対応に名前を付けて保存（次回から選べます）", key="imp_mapping_name", placeholder="例: Yahoo!ショッピング注文")
        if col2.button("保存", key="imp_save_mapping", disabled=not name):
            ui.run(save_mapping, store, name, generic_kind, mapping)
            st.success(f"列の対応「{name}」を保存しました。")

    ready = [up for up, p in previews if p is not None]
    if st.button(f"{len(ready)}件のファイルを取り込む", type="primary", disabled=not ready, key="imp_run"):
        bar = st.progress(0.0, text="準備しています…")
        with tempfile.TemporaryDirectory(prefix="crm-upload-") as tmp:
            paths = []
            for i, up in enumerate(ready):
                path = Path(tmp) / f"upload-{i}.csv"
                with open(path, "wb") as fh:
                    fh.write(up.getbuffer())
                paths.append(path)
            report = ui.run(
                import_files,
                store,
                paths,
                mapping=mapping or None,
                kind=generic_kind if mapping else None,
                display_names=[up.name for up in ready],
                progress=lambda f, t: bar.progress(f, text=t),
            )
        bar.empty()
        st.session_state["imp_last_report"] = report.to_dict()
        st.session_state["imp_last_rejects"] = report.rejects
        store.set_setting("sample_dismissed", True)

report = st.session_state.get("imp_last_report")
if report:
    st.subheader("取り込み結果")
    if report["orders_added"] + report["orders_updated"] == 0 and report["rows_rejected"] == 0 and not report["contacts"] and not report["products"]:
        st.info("すでに取り込み済みの内容です。データは変更されていません。", icon="ℹ️")
    else:
        st.success("取り込みが完了しました。", icon="✅")
    c = st.columns(6)
    c[0].metric("新しい注文", ui.count(report["orders_added"], "件"))
    c[1].metric("更新された注文", ui.count(report["orders_updated"], "件"))
    c[2].metric("変更なし", ui.count(report["orders_unchanged"], "件"))
    c[3].metric("商品明細", ui.count(report["lines"], "行"))
    c[4].metric(
        "登録顧客数",
        ui.count(report["customers"], "人"),
        help="取り込んだすべての注文のお客様の数です（キャンセルした注文だけのお客様も含みます）。",
    )
    c[5].metric("取り込めなかった行", ui.count(report["rows_rejected"], "行"))
    st.caption(
        f"顧客の識別キー: {IDENTITY_KEYS.get(report['identity_key'], report['identity_key'])} ／ "
        f"同じお客様の2回目以降の注文としてまとめた件数: {report['orders_merged']:,}件"
    )
    files = pd.DataFrame(report["files"])
    if not files.empty:
        view = files[["file_name", "format_label", "encoding", "rows_read", "orders_added", "orders_updated", "orders_unchanged", "rows_rejected", "contacts", "products"]]
        view.columns = ["ファイル", "形式", "文字コード", "読んだ行", "追加", "更新", "変更なし", "取込不可", "連絡先", "商品"]
        st.dataframe(view, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(c, format="localized") for c in view.columns[3:]})
    for w in report["warnings"]:
        st.warning(w, icon="⚠️")
    rejects = st.session_state.get("imp_last_rejects") or []
    if rejects:
        st.markdown("**取り込めなかった行**（行番号は見出し行を1行目として数えています）")
        rej = pd.DataFrame(rejects).rename(columns={"file": "ファイル", "row": "行番号", "order_id": "注文番号", "reason": "理由"})
        st.dataframe(rej, hide_index=True, width="stretch", height=min(400, 38 + 35 * len(rej)))
        st.download_button(
            "取り込めなかった行をダウンロード（CSV）",
            ui.csv_bytes(rej),
            file_name="取込エラー行.csv",
            mime="text/csv",
            key="imp_rejects_download",
        )

st.divider()
st.subheader("取り込み履歴")
history = import_history(store, limit=200)
if history.empty:
    ui.empty_state("まだ取り込んだファイルはありません。")
else:
    history["format"] = history["format"].map(lambda k: F.FORMATS_BY_KEY[k].label if k in F.FORMATS_BY_KEY else "汎用CSV")
    history["imported_at"] = history["imported_at"].dt.strftime("%Y/%m/%d %H:%M")
    history["encoding"] = history["encoding"].map(ui.encoding_label)
    history.columns = ["No.", "取込日時", "ファイル", "形式", "文字コード", "読んだ行", "追加", "更新", "変更なし", "取込不可"]
    counts = ["読んだ行", "追加", "更新", "変更なし", "取込不可"]  # 1,234 with separators
    st.dataframe(history, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(c, format="localized") for c in counts})
    all_rejects = rejects_table(store)
    if all_rejects:
        st.download_button(
            "過去の取込エラー行をすべてダウンロード（CSV）",
            ui.csv_bytes(pd.DataFrame(all_rejects).rename(columns={"import_id": "取込No.", "file_name": "ファイル", "row_no": "行番号", "order_id": "注文番号", "reason": "理由"})),
            file_name="取込エラー行_全件.csv",
            mime="text/csv",
            key="imp_all_rejects_download",
        )

st.divider()
st.subheader("サンプルデータとリセット")
if store.get_setting("sample_loaded", False):
    st.caption("現在、架空のサンプルショップのデータが入っています。ご自身のデータを使うときは、いったん削除してから取り込んでください。")
if done := st.session_state.pop("imp_cleared", None):
    st.success(done, icon="✅")


def _clear_all() -> None:
    """Delete the data, then leave a confirmation and an unticked checkbox for the next run."""
    store.clear_data()
    store.set_setting("sample_loaded", False)
    store.set_setting("sample_dismissed", True)
    for key in ("imp_last_report", "imp_last_rejects"):
        st.session_state.pop(key, None)
    st.session_state["imp_confirm_clear"] = False  # allowed in a callback: the checkbox is drawn afterwards
    st.session_state["imp_cleared"] = "すべてのデータを削除しました。新しいデータを取り込むと、各ページに表示されます。"


confirm = st.checkbox("取り込んだ注文・顧客データをすべて削除することを確認しました", key="imp_confirm_clear")
col1, col2 = st.columns(2)
col1.button("すべてのデータを削除", disabled=not confirm, key="imp_clear", on_click=_clear_all)
if col2.button("サンプルショップを読み込む", key="imp_load_sample"):
    from crm_core.sample.load import load_sample

    bar = st.progress(0.0)
    ui.run(load_sample, store, progress=lambda f, t: bar.progress(f, text=t))
    st.success("サンプルショップを読み込みました。")
    st.rerun()
