"""The sale calendar in a real browser: a saved plan on the timeline, last year's sales, the cost chart (screenshots)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_core.db import Store
from crm_core.sample.load import load_sample
from tests.e2e.browser import Server, goto, shot, wait_idle

CHART = "[data-testid='stVegaLiteChart']"


@pytest.fixture()
def sample_server(tmp_path):
    store = Store(tmp_path / "crm.duckdb")
    load_sample(store, customers=300)
    store.close()
    srv = Server(tmp_path)
    yield srv
    srv.stop()


def test_calendar_page_with_a_saved_plan(sample_server, page):
    goto(page, sample_server, "/calendar")
    main = page.locator("[data-testid='stMain']")
    main.get_by_text("📅 販促カレンダー").wait_for()
    page.locator(f"{CHART} canvas, {CHART} svg").first.wait_for()

    main.get_by_role("tab", name="キャンペーン計画").click()
    main.get_by_text("提案された配信").wait_for()
    main.get_by_role("button", name="この計画を保存").click()
    wait_idle(page)
    main.get_by_text("を保存しました。").first.wait_for()

    # the planned sends now sit on the timeline (◆ in the 配信予定 lane) next to the events
    main.get_by_role("tab", name="カレンダー").click()
    page.locator(f"{CHART} canvas, {CHART} svg").first.wait_for()
    main.get_by_text("昨年の同じ時期の売上とイベント").wait_for()
    main.locator(CHART).nth(1).wait_for()  # on a loaded machine the second chart can draw a moment after its heading
    assert main.locator(CHART).count() >= 2  # the calendar and last year's sales
    page.wait_for_timeout(500)
    shot(page, "calendar_view")
    main.locator(CHART).nth(1).scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    shot(page, "calendar_last_year_sales")

    main.get_by_role("tab", name="キャンペーン計画").click()
    main.get_by_text("保存した計画").wait_for()
    shot(page, "calendar_plan")

    main.get_by_role("tab", name="配信数と費用").click()
    main.get_by_text("LINE公式アカウントのプラン").wait_for()
    page.wait_for_timeout(500)
    shot(page, "calendar_cost")

    # the ICS file is built when the button is pressed (not on every rerun): it holds the saved plan's sends
    main.get_by_role("tab", name="書き出し").click()
    with page.expect_download() as info:
        main.get_by_role("button", name="カレンダー（ICS）をダウンロード").click()
    download = info.value
    wait_idle(page)  # pressing a download button reruns the page
    assert download.suggested_filename.endswith(".ics")
    text = Path(download.path()).read_text(encoding="utf-8")
    assert text.startswith("BEGIN:VCALENDAR") and "END:VCALENDAR" in text
    assert text.count("BEGIN:VEVENT") >= 2
    assert "UID:send-" in text  # the saved plan's sends are in it, not only the sale events
    # so are the two CSV files (UTF-8 with BOM for Excel): the saved plan's sends and the events
    for button, rows_at_least in (("配信計画（CSV）をダウンロード", 2), ("イベント一覧（CSV）をダウンロード", 2)):
        with page.expect_download() as info:
            main.get_by_role("button", name=button).click()
        data = Path(info.value.path()).read_bytes()
        wait_idle(page)
        assert data.startswith(b"\xef\xbb\xbf")
        assert len(data.decode("utf-8-sig").strip().splitlines()) >= rows_at_least + 1
    # downloading neither reruns the page nor sends the marketer back to the first tab
    assert main.get_by_role("tab", name="書き出し").get_attribute("aria-selected") == "true"
