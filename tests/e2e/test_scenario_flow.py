"""シナリオ in a real browser: switch the サンクス preset on and see a day's dry run (screenshot)."""

from __future__ import annotations

import datetime as dt

from crm_core import opsdb
from crm_core.db import Store
from crm_core.scenarios import engine
from tests.e2e.browser import Server, goto, shot, wait_idle
from tests.sample_store import sample_db


def test_switch_thanks_on_and_see_the_dry_run(tmp_path, page):
    path = sample_db(tmp_path / "crm.duckdb")
    store = Store(path)
    with opsdb.connect(opsdb.ops_path(path)) as ops:
        day = max((dt.date(2026, 10, d) for d in range(1, 32)),
                  key=lambda d: sum(r["state"] == "queued" for r in engine.plan(store, ops, d, names=["thanks"]).rows))
        expected = sum(r["state"] == "queued" for r in engine.plan(store, ops, day, names=["thanks"]).rows)
    store.close()
    srv = Server(tmp_path)
    try:
        goto(page, srv, "/scenarios")
        main = page.locator("[data-testid='stMain']")
        main.get_by_text("🔁 シナリオ（ステップ配信）").wait_for()
        main.get_by_text("オンになっているシナリオがありません").wait_for()
        page.locator(".st-key-scenario_on_thanks label").click()
        main.get_by_text("「サンクス（初回購入）」をオンにしました。").wait_for()
        # the date field is three spin buttons (year / month / day): type the digits, then leave the field
        for part, value in (("year", f"{day.year}"), ("month", f"{day.month:02d}"), ("day", f"{day.day:02d}")):
            field = page.locator(f".st-key-scenario_day [data-type='{part}']")
            field.click()
            field.press_sequentially(value, delay=50)
        main.get_by_text("この日だれに何が届くか").click()
        page.wait_for_timeout(500)
        wait_idle(page)
        main.get_by_text(f"{day.year}年{day.month}月{day.day}日に送るメッセージ").wait_for()
        metric = page.locator("[data-testid='stMetricValue']").first
        assert metric.inner_text().strip() == f"{expected:,}通"
        shot(page, "scenarios_dry_run")
    finally:
        srv.stop()


def test_switch_winback_on_and_see_tomorrows_dry_run(tmp_path, page):
    """The page opens on tomorrow: switching a preset on shows at once who gets what tomorrow."""
    from crm_core import clock

    path = sample_db(tmp_path / "crm.duckdb")
    tomorrow = clock.today() + dt.timedelta(days=1)
    store = Store(path)
    with opsdb.connect(opsdb.ops_path(path)) as ops:
        expected = engine.dry_run(store, ops, tomorrow, names=["winback"])
    store.close()
    srv = Server(tmp_path)
    try:
        goto(page, srv, "/scenarios")
        main = page.locator("[data-testid='stMain']")
        main.get_by_text("オンになっているシナリオがありません").wait_for()
        page.locator(".st-key-scenario_on_winback label").click()
        main.get_by_text("「休眠復帰（90日・180日購入なし）」をオンにしました。").wait_for()
        main.get_by_text(f"{tomorrow.year}年{tomorrow.month}月{tomorrow.day}日に送るメッセージ").wait_for()
        metric = page.locator("[data-testid='stMetricValue']").first
        assert metric.inner_text().strip() == f"{expected['total']:,}通"
        if expected["total"]:
            main.get_by_text("休眠復帰（90日・180日購入なし） ステップ", exact=False).first.wait_for()
        shot(page, "scenarios_tomorrow")
    finally:
        srv.stop()


def test_open_an_editor_change_the_time_and_save(tmp_path, page):
    """The 「編集」 expander runs its form only once opened: a click opens it, the edit is saved and shown."""
    path = sample_db(tmp_path / "crm.duckdb")
    srv = Server(tmp_path)
    try:
        goto(page, srv, "/scenarios")
        main = page.locator("[data-testid='stMain']")
        main.get_by_text("🔁 シナリオ（ステップ配信）").wait_for()
        assert page.locator(".st-key-scenario_thanks_0_slot").count() == 0  # closed: not drawn
        page.locator(".st-key-scenario_editor_thanks summary").click()
        slot = page.locator(".st-key-scenario_thanks_0_slot input")
        slot.wait_for()
        slot.fill("19:45")
        page.locator(".st-key-scenario_save_thanks button").click()
        main.get_by_text("「サンクス（初回購入）」の変更を保存しました。").wait_for()
        wait_idle(page)
        assert page.locator(".st-key-scenario_thanks_0_slot input").input_value() == "19:45"  # still open
        shot(page, "scenarios_editor")
    finally:
        srv.stop()
    with opsdb.connect(opsdb.ops_path(path)) as ops:
        from crm_core.scenarios import definitions as D

        assert D.get(ops, "thanks").steps[0].slot == "19:45"
