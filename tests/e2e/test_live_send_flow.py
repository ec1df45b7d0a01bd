"""配信（本番送信）on the sample shop in a real browser: create → test send → approve (typing the count) → the real
worker process sends → 施策の効果 shows the campaign with its recipients and holdout, and LINE's statistics
(withheld values as withheld).  Screenshots at 1280 px and 390 px of each step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from crm_core import jobs, opsdb
from crm_core.db import Store
from crm_core.messaging.channels.line_bulk import aggregation_unit
from crm_core.messaging.templates import save_shop_profile
from crm_core.results import live
from crm_core.sample.load import load_sample
from tests.e2e.browser import ROOT, Server, goto, shot, wait_idle
from tests.servers.customers import LINE_USER, shop_profile
from tests.servers.line_mock import LineMock
from tests.servers.smtp_sink import SmtpSink

TOKEN = "e2e-live-token"
ME = "marketer@example.jp"
MAIN = "[data-testid='stMain']"


@pytest.fixture()
def shop(tmp_path):
    store = Store(tmp_path / "crm.duckdb")
    load_sample(store, customers=300)
    save_shop_profile(store, shop_profile())  # the sample's own identity can never send (issue 11 item 6)
    store.close()
    with LineMock(TOKEN) as line, SmtpSink() as smtp:
        env = {
            "LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
            "LINE_API_BASE_URL": line.url,
            "SMTP_HOST": smtp.host,
            "SMTP_PORT": str(smtp.port),
            "SMTP_FROM": "shop@natural.example.jp",
            "SMTP_STARTTLS": "false",
            "CRM_TEST_RECIPIENTS": f"{LINE_USER},{ME}",
        }
        srv = Server(tmp_path, env=env)
        try:
            yield srv, line, smtp, env
        finally:
            srv.stop()


def both_widths(page, name: str, at=None) -> None:
    """A desktop (1280 px) and a phone (390 px) screenshot of the same state, scrolled to ``at`` (a locator)."""
    for width, height in ((1280, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(500)
        if at is not None:
            at.scroll_into_view_if_needed()
            page.wait_for_timeout(300)
        shot(page, f"live_{name}_{width}")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.wait_for_timeout(400)


def choose(page, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option").filter(has_text=option).first.click()


def run_worker(server: Server, env: dict[str, str]) -> str:
    """The real worker process, until no job is due (``--once``)."""
    out = subprocess.run(
        [sys.executable, "-m", "crm_core", "worker", "--db", str(server.db), "--inbox", str(Path(server.db).parent / "inbox"),
         "--once", "--poll", "0.2"],
        cwd=ROOT, env={**os.environ, **env, "CRM_NO_SAMPLE": "1"}, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_create_test_send_approve_send_and_see_the_results(shop, page):
    server, line, smtp, env = shop
    page.set_viewport_size({"width": 1280, "height": 900})
    goto(page, server, "/live_send")
    main = page.locator(MAIN)
    main.get_by_text("まだ配信がありません").wait_for()
    both_widths(page, "1_empty")

    # -- 1. create ------------------------------------------------------------------------
    main.get_by_label("配信名").fill("冬のセール告知（LINE）")
    choose(page, "送る相手（セグメント）", "LINE連携ありのお客様")
    choose(page, "テンプレート", "新商品のご案内")
    main.get_by_text("21:00〜08:00は送らない（おすすめ）").click()  # the test runs at any hour
    main.get_by_role("button", name="配信を作成して人数を確認").click()
    wait_idle(page)
    main.get_by_text("届く人数").first.wait_for()
    funnel = main.locator("[data-testid='stDataFrame']").first
    funnel.wait_for()
    with live.open_ops(str(server.db)) as ops:
        state = live.list_live(ops)[0]
    n = int(state["funnel"]["will_receive"])
    held = int(state["funnel"]["holdout"])
    assert n > 0 and held > 0
    both_widths(page, "2_created", main.get_by_role("heading", name="届く人数"))

    # -- 2. test send ---------------------------------------------------------------------
    approve = main.get_by_role("button", name="承認する")
    assert approve.is_disabled()
    main.get_by_role("button", name="この内容でテスト送信").click()
    main.get_by_text("この内容でテスト送信済みです").wait_for()
    wait_idle(page)
    assert [p["body"]["to"] for p in line.pushes] == [LINE_USER] and line.errors == []
    both_widths(page, "3_tested", main.get_by_text("この内容でテスト送信済みです"))

    # -- 3. approve, typing the count ------------------------------------------------------
    count = main.get_by_role("spinbutton", name=f"確認のため、送信する人数（{n:,}）を入力してください")
    count.fill(str(n - 1))
    count.press("Enter")
    wait_idle(page)
    main.get_by_role("button", name="承認する").click()
    main.get_by_text(f"送信する人数（{n:,}人）を数字で入力").first.wait_for()
    wait_idle(page)
    count = main.get_by_role("spinbutton", name=f"確認のため、送信する人数（{n:,}）を入力してください")
    count.fill(str(n))
    count.press("Enter")
    wait_idle(page)
    main.get_by_role("button", name="承認する").click()
    main.get_by_text("承認しました（").wait_for()
    main.get_by_text("バックグラウンドの処理（ワーカー）が送信します").first.wait_for()
    wait_idle(page)
    both_widths(page, "4_approved", main.get_by_text("承認しました（"))

    # -- 4. the worker sends (a real process) -----------------------------------------------
    run_worker(server, env)
    delivered = line.delivered_to("/v2/bot/message/multicast")
    assert len(delivered) == n and set(delivered.values()) == {1} and line.errors == []
    main.get_by_text("送信が完了しました").first.wait_for(timeout=30_000)  # the progress follows by itself
    wait_idle(page)
    both_widths(page, "5_sent", main.get_by_text("送信が完了しました").first)

    # -- 5. LINE's statistics, fetched by the worker -----------------------------------------
    with live.open_ops(str(server.db)) as ops:
        cid = live.list_live(ops)[0]["campaign_id"]
    line.unit_stats[aggregation_unit(cid)] = {"uniqueImpression": 23, "uniqueClick": None}
    jobs.enqueue(opsdb.ops_path(server.db), "line_stats", {})
    run_worker(server, env)

    # -- 6. 施策の効果 shows it -------------------------------------------------------------------
    main.get_by_role("link", name="施策の効果を見る").click()
    wait_idle(page)
    main.get_by_text("施策一覧").first.wait_for()
    box = main.locator("[data-testid='stSelectbox']").filter(has_text="詳しく見る施策")
    box.locator("input").click()
    page.keyboard.type("冬のセール告知")
    page.get_by_role("option").filter(has_text="冬のセール告知").first.click()
    wait_idle(page)
    main.get_by_role("heading", name="冬のセール告知（LINE）").wait_for()
    recipients = main.locator("[data-testid='stMetric']").filter(has_text="配信した人数")
    assert f"{n:,}人" in recipients.inner_text()
    groups = main.locator("[data-testid='stDataFrame']").filter(has_text="送らない")
    groups.first.wait_for()  # count() does not wait: on a loaded machine the table drew after the metric (CI, 2026-12-04)
    assert groups.count() >= 1
    stats = main.locator("[data-testid='stDataFrame']").filter(has_text="LINE（API）")
    stats.first.wait_for()
    assert "非公開" in stats.first.text_content() and "23" in stats.first.text_content()
    both_widths(page, "6_results", recipients)
    both_widths(page, "7_results_line_stats", main.get_by_text("開封・クリック（配信元の集計レポート）"))
