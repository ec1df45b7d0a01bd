"""データ取込: upload Rakuten / Shopify / generic CSV files into the store."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pandas as pd
import streamlit as st

from crm_core.backup import BACKUP_DOWNLOAD_LIMIT, ClearPlan, backup_store, clear_plan
from crm_core.errors import InputError
from crm_core.ingest import formats as F
from crm_core.ingest import products as PR
from crm_core.ingest.identity import IDENTITY_KEYS, identity_key_setting
from crm_core.ingest.importer import FileSpec, import_history, rejects_table
from crm_core.ingest.mappings import list_mappings, save_mapping
from crm_core.ingest.preview import preview
from crm_core.pipeline import import_files
from crm_core.sample import store as sample_store
from crm_core.sample.load import load_sample, prepare_for_real_import
from crm_core.tempfiles import work_dir
from pages import ui

store = ui.real_store()  # imports always go to the shop's own store, never into the sample's file

st.title("📥 データ取込")
st.write(
    "楽天RMSやShopifyからダウンロードした注文CSVを、そのままドラッグ＆ドロップしてください。"
    "形式（楽天の新旧フォーマット・Shopify）と文字コード（Shift_JIS / UTF-8）は自動で判別します。"
    "同じファイルを何度取り込んでも注文が重複することはありません。"
)
if ui.viewing_sample():
    st.info(
        "いまは架空のサンプルショップを表示しています。ここで取り込むファイルは、サンプルとは別の、"
        "あなたのショップのデータベースに保存されます。取り込むとサンプルは表示されなくなります。",
        icon="🧪",
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
        carried = stats.get("carried", {})
        st.success(
            f"顧客 {stats['customers']:,}人にまとめました（複数回の注文をまとめた件数 {stats['orders_merged']:,}件）。"
            f"施策の対象者 {carried.get('campaign_recipients', 0):,}件と発行済みクーポンコード {carried.get('coupon_codes', 0):,}件は、"
            "同じ注文のお客様に引き継ぎました。"
        )

uploader_key = f"imp_files_{st.session_state.get('imp_uploader_round', 0)}"  # a new key empties the uploader
uploads = st.file_uploader(
    "注文CSV・顧客リスト・商品マスタ（複数選択できます）",
    type=["csv", "txt"],
    accept_multiple_files=True,
    key=uploader_key,
    help="楽天RMS「受注データダウンロード」、Shopify「注文をエクスポート」「顧客をエクスポート」のCSV、またはその他のシステムのCSV。",
)


def _mapping_editor(i: int, up, p) -> tuple[dict[str, str], str]:
    """The column mapping of one generic file: it belongs to this file only."""
    st.subheader(f"列の対応：{up.name}")
    st.caption("このファイルの各列が何を表すかを選んでください。使わない列は空欄のままで構いません。")
    prefix = f"imp_{i}_{up.file_id}"
    saved = list_mappings(store)
    names = ["（新規）"] + [m["name"] for m in saved]
    pick = st.selectbox("保存済みの対応を使う", names, key=f"{prefix}_saved")
    kinds = list(F.KIND_FIELDS)
    start_kind, start_map = p.kind, p.suggested_mapping
    if pick != "（新規）":
        chosen_map = next(m for m in saved if m["name"] == pick)
        start_kind, start_map = chosen_map["kind"], chosen_map["mapping"]
    kind = st.radio(
        "データの種類", kinds, index=kinds.index(start_kind), format_func=lambda k: F.KIND_LABELS[k], horizontal=True,
        key=f"{prefix}_kind_{pick}",
    )
    fields = F.KIND_FIELDS[kind]
    options = [""] + list(fields)
    label_of = {"": "（使わない）", **{k: f"{v}（{k}）" for k, v in fields.items()}}
    editor = pd.DataFrame(
        {
            "CSVの列": p.headers,
            "例": [str(p.rows.iloc[0, c]) if len(p.rows) else "" for c in range(len(p.headers))],
            "項目": [start_map.get(h, "") if start_map.get(h, "") in fields else "" for h in p.headers],
        }
    )
    edited = ui.data_editor(
        editor,
        hide_index=True,
        width="stretch",
        disabled=["CSVの列", "例"],
        column_config={
            "項目": st.column_config.SelectboxColumn("項目", options=options, format_func=lambda v: label_of.get(v, v)),
        },
        key=f"{prefix}_editor_{pick}_{kind}",
    )
    # an emptied cell comes back as None: only chosen fields form the mapping
    mapping = {row["CSVの列"]: row["項目"] for _, row in edited.iterrows() if isinstance(row["項目"], str) and row["項目"]}
    st.caption("先頭の数行（プレビュー）")
    ui.dataframe(p.rows, hide_index=True, width="stretch")
    col1, col2 = st.columns([3, 1])
    name = col1.text_input(
        "この対応に名前を付けて保存（次回から選べます）", key=f"{prefix}_mapping_name", placeholder="例: Yahoo!ショッピング注文"
    )
    if col2.button("保存", key=f"{prefix}_save_mapping", disabled=not name):
        ui.run(save_mapping, store, name, kind, mapping)
        st.success(f"列の対応「{name}」を保存しました。")
    return mapping, kind


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
                "取り込み": "できます" if p and not p.problem else "できません",
            }
            for up, p in previews
        ]
    )
    ui.dataframe(summary, hide_index=True, width="stretch")
    for _up, p in previews:
        if p is not None and p.problem:
            st.error(p.problem, icon="⚠️")

    # Each file keeps its own format; a generic file its own mapping (never another file's).
    specs: dict[int, tuple[str, dict[str, str] | None, str | None]] = {}
    for i, (up, p) in enumerate(previews):
        if p is None or p.problem:
            continue
        if p.format == "generic":
            file_mapping, file_kind = _mapping_editor(i, up, p)
            specs[i] = ("generic", file_mapping, file_kind)
        else:
            specs[i] = (p.format, None, None)

    ready = [i for i in specs]
    if st.button(f"{len(ready)}件のファイルを取り込む", type="primary", disabled=not ready, key="imp_run"):
        bar = st.progress(0.0, text="準備しています…")
        prepare_for_real_import(store)  # a store of an earlier version holding the sample: start clean
        try:
            with work_dir("upload") as tmp:
                files = []
                for n, i in enumerate(ready):
                    up = previews[i][0]
                    path = Path(tmp) / f"upload-{n}.csv"
                    with open(path, "wb") as fh:
                        fh.write(up.getbuffer())
                    fmt, file_mapping, file_kind = specs[i]
                    files.append(FileSpec(path, up.name, fmt, file_mapping, file_kind))
                report = ui.run(
                    import_files,
                    store,
                    files,
                    progress=lambda f, t: bar.progress(min(max(f, 0.0), 1.0), text=t),
                )
        finally:
            bar.empty()  # never a bar frozen half-way, whatever happened
        st.session_state["imp_last_report"] = report.to_dict()
        st.session_state["imp_last_rejects"] = report.rejects
        if any(f.changed for f in report.files):
            sample_store.real_data_arrived(store)  # the sample is no longer shown
        # a finished import empties the uploader: the files are not sent again with the next batch
        st.session_state["imp_uploader_round"] = st.session_state.get("imp_uploader_round", 0) + 1
        st.rerun()

report = st.session_state.get("imp_last_report")
if report:
    st.subheader("取り込み結果")
    level = report.get("outcome", "success")
    if level == "success":
        st.success(report["message"], icon="✅")
    elif level == "warning":
        st.warning(report["message"], icon="⚠️")
    else:
        st.info(report["message"], icon="ℹ️")
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
        view.columns = ["ファイル", "形式", "文字コード", "読んだ行", "追加", "更新", "変更なし", "取込不可", "連絡先・LINE連携・配信レポート", "商品"]
        ui.dataframe(view, hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(c, format="localized") for c in view.columns[3:]})
    for w in report["warnings"]:
        st.warning(w, icon="⚠️")
    rejects = st.session_state.get("imp_last_rejects") or []
    if rejects:
        st.markdown("**取り込めなかった行**（行番号は見出し行を1行目として数えています）")
        rej = pd.DataFrame(rejects).rename(columns={"file": "ファイル", "row": "行番号", "order_id": "注文番号", "reason": "理由"})
        ui.dataframe(rej, hide_index=True, width="stretch", height=min(400, 38 + 35 * len(rej)))
        st.download_button(
            "取り込めなかった行をダウンロード（CSV）",
            partial(ui.csv_bytes, rej),
            file_name="取込エラー行.csv",
            mime="text/csv",
            key="imp_rejects_download",
            on_click="ignore",
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
    ui.dataframe(history, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(c, format="localized") for c in counts})
    all_rejects = rejects_table(store)
    if all_rejects:
        st.download_button(
            "過去の取込エラー行をすべてダウンロード（CSV）",
            partial(ui.csv_bytes, pd.DataFrame(all_rejects).rename(columns={"import_id": "取込No.", "file_name": "ファイル", "row_no": "行番号", "order_id": "注文番号", "reason": "理由"})),
            file_name="取込エラー行_全件.csv",
            mime="text/csv",
            key="imp_all_rejects_download",
            on_click="ignore",
        )



@st.cache_data(ttl=900, max_entries=16, show_spinner="商品ごとの売上と原価を集計しています…")
def _costs_view(db: str, version: tuple, costs_version: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cost table and the category rates: both read every order line, so they are kept per data
    version (imports, model rebuilds) and costs version (edits here), not run on every rerun."""
    s = ui.store()
    return PR.cost_table(s, 300), PR.category_margins(s)


