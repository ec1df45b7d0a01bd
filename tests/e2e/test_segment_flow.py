"""Build a two-condition segment in a real browser and read the live count."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from crm_core.audience import segments as S
from crm_core.db import Store
from crm_core.sample.load import load_sample
from tests.e2e.browser import Server, goto, shot, wait_idle

DORMANT = {"field": "recency_days", "op": "gte", "value": 90}
REPEAT = {"field": "orders", "op": "gte", "value": 2}


@pytest.fixture()
def shop(tmp_path):
    """A server on the 300-customer sample shop, with the counts the page must show."""
    store = Store(tmp_path / "crm.duckdb")
    load_sample(store, customers=300)
    expected = {
        "one": S.count(store, {"all": [DORMANT]}),
        "two": S.count(store, {"all": [DORMANT, REPEAT]}),
        "either": S.count(store, {"any": [DORMANT, REPEAT]}),
    }
    store.close()
    assert 0 < expected["two"] < expected["one"] < expected["either"]
    srv = Server(tmp_path)
    yield srv, expected
    srv.stop()


def count_metric(page):
    return page.locator("[data-testid='stMetric']").filter(has_text="該当顧客数")


def test_two_condition_segment_shows_the_count(shop, page):
    server, expected = shop
    goto(page, server, "/segments")
    page.get_by_text("🎯 セグメント").first.wait_for()
    expect(count_metric(page)).to_contain_text("人")  # every customer before any condition

    page.get_by_role("button", name="＋ 条件を追加").first.click()
    wait_idle(page)
    expect(page.get_by_text("最終購入から90日以上").first).to_be_visible()
    expect(count_metric(page)).to_contain_text(f"{expected['one']:,}人")

    page.get_by_role("button", name="＋ 条件を追加").first.click()
    wait_idle(page)
    fields = page.get_by_role("combobox", name="項目")
    expect(fields).to_have_count(2)
    fields.nth(1).click()
    page.get_by_role("option", name="購入実績｜購入回数", exact=True).click()
    wait_idle(page)

    expect(page.get_by_text("最終購入から90日以上 かつ 購入回数2回以上").first).to_be_visible()
    expect(count_metric(page)).to_contain_text(f"{expected['two']:,}人")
    shot(page, "segment_two_conditions")

    # switch AND to OR: the count follows at once
    page.get_by_text("いずれかの条件を満たす（または）").first.click()
    wait_idle(page)
    expect(count_metric(page)).to_contain_text(f"{expected['either']:,}人")
    expect(page.get_by_text("最終購入から90日以上 または 購入回数2回以上").first).to_be_visible()


def test_a_download_gives_the_store_back(shop, page, tmp_path):
    """The CSV is made when the button is pressed, outside any page run: it must not leave the store open.

    A command-line import or the worker needs its turn right after a marketer's download.
    """
    server, expected = shop
    goto(page, server, "/segments")
    page.get_by_text("🎯 セグメント").first.wait_for()
    wait_idle(page)
    page.get_by_text("⬇️ 書き出し").click()
    wait_idle(page)
    with page.expect_download() as info:
        page.locator(".st-key-seg_download_csv button").click()
    data = Path(info.value.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and data.count(b"\n") >= 2  # UTF-8 BOM, a header and customers
    wait_idle(page)
    writer = Store(tmp_path / "crm.duckdb", wait=5)  # the worker's turn: StoreBusy while the console holds the file
    try:
        assert writer.scalar("SELECT count(*) FROM customer_model") > 0
    finally:
        writer.close()
