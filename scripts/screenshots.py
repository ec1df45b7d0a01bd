"""Take the README's screenshots: the console on the sample shop, in headless Chromium.

Usage: .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_core.db import Store  # noqa: E402
from crm_core.sample.load import load_sample  # noqa: E402
from tests import fixtures as fx  # noqa: E402
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, Server, goto  # noqa: E402

PAGES = [
    ("/", "home"),
    ("/analytics", "analytics"),
    ("/segments", "segments"),
    ("/messages", "messages"),
    ("/calendar", "calendar"),
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--customers", type=int, default=1500)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        store = Store(tmp_path / "crm.duckdb")
        load_sample(store, customers=args.customers)
        store.close()
        server = Server(tmp_path)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000}, locale="ja-JP")
                page.set_default_timeout(120_000)
                for path, name in PAGES:
                    goto(page, server, path)
                    page.wait_for_timeout(4000)  # let Vega draw the charts
                    page.screenshot(path=str(args.out / f"{name}.png"), full_page=False)
                    print("saved", name)
                # the import report, with one unreadable row
                rows = fx.rakuten_rows()
                rows[3] = {**rows[3], "注文日時": "不明"}
                upload = fx.rakuten_current(tmp_path / "楽天受注_2025年.csv", rows)
                goto(page, server, "/import_data")
                page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(upload))
                page.get_by_role("button", name="1件のファイルを取り込む").click()
                page.get_by_text("取り込みが完了しました。").first.wait_for()
                page.get_by_text("取り込み結果").scroll_into_view_if_needed()
                page.screenshot(path=str(args.out / "import_report.png"), full_page=True)
                print("saved import_report")
                browser.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
