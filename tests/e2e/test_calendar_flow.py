"""The sale calendar in a real browser: a saved plan on the timeline, last year's sales, the cost chart (screenshots)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from crm_core.db import Store
from crm_core.sample.load import load_sample
from tests.e2e.browser import Server, goto, rerun, shot, wait_idle

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


def test_the_proposal_reruns_on_its_own_and_gives_the_store_back(sample_server, page):
    """Choosing the audience of a proposal reruns only the proposal (a fragment), outside the page run that
    opens and closes the store: the fragment's own run must close it too, or the worker and command-line
    imports wait for a marketer who changed a select box.  Saving then reruns the whole page."""
    goto(page, sample_server, "/calendar")
    main = page.locator("[data-testid='stMain']")
    main.get_by_role("tab", name="キャンペーン計画").click()
    main.get_by_text("提案された配信").wait_for()
    reach = main.get_by_text("対象者数:").first
    before = reach.inner_text()
    assert "全員" in before

    box = main.get_by_role("combobox", name="配信対象（セグメント）", exact=True)
    box.click()
    page.get_by_role("option", name="プリセット: 休眠（90日以上購入なし）").click()
    wait_idle(page)
    expect(reach).not_to_have_text(before)
    assert "90日以上" in reach.inner_text()

    writer = Store(sample_server.db, wait=5)  # the worker's turn: StoreBusy while the console holds the file
    try:
        assert writer.scalar("SELECT count(*) FROM planned_sends") == 0
    finally:
        writer.close()

    main.get_by_role("button", name="この計画を保存").click()
    wait_idle(page)
    main.get_by_text("を保存しました。").first.wait_for()  # the flash at the top: the whole page ran again
    expect(main.get_by_text("保存した計画")).to_be_visible()
    assert main.locator(".st-key-cal_plan_pick").count() == 1  # the saved plan is listed for editing
    writer = Store(sample_server.db, wait=5)
    try:
        segments = [r[0] for r in writer.fetchall("SELECT DISTINCT segment FROM planned_sends")]
        assert len(segments) == 1 and "休眠（90日以上購入なし）" in segments[0]  # the audience chosen in the fragment
    finally:
        writer.close()


BAND_WORDS = {"楽天スーパーSALE", "スーパーSALE", "お買い物マラソン", "マラソン"}


def _chart_texts(page) -> tuple[list[dict], dict]:
    """The first chart's SVG texts naming a sale (band labels and legend entries) with their boxes, and the chart's box."""
    chart = page.locator(CHART).first
    chart.locator("svg text").first.wait_for()
    read = """el => [...el.querySelectorAll('svg text')].map(t => {
        const r = t.getBoundingClientRect();
        return {text: t.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom};
    })"""
    texts = chart.evaluate(read)
    for _ in range(50):  # the width is known after the first layout: read until two readings agree
        page.wait_for_timeout(300)
        again = chart.evaluate(read)
        if again == texts:
            break
        texts = again
    return [t for t in texts if t["text"] in BAND_WORDS], chart.bounding_box()


@pytest.mark.parametrize("width", [390, 1400])
def test_sale_names_on_the_calendar_never_overlap_or_run_off_the_chart(sample_server, browser, width):
    """On a phone the 3-month calendar wrote 「スーパーSALE」 over 「マラソン」 (labels sized for a 900 px chart) and
    cut the legend's 「お買い物マラソン」 at the screen's edge."""
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="ja-JP")
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        goto(page, sample_server, "/calendar")
        texts, box = _chart_texts(page)
        shot(page, f"calendar_{width}px")
    finally:
        context.close()
    assert {"楽天スーパーSALE", "お買い物マラソン"} <= {t["text"] for t in texts}  # the legend names both
    for t in texts:
        assert t["right"] <= box["x"] + box["width"] + 1, t
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            same_row = abs((a["top"] + a["bottom"]) / 2 - (b["top"] + b["bottom"]) / 2) < 5
            assert not (same_row and a["left"] < b["right"] and b["left"] < a["right"]), (a, b)
    if width == 1400:  # a laptop has room to name the sales on their bands as well as in the legend
        assert len(texts) > 2


def _texts(page, n: int = 2) -> list[list]:
    """The first ``n`` charts' SVG texts (title, axes, band labels, legends) with where they stand, once two
    readings agree (the view redraws after the data arrive)."""
    read = """el => [...el.querySelectorAll('svg text')].map(t => {
        const r = t.getBoundingClientRect();
        return [t.textContent, Math.round(r.left), Math.round(r.top)];
    })"""
    charts = [page.locator(CHART).nth(i) for i in range(n)]
    for chart in charts:
        chart.locator("svg text").first.wait_for()
    texts = [c.evaluate(read) for c in charts]
    for _ in range(50):
        page.wait_for_timeout(300)
        again = [c.evaluate(read) for c in charts]
        if again == texts:
            break
        texts = again
    return texts


def _kept(page, n: int = 2) -> list[bool]:
    return [page.locator(CHART).nth(i).locator("svg").first.evaluate("el => el.__kept === true") for i in range(n)]


def _choose(page, box: str, option: str) -> None:
    main = page.locator("[data-testid='stMain']")
    main.get_by_role("combobox", name=box, exact=True).click()
    rerun(page, page.get_by_role("option", name=option, exact=True).click)


def test_another_month_swaps_the_charts_data_and_reads_as_a_fresh_drawing(sample_server, page):
    """Choosing another month sends the two charts the same spec with other data, so the browser swaps the data of
    the charts it drew (no new Vega view: 50–120 ms each) — and what the marketer reads on them (title, days,
    bands, legends) is what a chart drawn afresh for that month shows."""
    import datetime as dt

    from crm_core import clock

    goto(page, sample_server, "/calendar")
    _texts(page)
    for i in range(2):
        page.locator(CHART).nth(i).locator("svg").first.evaluate("el => { el.__kept = true; }")
    today = clock.now().date()
    nxt = (today.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    _choose(page, "表示する最初の月", f"{nxt.year}年{nxt.month}月")
    swapped = _texts(page)
    assert _kept(page) == [True, True]  # the same views, their data swapped
    assert any(f"{nxt.year}年{nxt.month}月1日" in t[0] for t in swapped[0])
    assert any(f"日別売上（{nxt.year - 1}年{nxt.month}月1日" in t[0] for t in swapped[1])  # last year's same months

    _choose(page, "表示する期間", "1か月")  # another spec: new views ...
    _choose(page, "表示する期間", "3か月")  # ... and again, for the month chosen
    fresh = _texts(page)
    assert _kept(page) == [False, False]
    assert swapped == fresh


def test_an_edit_of_the_proposal_survives_a_look_at_the_calendar(sample_server, page):
    """Only the open tab runs, and Streamlit forgets an editor's edits when a run does not draw it: a coupon typed
    into a proposed send is still there after the marketer looked at the calendar, and it is what gets saved."""
    goto(page, sample_server, "/calendar")
    main = page.locator("[data-testid='stMain']")
    rerun(page, main.get_by_role("tab", name="キャンペーン計画").click)
    grid = main.locator("[data-testid='stDataFrame'] >> visible=true").first  # the proposal's editor
    _type_into_first_coupon(page, grid, "TABTEST")

    rerun(page, main.get_by_role("tab", name="カレンダー").click)  # only the open tab runs: the proposal is not drawn
    assert main.get_by_text("提案された配信").count() == 0
    rerun(page, main.get_by_role("tab", name="キャンペーン計画").click)
    rerun(page, main.get_by_role("button", name="この計画を保存").click)
    main.get_by_text("を保存しました。").first.wait_for()
    store = Store(sample_server.db, wait=5)
    try:
        coupons = [r[0] for r in store.fetchall("SELECT coupon FROM planned_sends ORDER BY send_at")]
    finally:
        store.close()
    assert "TABTEST" in coupons, coupons


def _type_into_first_coupon(page, grid, text: str) -> None:
    """Type ``text`` into the first proposed send's クーポン (the grid's last column) and wait for the proposal's rerun.

    The grid is a canvas: a double click opens a cell's editor.  On a busy machine the grid may still be laying out
    when it is first seen, so the click is placed once its box is steady, and the edit is tried again if no rerun
    followed (the click opened no editor, or another cell's)."""
    from playwright.sync_api import Error as PlaywrightError

    grid.wait_for()
    cell_editor = page.locator("textarea.gdg-input")
    for _attempt in range(4):
        box = grid.bounding_box()
        for _ in range(20):
            page.wait_for_timeout(200)
            again = grid.bounding_box()
            if again == box:
                break
            box = again
        page.mouse.dblclick(box["x"] + box["width"] - 60, box["y"] + 35 + 17)
        try:
            cell_editor.wait_for(timeout=5_000)
        except PlaywrightError:
            continue
        page.keyboard.type(text)
        try:
            rerun(page, lambda: page.keyboard.press("Enter"), timeout=20_000)  # the edit reruns the proposal
            return
        except PlaywrightError:
            page.keyboard.press("Escape")
    shot(page, "calendar_proposal_edit_failed")
    raise AssertionError("the proposal's coupon cell took no edit")


def test_a_new_event_being_typed_survives_a_look_at_the_calendar(sample_server, page):
    """The add-event fields were a form, whose typing lived in the browser and was dropped when another tab opened.
    The field typed last is left by clicking the tab itself (its text arrives with the run that opens the other tab).
    After adding, the fields are empty again in the browser too, not only on the server."""
    goto(page, sample_server, "/calendar")
    main = page.locator("[data-testid='stMain']")
    rerun(page, main.get_by_role("tab", name="イベント").click)
    name, note = main.get_by_placeholder("例: 秋の新作発売"), main.get_by_label("メモ（任意）")
    name.fill("冬の福袋予約")
    rerun(page, lambda: name.press("Tab"))
    note.fill("メルマガで告知")
    rerun(page, main.get_by_role("tab", name="カレンダー").click)  # leaves the note field and opens another tab
    assert main.get_by_placeholder("例: 秋の新作発売").count() == 0  # the events tab is not drawn
    rerun(page, main.get_by_role("tab", name="イベント").click)
    expect(name).to_have_value("冬の福袋予約")
    expect(note).to_have_value("メルマガで告知")

    rerun(page, main.get_by_role("button", name="イベントを追加").click)
    main.get_by_text("「冬の福袋予約」を追加しました。").wait_for()
    expect(name).to_have_value("")
    expect(note).to_have_value("")
    store = Store(sample_server.db, wait=5)
    try:
        assert store.fetchall("SELECT note FROM calendar_events WHERE name = '冬の福袋予約'") == [("メルマガで告知",)]
    finally:
        store.close()


def test_a_coupon_typed_into_the_proposal_survives_clicking_another_tab(sample_server, page):
    """The proposal's coupon field left by clicking another tab: its text arrives with the run that opens that tab
    (which does not draw the proposal), and is there when the marketer comes back."""
    goto(page, sample_server, "/calendar")
    main = page.locator("[data-testid='stMain']")
    rerun(page, main.get_by_role("tab", name="キャンペーン計画").click)
    coupon = main.get_by_label("クーポン（コードまたは名前）")
    coupon.fill("WINTER10")
    rerun(page, main.get_by_role("tab", name="配信頻度").click)
    rerun(page, main.get_by_role("tab", name="キャンペーン計画").click)
    expect(coupon).to_have_value("WINTER10")


def test_confirming_a_predicted_sale_shows_it_confirmed_in_the_choice_and_the_fields(sample_server, page):
    """After 「RMSで確認した日程として確定」 the browser kept showing the sale's former label (…・予測）) in the event
    choice, and the status field said 予測, so a later 「変更を保存」 undid the confirmation."""
    goto(page, sample_server, "/calendar")
    main = page.locator("[data-testid='stMain']")
    rerun(page, main.get_by_role("tab", name="イベント").click)
    choice = main.get_by_role("combobox", name="イベント")
    choice.click()
    option = page.get_by_role("option").filter(has_text="予測").filter(has_text="マラソン").first
    label = option.inner_text()
    rerun(page, option.click)
    expect(choice).to_have_value(label)
    rerun(page, main.get_by_role("button", name="RMSで確認した日程として確定").click)
    main.get_by_text("を確定にしました。").wait_for()
    expect(choice).to_have_value(label.replace("・予測）", "・確定）"))
    expect(main.locator("[class*='st-key-cal_edit_status'] input:checked")).to_have_count(1)
    assert main.locator("[class*='st-key-cal_edit_status'] label:has(input:checked)").inner_text().strip() == "確定"
