"""An approved campaign goes out at its time by itself: approval queues the worker's job, and a run that ends early
(not yet due, quiet hours) queues the next one (issue 14, flow step 4)."""

from __future__ import annotations

import datetime as dt
from contextlib import closing

import pytest

from crm_core import clock, jobs, opsdb
from crm_core.messaging.sends import load_settings
from crm_core.results import live
from crm_core.service.context import JobContext
from crm_core.service.kinds import KINDS
from tests.live_support import JST, LINE_RULE, NOON, TEMPLATE, make_store
from tests.servers.customers import LINE_USER
from tests.servers.line_mock import LineMock

TOKEN = "schedule-token"


@pytest.fixture()
def shop(tmp_path, monkeypatch):
    store = make_store(tmp_path / "crm.duckdb", line_users=30)
    ops = live.open_ops(store)
    with LineMock(TOKEN) as mock:
        monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
        monkeypatch.setenv("LINE_API_BASE_URL", mock.url)
        yield store, ops, mock, tmp_path
    ops.close()
    store.close()


def _approve(store, ops, mock, send_at):
    out = live.create(store, ops, name="冬のセール", channel="line", rule=LINE_RULE, template=TEMPLATE, actor="hanako",
                      now=NOON, send_at=send_at)
    cid = out["campaign_id"]
    settings = load_settings({}, {"CRM_TEST_RECIPIENTS": LINE_USER, "LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": mock.url})
    assert live.test_send(store, ops, cid, settings=settings, recipient=LINE_USER, actor="hanako").ok
    live.approve(ops, cid, by="hanako", confirm_count=out["funnel"]["will_receive"], now=NOON)
    return cid


def _send_jobs(ops):
    return [(j["status"], j["run_at"]) for j in ops.execute("SELECT status, run_at FROM jobs WHERE kind = 'campaign_send' ORDER BY job_id")]


def _run_due_job(ops, tmp, at):
    job = jobs.claim(ops, "test-worker", kinds=["campaign_send"])
    assert job is not None
    ctx = JobContext(job=job, db_path=str(tmp / "crm.duckdb"), ops_path=opsdb.ops_path(tmp / "crm.duckdb"), inbox=tmp / "inbox")
    with clock.frozen(at):
        result = KINDS["campaign_send"].run(ctx)
    jobs.finish(ops, job, result=result, summary=result["summary"])
    return result


def _utc(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def test_approval_queues_the_send_at_its_time(shop):
    store, ops, mock, tmp = shop
    tomorrow = NOON + dt.timedelta(days=1)
    _approve(store, ops, mock, tomorrow)
    assert _send_jobs(ops) == [("queued", _utc(tomorrow))]


def _noon_after_today() -> dt.datetime:
    """Noon (JST) of the day after the real today: the job queue claims on the real clock, so a time that must not be
    due yet has to lie in the real future (NOON + 1 day became due on 2026-12-04 and the queue claimed that job)."""
    real_tomorrow = dt.datetime.now(JST).date() + dt.timedelta(days=1)
    return max(NOON + dt.timedelta(days=1), dt.datetime.combine(real_tomorrow, dt.time(12, 0), tzinfo=JST))


def test_a_run_before_the_time_queues_the_next_one_once(shop):
    store, ops, mock, tmp = shop
    tomorrow = _noon_after_today()
    cid = _approve(store, ops, mock, tomorrow)
    jobs.enqueue_on(ops, "campaign_send", {"campaign_id": cid})  # someone asks for it now (runs before its time)
    store.close()
    result = _run_due_job(ops, tmp, NOON)
    assert result["status"] == "approved" and mock.multicasts == []
    assert _send_jobs(ops) == [("queued", _utc(tomorrow)), ("done", _send_jobs(ops)[1][1])]


def test_approved_late_in_the_evening_goes_at_eight_with_nobody_pressing_send(shop):
    store, ops, mock, tmp = shop
    cid = _approve(store, ops, mock, NOON)  # due now: the job is queued for now
    store.close()
    evening = dt.datetime(2026, 12, 3, 21, 30, tzinfo=JST)  # the worker only gets to it at 21:30
    result = _run_due_job(ops, tmp, evening)
    assert result["status"] in ("approved", "waiting") and mock.multicasts == []
    eight = dt.datetime(2026, 12, 4, 8, 0, tzinfo=JST)
    assert _send_jobs(ops)[-1] == ("queued", _utc(eight))
    # at 08:00 the queued job sends
    ops.execute("UPDATE jobs SET run_at = ? WHERE status = 'queued'", [_utc(dt.datetime.now(dt.UTC))])
    result = _run_due_job(ops, tmp, eight)
    assert result["status"] == "done"
    assert len(mock.delivered_to()) == live.status(ops, cid)["ledger"]["sent"] > 0
    assert [s for s, _ in _send_jobs(ops)] == ["done", "done"]


def test_resume_queues_the_send_again(shop):
    store, ops, mock, tmp = shop
    cid = _approve(store, ops, mock, NOON + dt.timedelta(days=1))
    live.pause(ops, cid, "hanako")
    with closing(opsdb.connect(opsdb.ops_path(tmp / "crm.duckdb"))) as con:
        con.execute("DELETE FROM jobs")
    live.resume(ops, cid, "hanako", now=NOON)
    assert _send_jobs(ops) == [("queued", _utc(NOON + dt.timedelta(days=1)))]
