"""データ取込's cost table in Chromium: the cost a marketer types beside a product's name is the one saved.

The grid shows 商品名, then the two columns a marketer types into (原価, 粗利率), then the codes; the edit
must still land on the product of its row (the table's data keep their own column order).
"""

from __future__ import annotations

import pytest

from crm_core.db import Store
from crm_core.ingest import products as PR
from crm_core.pipeline import import_files
from tests import fixtures as fx
from tests.e2e.browser import Server, goto, rerun, shot


@pytest.fixture()
def shop(tmp_path):
    store = Store(tmp_path / "crm.duckdb")
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv")])
    store.close()
    srv = Server(tmp_path)
    yield srv
    srv.stop()


def test_a_cost_typed_beside_the_product_name_is_saved_for_that_product(shop, page):
    store = Store(shop.db, read_only=True)
    try:
        first = PR.cost_table(store, 300).iloc[0]  # the grid's first row: the best-selling product
    finally:
        store.close()
    goto(page, shop, "/import_data")
    main = page.locator("[data-testid='stMain']")
    main.get_by_text("商品の原価・粗利率", exact=True).scroll_into_view_if_needed()
    grid = main.locator("[data-testid='stDataFrame']").nth(1)  # after the import history
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 40, box["y"] + 35 + 17)  # the first row's 商品名 (read-only)
    page.keyboard.press("ArrowRight")  # its 原価, right beside the name
    page.keyboard.press("Enter")  # opens the cell's editor
    page.locator(".gdg-input").fill("1234")
    rerun(page, lambda: page.locator(".gdg-input").press("Enter"))
    save = main.get_by_role("button", name="原価・粗利率を保存（変更 1件）")
    save.wait_for()
    rerun(page, save.click)
    main.get_by_text("1件の商品の原価・粗利率を保存しました。").wait_for()
    shot(page, "costs_saved")
    store = Store(shop.db, read_only=True, wait=5)
    try:
        saved = store.fetchall("SELECT product_id, unit_cost FROM products WHERE unit_cost IS NOT NULL")
    finally:
        store.close()
    assert [(pid, float(cost)) for pid, cost in saved] == [(first["product_id"], 1234.0)]
