"""Issue 11: imports a marketer can trust on their own data (not on the sample).

Each test reproduces what a new user hit: a near-miss export, a mixed batch,
the sample's own files, the shop's customer numbers, an as-of export.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.ingest import formats as F
from crm_core.ingest.preview import preview
from crm_core.pipeline import import_files
from tests import fixtures as fx

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def store() -> Store:
    s = Store(":memory:")
    yield s
    s.close()


def cli(*args: str, db: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crm_core", *args, "--db", str(db)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "CRM_NO_SAMPLE": "1", **(env or {})},
    )


def rakuten_without(path: Path, column: str) -> Path:
    """A real-looking Rakuten 楽天ペイ export whose template left out one column."""
    header = [h for h in fx._headers("rakuten_rpay_order_csv", fx.RAKUTEN_MIN) if h != column]
    rows = [{k: v for k, v in r.items() if k != column} for r in fx.rakuten_rows()]
    return fx.write_csv(path, header, rows, "cp932")


def _counts(store: Store) -> tuple[int, int, int, int]:
    return tuple(store.scalar(f"SELECT count(*) FROM {t}") for t in ("orders", "products", "contacts", "imports"))  # noqa: S608


# ---------------------------------------------------------------- item 2: near-miss exports


def test_rakuten_export_missing_order_number_is_named_and_refused(store, tmp_path):
    path = rakuten_without(tmp_path / "楽天_注文番号なし.csv", "注文番号")
    with pytest.raises(InputError) as err:
        import_files(store, [path], rebuild_model=False)
    assert "楽天ペイ受注CSVの必須列『注文番号』がありません" in err.value.message
    assert "楽天_注文番号なし.csv" in err.value.message
    assert _counts(store) == (0, 0, 0, 0)


def test_preview_names_the_closest_layout_and_its_missing_column(tmp_path):
    path = rakuten_without(tmp_path / "r.csv", "注文番号")
    p = preview(path.read_bytes(), "r.csv")
    assert p.format == "rakuten"
    assert "楽天ペイ受注CSVの必須列『注文番号』がありません" in p.problem
    ok = preview(fx.rakuten_current(tmp_path / "ok.csv").read_bytes(), "ok.csv")
    assert (ok.format, ok.problem) == ("rakuten", None)


def test_shopify_export_missing_created_at_is_named(store, tmp_path):
    header = [h for h in fx._headers("shopify_orders_export", list(fx.shopify_rows()[0])) if h != "Created at"]
    path = fx.write_csv(tmp_path / "orders_export.csv", header, fx.shopify_rows(), "utf-8", quote_all=False)
    with pytest.raises(InputError, match="Shopify注文エクスポートの必須列『Created at』がありません"):
        import_files(store, [path], rebuild_model=False)


def test_cli_refuses_near_miss_export_with_its_name(tmp_path):
    db = tmp_path / "crm.duckdb"
    res = cli("import", str(rakuten_without(tmp_path / "r.csv", "注文番号")), db=db)
    assert res.returncode == 2
    assert "楽天ペイ受注CSVの必須列『注文番号』がありません" in res.stderr


def test_nothing_imported_is_a_warning_not_a_success(store, tmp_path):
    path = fx.write_csv(tmp_path / "list.csv", ["メールアドレス", "電話番号", "タグ"], [{"タグ": "VIP"}, {"タグ": "x"}], "utf-8")
    report = import_files(store, [path], mapping={"メールアドレス": "email", "電話番号": "phone", "タグ": "tags"},
                          kind="contacts", rebuild_model=False)
    level, message = report.outcome()
    assert level == "warning"
    assert "取り込めたデータはありません" in message
    assert "メールアドレスも電話番号もない" in message
    assert report.to_dict()["outcome"] == "warning"


def test_outcome_success_and_unchanged(store, tmp_path):
    path = fx.rakuten_current(tmp_path / "r.csv")
    first = import_files(store, [path], rebuild_model=False)
    assert first.outcome()[0] == "success"
    again = import_files(store, [path], rebuild_model=False)
    assert again.outcome() == ("info", "すでに取り込み済みの内容です。データは変更されていません。")


# ---------------------------------------------------------------- item 5: our own layouts


def test_sample_products_and_contacts_import_without_kind(tmp_path):
    from crm_core.sample.generate import generate_sample

    paths = generate_sample(tmp_path / "s", customers=30)
    db = tmp_path / "crm.duckdb"
    res = cli("import", str(paths["products"]), str(paths["contacts"]), db=db)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [f["format"] for f in out["files"]] == ["console_products", "console_contacts"]
    assert out["products"] > 10 and out["contacts"] > 0
    s = Store(db)
    assert s.scalar("SELECT count(*) FROM contacts WHERE line_user_id LIKE 'U%'") > 0
    s.close()


def test_detect_format_knows_the_console_layouts():
    assert F.detect_format(["商品管理番号", "商品名", "カテゴリ", "標準リピート日数"]).key == "console_products"
    assert F.detect_format(["メールアドレス", "電話番号", "LINEユーザーID", "誕生日", "メルマガ希望"]).key == "console_contacts"


# ---------------------------------------------------------------- item 1: mapping per file


def test_batch_mapping_belongs_to_its_file(store, tmp_path):
    """A Rakuten export, a Shopify export and a generic product master in one batch."""
    from crm_core.ingest.importer import FileSpec

    rakuten = fx.rakuten_current(tmp_path / "rakuten.csv")
    shopify = fx.shopify_orders(tmp_path / "shopify_orders.csv")
    master = fx.write_csv(tmp_path / "items.csv", ["商品ID", "名称", "分類"],
                          [{"商品ID": "lotion-01", "名称": "化粧水", "分類": "スキンケア"}], "utf-8")
    report = import_files(store, [
        FileSpec(rakuten),
        FileSpec(shopify),
        FileSpec(master, mapping={"商品ID": "product_id", "名称": "product_name", "分類": "category"}, kind="products"),
    ], rebuild_model=False)
    assert [f.format for f in report.files] == ["rakuten", "shopify", "generic"]
    assert store.scalar("SELECT count(*) FROM orders") == 5
    assert store.scalar("SELECT count(*) FROM products") == 1


def test_batch_level_mapping_is_not_applied_to_known_exports(store, tmp_path):
    rakuten = fx.rakuten_current(tmp_path / "rakuten.csv")
    master = fx.write_csv(tmp_path / "items.csv", ["商品ID", "名称"], [{"商品ID": "p1", "名称": "化粧水"}], "utf-8")
    report = import_files(store, [rakuten, master], mapping={"商品ID": "product_id", "名称": "product_name"},
                          kind="products", rebuild_model=False)
    assert [f.format for f in report.files] == ["rakuten", "generic"]
    assert store.scalar("SELECT count(*) FROM orders") == 3
    assert store.scalar("SELECT count(*) FROM products") == 1


# ---------------------------------------------------------------- item 26: no duplicate records


def test_reimport_with_a_rejected_row_adds_no_records(store, tmp_path):
    rows = fx.rakuten_rows()
    rows[3] = {**rows[3], "注文日時": "不明"}
    path = fx.rakuten_current(tmp_path / "r.csv", rows)
    import_files(store, [path], rebuild_model=False)
    before = (store.scalar("SELECT count(*) FROM imports"), store.scalar("SELECT count(*) FROM import_rejects"))
    again = import_files(store, [path], rebuild_model=False)
    after = (store.scalar("SELECT count(*) FROM imports"), store.scalar("SELECT count(*) FROM import_rejects"))
    assert before == after == (1, 1)
    assert again.outcome()[0] == "info"
    assert again.files[0].rows_rejected == 1  # still reported, not recorded twice


# ---------------------------------------------------------------- item 3: the shop's customer number


def _generic_orders(tmp_path: Path, key_header: str = "会員番号") -> Path:
    return fx.write_csv(tmp_path / "ec.csv", ["受注ID", "受注日", "金額", key_header, "メール"], [
        {"受注ID": "A1", "受注日": "2025-01-01 10:00", "金額": "1000", key_header: "M-0001", "メール": "a@example.jp"},
        {"受注ID": "A2", "受注日": "2025-02-01 10:00", "金額": "2000", key_header: "M-0001", "メール": "a2@example.jp"},
        {"受注ID": "A3", "受注日": "2025-02-03 10:00", "金額": "3000", key_header: "M-0002", "メール": "b@example.jp"},
    ], "utf-8")


MAP = {"受注ID": "order_id", "受注日": "ordered_at", "金額": "total_amount", "会員番号": "customer_id", "メール": "email"}


def test_map_customer_id_is_the_shop_key_and_stays_visible(store, tmp_path):
    import_files(store, [_generic_orders(tmp_path)], mapping=MAP, rebuild_model=False)
    rows = store.fetchall("SELECT customer_key, orders_merged FROM customers ORDER BY customer_key")
    assert rows == [("M-0001", 2), ("M-0002", 1)]


def test_internal_ids_are_not_truncated_hashes(store, tmp_path):
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv")], rebuild_model=False)
    ids = [r[0] for r in store.fetchall("SELECT customer_id FROM customers")]
    assert all(len(i) >= 33 for i in ids), ids  # 128 bits, not 48


def test_customer_named_by_shop_key_in_render_and_exports(tmp_path):
    db = tmp_path / "crm.duckdb"
    res = cli("import", str(_generic_orders(tmp_path)), *[a for k, v in MAP.items() for a in ("--map", f"{k}={v}")], db=db)
    assert res.returncode == 0, res.stderr
    out = cli("render", "--template", "thanks_first", "--customer", "M-0002", "--channel", "email", db=db)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["text"]
    export = tmp_path / "c.csv"
    assert cli("customers", "--out", str(export), db=db).returncode == 0
    text = export.read_text(encoding="utf-8-sig")
    assert "M-0001" in text.splitlines()[1] + text.splitlines()[2]


def test_old_truncated_ids_are_migrated_with_campaigns(tmp_path):
    """A store written by the previous version (12-hex ids) gets full ids everywhere, campaigns included."""
    db = tmp_path / "old.duckdb"
    s = Store(db)
    import_files(s, [fx.rakuten_current(tmp_path / "r.csv")], rebuild_model=False)
    # make it look like the previous version wrote it
    s.execute("UPDATE orders SET customer_id = substr(customer_id, 1, 13)")
    s.execute("UPDATE customers SET customer_id = substr(customer_id, 1, 13)")
    old_id = s.scalar("SELECT min(customer_id) FROM customers")
    s.execute("INSERT INTO campaign_recipients VALUES (1, ?, 'A', FALSE)", [old_id])
    s.execute("DELETE FROM schema_version WHERE version > 1")
    s.close()
    s = Store(db)
    new_ids = {r[0] for r in s.fetchall("SELECT customer_id FROM customers")}
    assert all(len(i) >= 33 for i in new_ids)
    assert s.scalar("SELECT customer_id FROM campaign_recipients") in new_ids
    assert s.scalar("SELECT count(DISTINCT customer_id) FROM orders") == len(new_ids)
    s.close()



def test_opening_a_current_store_defines_the_parsing_macros_only_where_they_are_used(tmp_path):
    """Every page run opens the store: the macros are defined on the cursors that run queries (imports use them),
    on the connection itself only while a migration is due (10 ms of each page run otherwise)."""
    db = tmp_path / "crm.duckdb"
    Store(db).close()  # created and migrated
    s = Store(db)
    try:
        macros = "SELECT count(*) FROM duckdb_functions() WHERE function_name = 'crm_customer_id'"
        assert s._con.execute(macros).fetchone()[0] == 0
        assert s.scalar(macros) == 1  # this thread's cursor has them
        import_files(s, [fx.rakuten_current(tmp_path / "r.csv")], rebuild_model=False)
        assert s.table_count("orders") > 0
    finally:
        s.close()


# ---------------------------------------------------------------- item 4: as-of exports


def test_as_of_export_leaves_the_stored_model_alone(tmp_path):
    from crm_core import model

    db = tmp_path / "crm.duckdb"
    s = Store(db)
    import_files(s, [fx.rakuten_current(tmp_path / "r.csv"), fx.shopify_orders(tmp_path / "s.csv")])
    stored = model.stored_as_of(s)
    assert stored == dt.date(2025, 5, 1)
    customers = s.scalar("SELECT count(*) FROM customer_model")
    s.close()
    out = tmp_path / "march.csv"
    res = cli("customers", "--as-of", "2025-03-31", "--out", str(out), db=db)
    assert res.returncode == 0, res.stderr
    assert "2025-03-31" in out.read_text(encoding="utf-8-sig").splitlines()[1]
    s = Store(db)
    assert model.stored_as_of(s) == stored
    assert s.scalar("SELECT count(*) FROM customer_model") == customers == 2
    s.close()


def test_segment_export_carries_the_shop_key(store, tmp_path):
    from crm_core.audience import segments as S

    import_files(store, [_generic_orders(tmp_path)], mapping=MAP)
    df = S.export_frame(store, {"all": []})
    assert sorted(df["ショップの顧客番号"]) == ["M-0001", "M-0002"]


def test_message_preview_names_customers_by_the_shop_key(store, tmp_path):
    from crm_core.messaging import templates as T

    import_files(store, [_generic_orders(tmp_path)], mapping=MAP)
    people = T.preview_customers(store, "all", 10)
    assert sorted(p["customer_key"] for p in people) == ["M-0001", "M-0002"]
    rendered = T.render_for_customer(store, "thanks_first", "M-0001", "email")
    assert rendered.text
