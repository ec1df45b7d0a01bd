"""AppTest for the セグメント page on the eight-customer shop of tests/segment_shop.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from crm_core.audience import library as L
from crm_core.db import Store
from tests.segment_shop import fill_store

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/audience/segments.py"


@pytest.fixture()
def db(tmp_path, monkeypatch):
    path = tmp_path / "crm.duckdb"
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    store = Store(path)
    fill_store(store)
    store.close()
    return path


def open_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def sentence(at: AppTest) -> str:
    return next(i.value for i in at.info if i.value.startswith("**条件：**")).replace("\\", "")


def table(at: AppTest, column: str):
    """The first table on the page with this column."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def key(at: AppTest, path: str, name: str) -> str:
    return f"seg_{at.session_state['seg_rev']}_{path}_{name}"


def click(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click().run()
    assert not at.exception
    return at


def test_starts_with_every_customer(db):
    at = open_page()
    assert at.title[0].value == "🎯 セグメント"
    assert metric(at, "該当顧客数") == "8人"
    assert metric(at, "全顧客に占める割合") == "100%"  # no spurious ".0" (issue 11, item 16)
    assert metric(at, "メールで届く") == "5人"
    assert metric(at, "LINEで届く") == "5人"
    assert sentence(at) == "**条件：** すべての顧客"
    sample = next(d for d in at.dataframe if "顧客ID" in d.value.columns)
    # a person's name first, the long customer ID last (it filled a phone's screen)
    assert list(sample.proto.column_order)[0] == "氏名" and list(sample.proto.column_order)[-1] == "顧客ID"


def test_conditions_update_the_count_live(db):
    at = open_page()
    click(at, "＋ 条件を追加")
    assert at.session_state["seg_rule"] == {"all": [{"field": "recency_days", "op": "gte", "value": 90}]}
    assert metric(at, "該当顧客数") == "3人"
    assert sentence(at) == "**条件：** 最終購入から90日以上"
    assert metric(at, "全顧客に占める割合") == "37.5%"
    assert metric(at, "累計売上に占める割合") == "64.8%"  # 221,000 of 341,000
    assert list(table(at, "顧客ID")["顧客ID"]) == ["C4", "C2", "C7"]

    at.number_input(key=key(at, "0", "v_recency_days_gte")).set_value(300).run()
    assert metric(at, "該当顧客数") == "2人"

    # a second condition: orders >= 2 -> C4 and C7 still
    click(at, "＋ 条件を追加")
    at.selectbox(key=key(at, "1", "field")).set_value("orders").run()
    assert not at.exception
    at.number_input(key=key(at, "1", "v_orders_gte")).set_value(3).run()
    assert metric(at, "該当顧客数") == "1人"
    assert sentence(at) == "**条件：** 最終購入から300日以上 かつ 購入回数3回以上"

    # OR instead of AND
    at.radio(key=key(at, "root", "mode")).set_value("any").run()
    assert metric(at, "該当顧客数") == "5人"  # C4 C7 | C1 C4 C6 C8
    # NOT on the second condition
    at.checkbox(key=key(at, "1", "not")).check().run()
    assert sentence(at) == "**条件：** 最終購入から300日以上 または （購入回数3回以上）に該当しない"
    assert metric(at, "該当顧客数") == "5人"  # C4 C7 | C2 C3 C5 C7

    # remove the first condition
    next(b for b in at.button if b.key == key(at, "0", "del")).click().run()
    assert at.session_state["seg_rule"] == {"any": [{"not": {"field": "orders", "op": "gte", "value": 3}}]}
    assert metric(at, "該当顧客数") == "4人"


def test_field_change_brings_a_fitting_widget(db):
    at = open_page()
    click(at, "＋ 条件を追加")
    at.selectbox(key=key(at, "0", "field")).set_value("prefecture").run()
    assert at.session_state["seg_rule"]["all"][0] == {"field": "prefecture", "op": "eq", "value": "東京都"}
    assert metric(at, "該当顧客数") == "3人"
    at.selectbox(key=key(at, "0", "op_prefecture")).set_value("in").run()
    widget = at.multiselect(key=key(at, "0", "v_prefecture_in"))
    assert widget.value == ["東京都"]
    widget.set_value(["東京都", "北海道"]).run()
    assert metric(at, "該当顧客数") == "4人"
    # a behaviour field: product bought within a window
    at.selectbox(key=key(at, "0", "field")).set_value("bought_product").run()
    assert any("1つ以上選んでください" in w.value for w in at.warning)  # explains instead of counting
    assert not at.metric
    at.multiselect(key=key(at, "0", "v_bought_product_bought")).set_value(["P1"]).run()
    assert metric(at, "該当顧客数") == "3人"
    at.selectbox(key=key(at, "0", "w_bought_product")).set_value("days").run()
    at.number_input(key=key(at, "0", "w_days")).set_value(30).run()
    assert metric(at, "該当顧客数") == "2人"
    assert sentence(at) == "**条件：** 直近30日間に商品「化粧水A」を購入"


def test_nested_group(db):
    at = open_page()
    click(at, "＋ 条件を追加")
    click(at, "＋ グループを追加")
    rule = at.session_state["seg_rule"]
    assert rule["all"][1] == {"any": [{"field": "recency_days", "op": "gte", "value": 90}]}
    at.selectbox(key=key(at, "1_0", "field")).set_value("email_opt_in").run()
    at.checkbox(key=key(at, "1", "not")).check().run()
    # recency >= 90 and not (opted in): C2 C7
    assert metric(at, "該当顧客数") == "2人"
    assert sentence(at) == "**条件：** 最終購入から90日以上 かつ （メール配信許可あり）に該当しない"
    next(b for b in at.button if b.key == key(at, "1", "del")).click().run()
    assert metric(at, "該当顧客数") == "3人"


def test_preset_opens_as_an_editable_rule(db):
    at = open_page()
    at.selectbox(key="seg_preset").set_value("dormant_180").run()
    click(at, "プリセットを開く")
    assert any("休眠（180日以上購入なし）" in s.value for s in at.success)
    assert metric(at, "該当顧客数") == "2人"
    at.number_input(key=key(at, "0", "v_recency_days_gte")).set_value(90).run()
    assert metric(at, "該当顧客数") == "3人"


@pytest.mark.parametrize("preset", ["vip_top", "high_aov", "f2_pending", "birthday", "reorder", "rank_up", "churn_risk",
                                    "sale_only", "sub_active", "sub_cancelled", "dormant_90"])
def test_every_preset_renders(db, preset):
    at = open_page()
    at.selectbox(key="seg_preset").set_value(preset).run()
    click(at, "プリセットを開く")
    assert at.metric, preset


def test_save_rename_duplicate_delete(db):
    at = open_page()
    click(at, "＋ 条件を追加")
    at.text_input(key=f"seg_name_input_{at.session_state['seg_rev']}").input("休眠90日").run()
    click(at, "保存")
    assert any("「休眠90日」として保存しました" in s.value for s in at.success)
    store = Store(db)
    [seg] = L.list_segments(store)
    store.close()
    assert (seg["name"], seg["customers"]) == ("休眠90日", 3)

    # change and overwrite
    at.number_input(key=key(at, "0", "v_recency_days_gte")).set_value(300).run()
    click(at, "上書き保存")
    at.radio(key="seg_section").set_value("📂 保存済みセグメント").run()
    saved = table(at, "名前")
    assert list(saved["名前"]) == ["休眠90日"]
    assert int(saved["人数（最新）"].iloc[0]) == 2
    assert saved["条件"].iloc[0] == "最終購入から300日以上"
    assert table(at, "人数")["人数"].tolist() == [3, 2]  # size history

    at.text_input(key=f"seg_rename_{seg['segment_id']}").input("長期休眠").run()
    click(at, "名前を変更")
    click(at, "複製")
    at.radio(key="seg_section").set_value("📂 保存済みセグメント").run()
    names = list(table(at, "名前")["名前"])
    assert names == ["長期休眠", "長期休眠のコピー"]

    assert next(b for b in at.button if b.label == "削除").disabled
    at.checkbox(key=f"seg_delete_ok_{seg['segment_id']}").check().run()
    click(at, "削除")
    store = Store(db)
    assert [s["name"] for s in L.list_segments(store)] == ["長期休眠のコピー"]
    store.close()


def test_open_saved_segment(db):
    store = Store(db)
    L.save_segment(store, "東京", {"all": [{"field": "prefecture", "op": "eq", "value": "東京都"}]})
    store.close()
    at = open_page()
    at.selectbox(key="seg_open_pick").set_value(1).run()
    click(at, "開いて編集")
    assert metric(at, "該当顧客数") == "3人"
    assert at.session_state["seg_loaded_id"] == 1
    assert at.text_input(key=f"seg_name_input_{at.session_state['seg_rev']}").value == "東京"


def test_compare(db):
    store = Store(db)
    L.save_segment(store, "東京", {"all": [{"field": "prefecture", "op": "eq", "value": "東京都"}]})
    store.close()
    at = open_page()
    at.radio(key="seg_section").set_value("🔀 2つのセグメントを比較").run()
    click(at, "＋ 条件を追加")  # recency >= 90: C2 C4 C7 vs 東京: C1 C3 C7
    assert metric(at, "Aだけ") == "2人"
    assert metric(at, "AとBの両方") == "1人"
    assert metric(at, "Bだけ") == "2人"
    assert metric(at, "AかBのどちらか") == "5人"


def test_compare_needs_a_saved_segment(db):
    at = open_page()
    at.radio(key="seg_section").set_value("🔀 2つのセグメントを比較").run()
    assert any("セグメントを1つ以上保存してください" in i.value for i in at.info)


def test_export_section(db):
    at = open_page()
    click(at, "＋ 条件を追加")
    at.radio(key="seg_section").set_value("⬇️ 書き出し").run()
    assert not at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["CSVをダウンロード（1人）", "LINEユーザーIDの一覧をダウンロード（2人）"]  # C4 opted in; C2 C4 on LINE
    at.checkbox(key="seg_opted_in").uncheck().run()
    assert at.get("download_button")[0].proto.label == "CSVをダウンロード（3人）"
    at.radio(key="seg_encoding").set_value("cp932").run()
    assert any("cp932で表せない文字" in c.value for c in at.caption)


def test_invalid_rule_is_explained_and_cannot_be_saved(db):
    at = open_page()
    click(at, "＋ 条件を追加")
    at.selectbox(key=key(at, "0", "field")).set_value("name").run()
    assert at.session_state["seg_rule"]["all"][0] == {"field": "name", "op": "contains", "value": ""}
    assert any("「氏名」の値を入力してください" in w.value for w in at.warning)
    assert next(b for b in at.button if b.label == "保存").disabled
    at.text_input(key=key(at, "0", "v_name_contains")).input("子").run()
    assert metric(at, "該当顧客数") == "2人"


def test_hostile_text_is_shown_literally(db):
    at = open_page()
    click(at, "＋ 条件を追加")
    at.selectbox(key=key(at, "0", "field")).set_value("name").run()
    at.text_input(key=key(at, "0", "v_name_contains")).input("**[x](javascript:alert(1))** '; DROP TABLE orders; --").run()
    assert not at.exception
    assert metric(at, "該当顧客数") == "0人"
    info = next(i.value for i in at.info if i.value.startswith("**条件：**"))
    assert "\\*\\*\\[x\\]\\(javascript" in info  # escaped: no link, no bold
    assert any("当てはまるお客様はいません" in i.value for i in at.info)
    store = Store(db)
    assert store.scalar("SELECT count(*) FROM orders") == 14
    store.close()


def test_without_customer_model_the_page_explains(db):
    store = Store(db)
    store.execute("DROP TABLE customer_model")
    store.close()
    at = open_page()
    assert any("顧客モデル）がまだ作られていません" in i.value for i in at.info)


def test_empty_store_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_DB", str(tmp_path / "empty.duckdb"))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    at = open_page()
    assert any("まだ注文データがありません" in i.value for i in at.info)


def test_a_saved_rule_that_no_longer_validates_is_flagged(db):
    store = Store(db)
    L.save_segment(store, "東京", {"all": [{"field": "prefecture", "op": "eq", "value": "東京都"}]})
    store.execute("UPDATE segments SET rule = '{\"all\": [{\"field\": \"retired_field\", \"op\": \"eq\", \"value\": 1}]}'")
    store.close()
    at = open_page()
    at.radio(key="seg_section").set_value("📂 保存済みセグメント").run()
    assert not at.exception
    assert table(at, "名前")["条件"].iloc[0].startswith("⚠️ 条件1：「retired_field」という項目はありません")


HOSTILE = "![x](https://example.invalid/x.png) **VIP**"


def test_a_segment_name_is_shown_as_typed_never_as_markdown(db):
    """An image link in a segment name must not make the browser fetch it (issue 11, item 26)."""
    at = open_page()
    at.text_input(key=f"seg_name_input_{at.session_state['seg_rev']}").input(HOSTILE).run()
    click(at, "保存")
    shown = [s.value for s in at.success]
    assert shown and all("![x](" not in s and "**VIP**" not in s for s in shown), shown
    assert any("\\!\\[x\\]\\(https\\://example\\.invalid/x\\.png\\)" in s for s in shown), shown
    at.radio(key="seg_section").set_value("📂 保存済みセグメント").run()
    labels = [c.label for c in at.checkbox if c.key.startswith("seg_delete_ok_")]
    assert labels and all("![x](" not in label for label in labels), labels


@pytest.fixture()
def rakuten_db(tmp_path, monkeypatch):
    """A real-data state: one Rakuten export (relay addresses, no e-mail permission column, no LINE ids)."""
    from crm_core.pipeline import import_files
    from tests import fixtures as fx

    path = tmp_path / "crm.duckdb"
    store = Store(path)
    import_files(store, [fx.rakuten_current(tmp_path / "rakuten.csv")])
    store.close()
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    return path


def test_zero_reach_says_why_and_links_to_the_fix(rakuten_db):
    at = open_page()
    assert metric(at, "メールで届く") == "0人" and metric(at, "LINEで届く") == "0人"
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("メールで届くお客様が0人です。") and "メール配信許可" in w for w in warnings), warnings
    assert any(w.startswith("LINEで届くお客様が0人です。") and "LINE友だちの一覧" in w for w in warnings), warnings
    assert [link.label for link in at.get("page_link")].count("データ取込へ（顧客リスト・LINE友だちの一覧・注文CSV）") == 2


