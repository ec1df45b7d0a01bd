"""施策の効果 in a real browser: the sample shop's past campaigns, charts, a result-file upload and a CSV download (screenshots)."""

from __future__ import annotations

import pytest

from crm_core.db import Store
from crm_core.sample.campaigns import load_sample_campaigns
from crm_core.sample.load import load_sample
from tests.e2e.browser import Server, goto, shot, wait_idle

CHART = "[data-testid='stVegaLiteChart']"


def pick_campaign(page, text: str) -> None:
    """Choose a campaign in 「詳しく見る施策」 by typing part of its name."""
    box = page.locator("[data-testid='stMain'] [data-testid='stSelectbox']").first
    box.locator("input").click()
    page.keyboard.type(text)
    page.get_by_role("option").filter(has_text=text).first.click()
    wait_idle(page)


@pytest.fixture()
def sample_server(tmp_path):
    store = Store(tmp_path / "crm.duckdb")
    load_sample(store)
    load_sample_campaigns(store)
    # The customer id of one LINE recipient of campaign 4 (for the upload below).
    customer = store.scalar(
        "SELECT customer_id FROM campaign_recipients WHERE campaign_id = 4 AND NOT holdout ORDER BY customer_id LIMIT 1")
    store.close()
    srv = Server(tmp_path)
    srv.customer = customer
    yield srv
    srv.stop()


def test_results_page_with_sample_campaigns(sample_server, page, tmp_path):
    goto(page, sample_server, "/results")
    main = page.locator("[data-testid='stMain']")
    main.get_by_text("📈 施策の効果").wait_for()
    main.get_by_text("施策一覧").first.wait_for()
    page.locator(f"{CHART} canvas, {CHART} svg").first.wait_for()
    main.get_by_text("ラストタッチ").first.wait_for()  # count() alone does not wait for the page to draw it
    assert main.get_by_text("ラストタッチ").count() >= 1
    page.wait_for_timeout(800)
    shot(page, "results_overview")

    # The dormant-customer coupon campaign: a real effect.
    main.get_by_text("詳しく見る施策").wait_for()
    pick_campaign(page, "休眠")
    main.locator("[data-testid='stAlert']").filter(has_text="効果あり").first.wait_for()
    main.locator(CHART).nth(3).wait_for()  # the charts appear one after another; the alert says nothing about the 4th
    assert main.locator(CHART).count() >= 4
    page.wait_for_timeout(800)
    shot(page, "results_effect")
    for i, name in ((0, "results_lift"), (2, "results_charts"), (4, "results_funnel_variants")):
        main.locator(CHART).nth(i).scroll_into_view_if_needed()
        page.wait_for_timeout(400)
        shot(page, name)

    # Downloads: the group table as UTF-8 CSV with a BOM.
    with page.expect_download() as info:
        main.get_by_role("button", name="グループ別の集計をダウンロード（CSV）").click()
    data = (tmp_path / "groups.csv")
    info.value.save_as(data)
    raw = data.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and "グループ" in raw.decode("utf-8-sig")
    wait_idle(page)  # a download button reruns the script
    page.wait_for_timeout(500)

    # Upload a result file for the marathon campaign.
    pick_campaign(page, "マラソン")
    main.get_by_role("heading", name="お買い物マラソン前の予告（LINE）").wait_for()
    main.get_by_text("配信結果（到達・開封・クリック）を取り込む").click()
    upload = tmp_path / "line_results.csv"
    upload.write_text(f"顧客ID,配信,開封,クリック\n{sample_server.customer},1,1,1\nNOPE,1,0,0\n", encoding="utf-8")
    main.locator("[data-testid='stFileUploaderDropzone'] input[type='file']").set_input_files(str(upload))
    wait_idle(page)
    main.get_by_role("button", name="取り込む").click()
    wait_idle(page)
    main.get_by_text("1人の配信結果を保存しました").wait_for()
    shot(page, "results_upload")
