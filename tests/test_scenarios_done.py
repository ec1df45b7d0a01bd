"""Issue 15 "done when": from a fresh sample shop, switching on サンクス and F2 on the scenario page and running the
worker for simulated days sends the expected messages to the LINE stand-in and the SMTP sink, and the pages show
their results.

The clock is injected with :func:`crm_core.clock.frozen` (the worker job reads it); the channels come from the
send settings in the environment, as on a real install.
"""

from __future__ import annotations

import datetime as dt
from contextlib import closing

from streamlit.testing.v1 import AppTest

from crm_core import clock, jobs, opsdb
from crm_core.db import Store
from crm_core.scenarios import engine, report
from crm_core.service.worker import Worker
from tests.sample_store import sample_db
from tests.servers.line_mock import LineMock
from tests.servers.smtp_sink import SmtpSink
from tests.test_page_scenarios import PAGE, ROOT

JST = dt.timezone(dt.timedelta(hours=9))
TOKEN = "done-when-token"  # noqa: S105 - a test token for the LINE stand-in
DAYS = [dt.date(2026, 10, d) for d in range(1, 32)]


def test_thanks_and_f2_switched_on_and_the_worker_run_for_simulated_days(tmp_path, monkeypatch):
    path = sample_db(tmp_path / "crm.duckdb")
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    monkeypatch.delenv("CRM_OPS_DB", raising=False)
    ops_path = opsdb.ops_path(path)
    # switched on on the page
    page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    page.run()
    page.switch_page(PAGE).run()
    for name in ("thanks", "f2"):
        page.toggle(key=f"scenario_on_{name}").set_value(True).run()
        assert not page.exception, page.exception
    with LineMock(TOKEN) as line, SmtpSink() as smtp:
        for key, value in {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": line.url, "SMTP_HOST": smtp.host,
                           "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false", "SMTP_FROM": "shop@example.jp",
                           "CRM_UNSUBSCRIBE_SECRET": "unsubscribe-secret-for-tests-0123456789",
                           "CRM_PUBLIC_URL": "https://crm.example.jp"}.items():
            monkeypatch.setenv(key, value)
        worker = Worker(path, inbox=tmp_path / "inbox", settle=0)
        expected: set[tuple[str, str, str]] = set()
        for day in DAYS:
            noon, evening = (dt.datetime.combine(day, dt.time(h), tzinfo=JST) for h in (9, 20))
            with closing(Store(path)) as store, closing(opsdb.connect(ops_path)) as ops:
                dry = engine.dry_run(store, ops, day)  # 「この日だれに何が届くか」 before the day's runs
            expected |= {(r["scenario"], r["channel"], r["address"]) for r in dry["rows"] if r["state"] == "queued"}
            for when in (noon, evening):  # the hourly runs: before the send slots nothing goes out, after them everything
                with clock.frozen(when):
                    jobs.enqueue(ops_path, "scenario_run", {}, dedupe_key=f"sim-{when.isoformat()}")
                    assert worker.tick() is not None
        with closing(opsdb.connect(ops_path)) as ops:
            failed = [h for h in jobs.history(ops_path) if h["outcome"] != "done"]
            assert not failed, failed
            sent = {(r[0], r[1], r[2]) for r in ops.execute(
                "SELECT b.scenario, l.channel, l.address FROM send_ledger_now l JOIN scenario_batches b USING (campaign_id)"
                " WHERE l.state = 'sent'")}
            assert ops.execute("SELECT count(*) FROM send_ledger_now WHERE state <> 'sent'").fetchone()[0] == 0
        assert sent == expected
        assert {s for s, _, _ in sent} == {"thanks", "f2"} and {c for _, c, _ in sent} == {"line", "email"}
        assert sorted(u for u, _, _ in line.deliveries) == sorted(a for _, c, a in sent if c == "line")
        assert sorted(m["To"] for m in smtp.messages) == sorted(a for _, c, a in sent if c == "email")
    # the pages show their results: the scenario page and 施策の効果, the same numbers
    with closing(Store(path)) as store, closing(opsdb.connect(ops_path)) as ops:
        want = {name: report.results(store, ops, name)["steps"][0] for name in ("thanks", "f2")}
    assert want["thanks"]["sent"] > 0 and want["f2"]["sent"] > 0
    for target in (PAGE, "pages/results/results.py"):
        page.switch_page(target).run()
        assert not page.exception, page.exception
        shown = next(df.value for df in page.dataframe if "シナリオ" in df.value.columns and "粗利" in df.value.columns)
        for name, title in (("thanks", "サンクス（初回購入）"), ("f2", "F2促進（初回購入30日後・クーポン付き）")):
            row = shown[shown["シナリオ"] == title].iloc[0]
            assert row["送信"] == f"{want[name]['sent']:,}人" and row["比較用"] == f"{want[name]['held_out']:,}人"
            assert row["状態"] == "オン"
