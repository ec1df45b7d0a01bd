"""The 顧客分析 page in a real browser: charts draw, tabs switch, tables download for Excel."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from crm_core.db import Store
from crm_core.sample.load import load_sample
from tests.e2e.browser import Server, goto, shot, wait_idle


@pytest.fixture()
def shop(tmp_path):
    store = Store(tmp_path / "crm.duckdb")
    load_sample(store, customers=300)
    segments = {r[0]: r[1] for r in store.fetchall("SELECT rfm_segment, count(*) FROM customer_model GROUP BY 1")}
    store.close()
    srv = Server(tmp_path)
    yield srv, segments
    srv.stop()


def test_analytics_charts_tabs_and_download(shop, page):
    server, segments = shop
    goto(page, server, "/analytics")
    page.get_by_role("heading", name="RFMセグメント").wait_for()
    # Altair charts are drawn by vega-embed into canvas or SVG
    page.wait_for_selector(".vega-embed canvas, .vega-embed svg", timeout=120_000)
    assert page.locator(".vega-embed").count() >= 2
    shot(page, "analytics_rfm")

    with page.expect_download() as info:
        page.get_by_role("button", name="CSVをダウンロード").first.click()
    data = Path(info.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # Excel opens UTF-8 with BOM
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    body = {r[0] for r in rows[1:]}
    assert body == set(segments)  # one row per RFM segment of the customer model

    page.get_by_role("tab", name="コホート").click()
    wait_idle(page)
    page.wait_for_selector(".vega-embed canvas, .vega-embed svg", timeout=120_000)
    assert page.get_by_text("Traceback").count() == 0
    shot(page, "analytics_cohorts")
