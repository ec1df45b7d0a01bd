"""Issue 11, items 1, 2 and 21 in a real browser: a new marketer's first real imports.

The console starts on the sample shop (its own file); the marketer drops a
mixed batch (Rakuten cp932 + Shopify + a generic product master with its
own saved mapping), then a second batch (a Shopify export and a Rakuten
export whose template lacks 注文番号).
"""

from __future__ import annotations

import pytest

from crm_core.db import Store
from crm_core.ingest.mappings import save_mapping
from tests import fixtures as fx
from tests.e2e.browser import Server, goto, shot, wait_idle

DROP = "[data-testid='stFileUploaderDropzoneInput']"


@pytest.fixture()
def first_start(tmp_path):
    store = Store(tmp_path / "crm.duckdb")
    save_mapping(store, "自社商品マスタ", "products", {"商品ID": "product_id", "名称": "product_name", "分類": "category"})
    store.close()
    srv = Server(tmp_path, env={"CRM_NO_SAMPLE": "0"})  # a first start shows the sample shop
    yield srv
    srv.stop()


def _files(tmp_path):
    rakuten = fx.rakuten_current(tmp_path / "楽天受注_2025.csv")
    shopify = fx.shopify_orders(tmp_path / "orders_export.csv")
    items = fx.write_csv(tmp_path / "商品マスタ.csv", ["商品ID", "名称", "分類"], [
        {"商品ID": "lotion-01", "名称": "薬用化粧水", "分類": "化粧水"},
        {"商品ID": "serum-01", "名称": "美容液", "分類": "美容液"},
    ], "utf-8")
    header = [h for h in fx._headers("rakuten_rpay_order_csv", fx.RAKUTEN_MIN) if h != "注文番号"]
    rows = [{k: v for k, v in r.items() if k != "注文番号"} for r in fx.rakuten_rows()]
    near_miss = fx.write_csv(tmp_path / "楽天受注_注文番号なし.csv", header, rows, "cp932")
    return rakuten, shopify, items, near_miss


def test_mixed_batches_each_file_with_its_own_format(first_start, page, tmp_path):
    server = first_start
    rakuten, shopify, items, near_miss = _files(tmp_path)
    goto(page, server, "/import_data")
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_text("サンプルショップを表示中").wait_for()  # the first start shows the sample (its own file)

    # batch 1: Rakuten cp932 + generic product master (its saved mapping) + nothing else
    page.locator(DROP).set_input_files([str(rakuten), str(items)])
    wait_idle(page)
    page.get_by_text("列の対応：商品マスタ.csv").wait_for()
    box = page.locator("[data-testid='stMain'] [data-testid='stSelectbox']").filter(has_text="保存済みの対応を使う").first
    box.locator("input").click()
    page.get_by_role("option", name="自社商品マスタ").click()
    wait_idle(page)
    page.get_by_role("button", name="2件のファイルを取り込む").click()
    page.get_by_text("取り込み結果").wait_for(timeout=120_000)
    wait_idle(page)
    page.get_by_text("取り込みが完了しました。").first.wait_for()
    assert page.locator("[data-testid='stProgress']").count() == 0  # no bar left behind
    assert page.locator("[data-testid='stFileUploaderFile']").count() == 0  # the uploader is empty again
    assert sidebar.get_by_text("サンプルショップを表示中").count() == 0  # the sample is gone after the first real import
    shot(page, "import_batch_1")

    # batch 2: a Shopify export and a Rakuten export missing 注文番号
    page.locator(DROP).set_input_files([str(shopify), str(near_miss)])
    wait_idle(page)
    page.get_by_text("楽天ペイ受注CSVの必須列『注文番号』がありません").first.wait_for()
    assert page.get_by_text("列の対応：").count() == 0  # no mapping table for a known export
    page.get_by_role("button", name="1件のファイルを取り込む").click()
    page.get_by_text("取り込み結果").wait_for(timeout=120_000)
    wait_idle(page)
    page.get_by_text("取り込みが完了しました。").first.wait_for()
    assert page.get_by_text("がありません。列名を確認してください").count() == 0  # no foreign mapping applied
    assert page.locator("[data-testid='stProgress']").count() == 0
    shot(page, "import_batch_2")

    server.stop()  # the store file is locked while the console runs
    store = Store(server.db)
    assert store.fetchall("SELECT source, count(*) FROM orders GROUP BY 1 ORDER BY 1") == [("rakuten", 3), ("shopify", 2)]
    assert store.fetchall("SELECT product_id, product_name, category FROM products ORDER BY 1") == [
        ("lotion-01", "薬用化粧水", "化粧水"), ("serum-01", "美容液", "美容液"),
    ]
    assert store.fetchall("SELECT file_name, format FROM imports ORDER BY import_id") == [
        ("楽天受注_2025.csv", "rakuten"), ("商品マスタ.csv", "generic"), ("orders_export.csv", "shopify"),
    ]
    assert store.get_setting("sample_loaded") in (None, False)  # no fiction in the shop's own store
    store.close()