st.divider()
st.subheader("商品の原価・粗利率")
st.caption("粗利（商品代金 − 原価）を出すための設定です。楽天の商品CSV、Shopifyの商品エクスポート（Cost per item）、"
           "または原価の一覧（汎用CSV・種類「商品マスタ」）を上で取り込むか、ここで直接入力します。"
           "楽天とShopifyの同じ商品は、SKU（商品番号）かJANコードが同じなら同じ原価を使います。"
           "原価も粗利率も分からない商品は、粗利に含めません（0円とはみなしません）。")
if "imp_costs_flash" in st.session_state:
    st.success(st.session_state.pop("imp_costs_flash"), icon="✅")
costs, cats = ui.run(_costs_view, str(store.path), ui.data_version(), ui.run(PR.costs_version, store))
if costs.empty:
    ui.empty_state("まだ商品がありません。注文データか商品マスタを取り込むと、ここに売上の多い順に並びます。")
else:
    ov = ui.shop_profit(store)
    st.caption(f"原価が分かる売上の割合: {ui.pct(ov['coverage'])}（原価を登録した商品 {ov['products_costed']:,} / {ov['products']:,}品）")
    view = costs.assign(margin_rate=costs["margin_rate"] * 100)
    edited = ui.data_editor(
        view, hide_index=True, width="stretch", key="imp_costs_editor", num_rows="fixed",
        disabled=["product_id", "product_name", "category", "sku", "jan", "cost_source", "revenue"],
        # the two columns a marketer types into come right after the name (on a phone they were off screen)
        column_order=["product_name", "unit_cost", "margin_rate", "revenue", "category", "product_id", "sku", "jan", "cost_source"],
        column_config={
            "product_id": "商品管理番号", "product_name": st.column_config.TextColumn("商品名", pinned=True),
            "category": "カテゴリ", "sku": "SKU・商品番号", "jan": "JANコード",
            "unit_cost": st.column_config.NumberColumn("原価（円／個）", min_value=0, format="localized"),
            "margin_rate": st.column_config.NumberColumn("粗利率（%）", min_value=0, max_value=100, format="%.1f"),
            "cost_source": "原価の出どころ", "revenue": st.column_config.NumberColumn("売上（商品代金・円）", format="localized"),
        },
    )
    changed = [
        r for r, old_row in zip(edited.to_dict("records"), view.to_dict("records"), strict=True)
        if (r["unit_cost"], r["margin_rate"]) != (old_row["unit_cost"], old_row["margin_rate"])
        and not (pd.isna(r["unit_cost"]) and pd.isna(old_row["unit_cost"]) and pd.isna(r["margin_rate"]) and pd.isna(old_row["margin_rate"]))
    ]
    if st.button(f"原価・粗利率を保存（変更 {len(changed)}件）", disabled=not changed, key="imp_costs_save"):
        ui.run(PR.set_product_costs, store, changed)
        st.session_state["imp_costs_flash"] = f"{len(changed)}件の商品の原価・粗利率を保存しました。"
        st.rerun()
