"""Upload a Rakuten cp932 export through the real UI and read the import report."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tests import fixtures as fx
from tests.e2e.browser import goto, shot, wait_idle


def test_upload_rakuten_cp932_and_see_report(server, page, tmp_path):
    rows = fx.rakuten_rows()
    rows[3] = {**rows[3], "注文日時": "不明"}  # one order that cannot be read -> reported, not dropped silently
    path = fx.rakuten_current(tmp_path / "楽天受注.csv", rows)

    goto(page, server, "/import_data")
    page.get_by_text("データ取込").first.wait_for()
    page.locator("[data-testid='stSidebar']").get_by_text("データ未登録").wait_for()  # inside the app shell
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(path))
    # the detection table is a canvas grid: its cells exist in the DOM for accessibility
    page.get_by_text("楽天市場 受注データ（楽天ペイ受注管理）").first.wait_for(state="attached")
    page.get_by_text("Shift_JIS（cp932）").first.wait_for(state="attached")
    page.get_by_role("button", name="1件のファイルを取り込む").click()
    page.get_by_text("取り込みが完了しました。").first.wait_for(timeout=120_000)
    wait_idle(page)

    new_orders = page.locator("[data-testid='stMetric']").filter(has_text="新しい注文")
    assert "2件" in new_orders.inner_text()
    rejected = page.locator("[data-testid='stMetric']").filter(has_text="取り込めなかった行")
    assert "1行" in rejected.inner_text()
    shot(page, "import_report")

    with page.expect_download() as info:
        page.get_by_role("button", name="取り込めなかった行をダウンロード（CSV）").click()
    data = Path(info.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel opens it
    table = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [(t["行番号"], t["注文番号"]) for t in table] == [("5", "111111-20250305-0000003")]
    assert "注文日時「不明」" in table[0]["理由"]

    # the home page now reads the store: order C was rejected and order B is cancelled,
    # so one customer (髙橋 ①子, order A) has a valid order
    goto(page, server, "/")
    assert "1人" in page.locator("[data-testid='stMetric']").filter(has_text="顧客数").inner_text()
    shot(page, "home_after_import")


def test_same_file_again_says_nothing_changed(server, page, tmp_path):
    path = fx.rakuten_current(tmp_path / "r.csv")
    for _ in range(2):
        goto(page, server, "/import_data")
        page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(path))
        page.get_by_role("button", name="1件のファイルを取り込む").click()
        wait_idle(page)
        page.get_by_text("取り込み結果").wait_for(timeout=120_000)
    page.get_by_text("すでに取り込み済みの内容です").wait_for()
    assert "3件" in page.locator("[data-testid='stMetric']").filter(has_text="変更なし").inner_text()
