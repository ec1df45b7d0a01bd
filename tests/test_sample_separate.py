"""Issue 11, item 21: loading the sample never touches real data."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.messaging.templates import SETTING_SHOP
from crm_core.pipeline import import_files
from crm_core.sample import store as sample_store
from crm_core.sample.load import SAMPLE_SHOP, load_sample, prepare_for_real_import
from tests import fixtures as fx

ROOT = Path(__file__).resolve().parents[1]


def _real_shop(db: Path, tmp_path: Path) -> None:
    store = Store(db)
    import_files(store, [fx.shopify_orders(tmp_path / "orders_export.csv")])  # Shopify's default numbers #1001, #1002
    store.close()


def _real_orders(db: Path) -> list[tuple]:
    store = Store(db)
    rows = store.fetchall("SELECT order_id, buyer_name, total_amount FROM orders ORDER BY order_id")
    store.close()
    return rows


def test_load_sample_refuses_a_store_with_real_data(tmp_path):
    db = tmp_path / "crm.duckdb"
    _real_shop(db, tmp_path)
    before = _real_orders(db)
    store = Store(db)
    with pytest.raises(InputError, match="架空のサンプルは読み込みません"):
        load_sample(store, customers=50)
    store.close()
    assert _real_orders(db) == before


def test_sample_button_asks_and_keeps_real_orders(tmp_path, monkeypatch):
    db = tmp_path / "crm.duckdb"
    monkeypatch.setenv("CRM_DB", str(db))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    _real_shop(db, tmp_path)
    before = _real_orders(db)
    assert before[0][:2] == ("#1001", "佐藤 花子")

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/data/import_data.py").run()
    button = next(b for b in at.button if b.label == "サンプルショップを表示")
    assert button.disabled  # asks first
    next(c for c in at.checkbox if "サンプルショップに切り替えます" in c.label).check().run()
    next(b for b in at.button if b.label == "サンプルショップを表示").click().run()
    assert not at.exception
    assert any("サンプルショップを表示中" in c.value for c in at.sidebar.caption)

    sample_file = sample_store.sample_path(db)
    assert sample_file.exists()
    at.switch_page("pages/start/home.py").run()
    assert not at.exception
    assert any("架空のサンプルショップ" in i.value for i in at.info)
    # back to the shop's own data: it is exactly as it was
    at.switch_page("pages/data/import_data.py").run()
    next(b for b in at.button if b.label == "サンプルの表示をやめる").click().run()
    assert not at.exception
    assert not any("サンプルショップを表示中" in c.value for c in at.sidebar.caption)
    del at
    assert _real_orders(db) == before
    sample = Store(sample_file)
    assert sample.scalar("SELECT count(*) FROM orders") > 1000
    assert sample.scalar("SELECT count(*) FROM orders WHERE order_id = '#1001' AND buyer_name = '佐藤 花子'") == 0
    sample.close()


def test_first_start_shows_the_sample_from_its_own_file(tmp_path, monkeypatch):
    db = tmp_path / "crm.duckdb"
    monkeypatch.setenv("CRM_DB", str(db))
    monkeypatch.delenv("CRM_NO_SAMPLE", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    assert any("サンプルショップを表示中" in c.value for c in at.sidebar.caption)
    del at
    real = Store(db)
    assert real.is_empty() and real.get_setting(SETTING_SHOP) is None  # nothing fictional in the shop's store
    # the first real import ends the showing
    import_files(real, [fx.rakuten_current(tmp_path / "r.csv")])
    sample_store.real_data_arrived(real)
    assert not sample_store.showing_sample(real)
    real.close()


def test_old_store_holding_the_sample_is_emptied_before_the_first_real_import(tmp_path):
    db = tmp_path / "crm.duckdb"
    store = Store(db)
    load_sample(store, customers=50)  # what earlier versions did on first start
    assert store.get_setting(SETTING_SHOP)["shop_name"] == SAMPLE_SHOP.shop_name
    assert prepare_for_real_import(store)
    import_files(store, [fx.shopify_orders(tmp_path / "orders_export.csv")])
    assert store.fetchall("SELECT order_id FROM orders ORDER BY 1") == [("#1001",), ("#1002",)]
    assert store.get_setting(SETTING_SHOP) is None  # the fictional sender is gone too
    assert not sample_store.is_sample_store(store)
    store.close()


def test_console_start_finishes_a_refresh_left_by_a_killed_import(tmp_path, monkeypatch):
    """Issue 11, item 24 in the console: the import committed, its refresh did not."""
    db = tmp_path / "crm.duckdb"
    monkeypatch.setenv("CRM_DB", str(db))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    store = Store(db)
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv")], rebuild_model=False)  # as if killed before the refresh
    assert store.get_setting("refresh_due") is True and not store.has_table("customer_model")
    store.close()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    del at
    store = Store(db)
    assert store.get_setting("refresh_due") in (None, False)
    assert store.scalar("SELECT count(*) FROM customer_model") == 1
    store.close()


def test_import_page_says_why_nothing_was_imported(tmp_path, monkeypatch):
    """Issue 11, item 2 on the page: 0 rows imported is a warning with the reason, never 「完了」."""
    from crm_core.ingest.importer import import_files as import_only

    db = tmp_path / "crm.duckdb"
    monkeypatch.setenv("CRM_DB", str(db))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    path = fx.write_csv(tmp_path / "list.csv", ["メールアドレス", "タグ"], [{"タグ": "VIP"}], "utf-8")
    report = import_only(Store(":memory:"), [path], mapping={"メールアドレス": "email", "タグ": "tags"}, kind="contacts")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["imp_last_report"] = report.to_dict()
    at.run()
    at.switch_page("pages/data/import_data.py").run()
    assert not at.exception
    assert not any("取り込みが完了しました" in s.value for s in at.success)
    assert any("取り込めたデータはありません" in w.value and "メールアドレスも電話番号もない" in w.value for w in at.warning)