if not cats.empty:
    st.markdown("**カテゴリごとの粗利率**（商品ごとの原価がない商品に使います）")
    k1, k2, k3 = st.columns([2, 1, 1])
    cat = k1.selectbox("カテゴリ", list(cats["category"]), key="imp_cat_pick")
    current = cats.set_index("category").loc[cat, "margin_rate"]
    rate = k2.number_input("粗利率（%）", min_value=0.0, max_value=100.0, step=1.0, key=f"imp_cat_rate_{cat}",
                           value=None if pd.isna(current) else float(current) * 100)
    if k3.button("保存", key="imp_cat_save"):
        ui.run(PR.set_category_margin, store, cat, rate)
        st.session_state["imp_costs_flash"] = (f"カテゴリ「{cat}」の粗利率を保存しました。" if rate is not None
                                               else f"カテゴリ「{cat}」の粗利率を未設定に戻しました。")
        st.rerun()
    shown = cats.assign(margin_rate=cats["margin_rate"].map(lambda v: "未設定" if pd.isna(v) else f"{v * 100:.1f}%"))
    ui.dataframe(shown.rename(columns={"category": "カテゴリ", "margin_rate": "粗利率"}), hide_index=True, key="imp_cat_table")

st.divider()
st.subheader("サンプルデータとリセット")


