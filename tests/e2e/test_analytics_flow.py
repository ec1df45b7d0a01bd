"""The 顧客分析 page in a real browser: charts draw, tabs switch, tables download for Excel."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from crm_core.db import Store
from crm_core.sample.load import load_sample
from tests.e2e.browser import Server, goto, shot, wait_charts, wait_idle


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
    # Altair charts are drawn by vega-embed into canvas or SVG, one after another: wait for the second too (a count
    # taken when the first was drawn found only it on a busy machine)
    assert wait_charts(page, 2) >= 2
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


def test_rank_thresholds_rerun_only_the_rank_movement_and_give_the_store_back(shop, page):
    """The rank movement's days and thresholds rerun only that part (a fragment): the RFM charts above are not
    sent again, and the fragment's own run closes the store as a page run does (the worker's turn)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    server, _segments = shop
    reruns: list[str] = []  # the fragment each rerun the browser asked for ran ("" = the whole page)

    def sent(payload) -> None:
        if isinstance(payload, bytes):
            msg = BackMsg.FromString(payload)
            if msg.WhichOneof("type") == "rerun_script":
                reruns.append(msg.rerun_script.fragment_id)

    page.on("websocket", lambda ws: ws.on("framesent", sent))
    goto(page, server, "/analytics")
    main = page.locator("[data-testid='stMain']")
    main.get_by_role("heading", name="ランクの移動").wait_for()
    wait_idle(page)
    charts_before = wait_charts(page, 2)
    metrics = main.locator("[data-testid='stMetric']")
    metrics.filter(has_text="昇格").first.wait_for()
    before = metrics.all_inner_texts()

    main.get_by_text("ランクの基準").click()  # the expander with the thresholds
    box = main.locator("[data-testid='stNumberInput'] input").first
    reruns.clear()
    box.fill("99999999")  # the top rank's threshold: nobody reaches it now
    box.press("Enter")
    for _ in range(600):  # until the moves into and within the top rank are gone (the rerun may not have begun)
        if reruns and metrics.count() == 4 and metrics.all_inner_texts() != before:
            break
        page.wait_for_timeout(100)
    wait_idle(page)
    assert metrics.all_inner_texts() != before
    assert len(reruns) == 1 and reruns[0] != "", reruns  # the rank movement alone ran again
    assert page.locator(".vega-embed").count() == charts_before

    writer = Store(server.db, wait=5)  # StoreBusy if the fragment's run had kept the file open
    writer.close()


def test_the_rank_movement_follows_data_imported_while_the_page_is_open(shop, page):
    """The fragment's rerun keyed its cached grid with the page run's data version: after an import (the worker,
    another tab) it showed the old moves under a new threshold, and cached new data under the old key (review)."""
    from crm_core import pipeline
    from tests.analytics_shop import add_order

    server, _segments = shop
    goto(page, server, "/analytics")
    main = page.locator("[data-testid='stMain']")
    main.get_by_role("heading", name="ランクの移動").wait_for()
    promoted = main.locator("[data-testid='stMetric']").filter(has_text="昇格").first
    promoted.wait_for()
    before = int(promoted.inner_text().split("\n")[-1].replace(",", "").rstrip("人"))
    s = Store(server.db, wait=30)  # another process imports: 40 customers spend big the day before the last order
    try:
        to_day = str(s.scalar("SELECT (max(ordered_at) FILTER (WHERE NOT cancelled))::DATE - 1 FROM orders"))
        low = s.fetchall("SELECT customer_id FROM customers ORDER BY customer_id LIMIT 400")
        for i, (cid,) in enumerate(low[:40]):
            add_order(s, f"late-{i}", cid, to_day, 900_000)
        pipeline.after_settings_change(s)
    finally:
        s.close()

    main.get_by_text("ランクの基準").click()
    box = main.locator("[data-testid='stNumberInput'] input").last  # the lowest rank's threshold, one yen up
    box.fill(str(int(box.input_value()) + 1))
    box.press("Enter")
    for _ in range(600):
        after = int(promoted.inner_text().split("\n")[-1].replace(",", "").rstrip("人"))
        if after != before:
            break
        page.wait_for_timeout(100)
    wait_idle(page)
    assert after > before  # customers the new orders lifted into a higher rank