def test_the_count_and_the_sample_follow_new_data(db):
    """The count, the sample of customers and the LINE reach are kept per rule and data version: a rerun after an
    import (a new import id, as every import records) shows the new customer, the same rule or not."""
    from tests.segment_shop import AS_OF, COLUMNS, CUSTOMERS

    at = open_page()
    assert metric(at, "該当顧客数") == "8人"
    assert "C-NEW" not in set(table(at, "顧客ID")["顧客ID"])
    reach_before = next(c.value for c in at.caption if c.value.startswith("📱"))
    store = Store(db)
    row = dict(zip(COLUMNS, CUSTOMERS[0], strict=True))
    row.update(customer_id="C-NEW", name="新しい 大口", revenue=10_000_000.0, line_user_id="U" + "f" * 32, has_line=True)
    marks = ", ".join("?" for _ in range(len(COLUMNS) + 1))
    store.execute(f"INSERT INTO customer_model VALUES ({marks})", [row[c] for c in COLUMNS] + [AS_OF])
    store.execute("INSERT INTO customers (customer_id, line_user_id) VALUES ('C-NEW', ?)", [row["line_user_id"]])
    store.execute("INSERT INTO imports (import_id, file_name, imported_at) VALUES (1, 'new.csv', now())")
    store.close()
    at.run()
    assert not at.exception
    assert metric(at, "該当顧客数") == "9人"
    assert table(at, "顧客ID")["顧客ID"].iloc[0] == "C-NEW"  # the biggest customer now
    assert next(c.value for c in at.caption if c.value.startswith("📱")) != reach_before