def _show_sample() -> None:
    sample_store.show_sample(store)
    shown = ui.store()
    if shown is not store and shown.is_empty():
        bar = st.progress(0.0)
        ui.run(load_sample, shown, progress=lambda f, t: bar.progress(f, text=t))


if ui.viewing_sample():
    st.caption("現在、架空のサンプルショップを表示しています。サンプルはあなたのデータとは別のファイルにあり、あなたのデータには混ざりません。")
    if st.button("サンプルの表示をやめる", key="imp_hide_sample"):
        sample_store.show_sample(store, False)
        st.rerun()
elif sample_store.is_sample_store(store):
    st.caption(
        "このデータベースには、以前のバージョンで読み込んだ架空のサンプルショップが入っています。"
        "ご自身のデータを取り込むと、サンプルは先に削除されます。"
    )
elif store.is_empty():
    if st.button("サンプルショップを表示", key="imp_load_sample"):
        _show_sample()
        st.rerun()
else:
    ok = st.checkbox(
        "表示を架空のサンプルショップに切り替えます（あなたのデータはそのまま残り、いつでも戻せます）",
        key="imp_confirm_sample",
    )
    if st.button("サンプルショップを表示", key="imp_load_sample", disabled=not ok):
        _show_sample()
        st.rerun()

plan = ui.run(clear_plan, store)
st.markdown("**「すべてのデータを削除」で削除されるもの**")
st.caption(ClearPlan.text(plan.deleted) + "、顧客分析の計算結果。")
has_campaigns = any(count for _, count, _ in plan.campaigns)
drop_campaigns = False
if has_campaigns:
    drop_campaigns = st.checkbox(
        "施策の記録と発行済みのクーポンコードも削除する（" + ClearPlan.text(plan.campaigns) + "）",
        value=sample_store.is_sample_store(store),
        key="imp_clear_campaigns",
        help="お客様の手元にあるクーポンコードや施策の効果の記録は、同じお客様のデータを取り込み直すと、また結び付きます。"
             "サンプルショップの施策は架空のものなので、削除をおすすめします。",
    )
kept = list(plan.kept) + ([] if drop_campaigns else list(plan.campaigns))
st.caption("残るもの: " + ClearPlan.text(kept) + "。設定（識別方法・RFM・ランク・ショップ情報）も残ります。")
with st.expander("削除の前にバックアップを作る"):
    st.caption("データベースを丸ごとコピーしたファイルを、データベースと同じフォルダの「backups」に保存します。"
               "元に戻すときは、このファイルをデータベースの場所に置き換えてください。")
    if st.button("バックアップを作成", key="imp_backup"):
        with st.spinner("バックアップを作成しています…"):
            st.session_state["imp_backup_path"] = str(ui.run(backup_store, store))
    made = st.session_state.get("imp_backup_path")
    if made and Path(made).exists():
        size = Path(made).stat().st_size
        st.success(f"バックアップを保存しました: {made}（{size / 1024 / 1024:,.1f} MB）")
        if size <= BACKUP_DOWNLOAD_LIMIT:
            st.download_button("バックアップをダウンロード", Path(made).read_bytes(), file_name=Path(made).name,
                               mime="application/octet-stream", key="imp_backup_download")
if done := st.session_state.pop("imp_cleared", None):
    st.success(done, icon="✅")


def _clear_all(keep_campaigns: bool) -> None:
    """Delete the data, then leave a confirmation and an unticked checkbox for the next run.

    A callback runs before the next page run: it takes that run's store, not this one's.
    """
    from crm_core.sample.load import remove_sample_identity

    s = ui.real_store()
    ui.run(s.clear_data, keep_campaigns=keep_campaigns)
    ui.run(remove_sample_identity, s)  # the sample's fictitious sender details go with it
    sample_store.real_data_arrived(s)  # no automatic sample after the marketer emptied the store
    for key in ("imp_last_report", "imp_last_rejects"):
        st.session_state.pop(key, None)
    st.session_state["imp_confirm_clear"] = False  # allowed in a callback: the checkbox is drawn afterwards
    st.session_state["imp_cleared"] = "すべてのデータを削除しました。新しいデータを取り込むと、各ページに表示されます。"


confirm = st.checkbox("上に書いた内容を削除することを確認しました（元に戻せません）", key="imp_confirm_clear")
st.button("すべてのデータを削除", disabled=not confirm or not ui.allowed("data.delete"), key="imp_clear",
          on_click=_clear_all, args=(not drop_campaigns,),
          help=None if ui.allowed("data.delete") else "データの削除は「承認・管理」の役割の人だけができます。")
