"""Large LINE sends as an uploaded audience + narrowcast inside a campaign send, exactly once.

The real line-bot-sdk talks to the LINE stand-in, which validates every request
(messaging, audience) against LINE's OpenAPI files and reports narrowcast
progress as LINE does (``failed`` with errorCode 4 below 50 recipients).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crm_core.messaging import ledger as L
from crm_core.messaging.channels.line_bulk import LineBulk
from crm_core.messaging.delivery import channel_objects
from crm_core.messaging.sends import load_settings
from crm_core.results import live
from tests.live_support import LINE_RULE, LIVE_TOKEN, NOON, TEMPLATE
from tests.servers.customers import LINE_USER

pytestmark = pytest.mark.timeout(300)
TOKEN = LIVE_TOKEN  # the stand-in of the shared fixture ``line`` (tests/results/conftest.py)
NARROWCAST = "/v2/bot/message/narrowcast"
MULTICAST = "/v2/bot/message/multicast"
ROOT = Path(__file__).resolve().parents[2]


def _approved(store, ops, mock, accept_overage=False):
    out = live.create(store, ops, name="大型セール", channel="line", rule=LINE_RULE, template=TEMPLATE, actor="hanako", now=NOON,
                      holdout=0.1, quiet_hours="off", send_at=NOON)
    cid = out["campaign_id"]
    settings = load_settings({}, {"CRM_TEST_RECIPIENTS": LINE_USER, "LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": mock.url})
    assert live.test_send(store, ops, cid, settings=settings, recipient=LINE_USER, actor="hanako").ok
    live.approve(ops, cid, by="hanako", confirm_count=out["funnel"]["will_receive"], accept_overage=accept_overage)
    return cid, out["funnel"]["will_receive"]


def _bulk(mock):
    return LineBulk(TOKEN, mock.url, sleep=lambda s: None)


def _recipients(ops, cid) -> set[str]:
    return {r[0] for r in ops.execute("SELECT address FROM send_ledger_now WHERE campaign_id = ? AND state IN ('queued', 'sending', 'sent')"
                                      " AND channel = 'line'", [cid])}


def test_a_large_send_goes_as_one_audience_and_one_narrowcast_exactly_once(env, line):
    store, ops = env
    cid, n = _approved(store, ops, line)
    res = live.run(ops, cid, store=store, line=_bulk(line), clock=lambda: NOON, narrowcast_from=500)
    assert res.status == "done", res
    assert line.errors == []
    assert line.multicasts == []
    sends = [r for r in line.requests if r["path"] == NARROWCAST]
    assert len(sends) == 1 and sends[0]["retry_key"]
    batch = ops.execute("SELECT * FROM send_batches WHERE campaign_id = ?", [cid]).fetchall()
    assert [(b["kind"], b["state"], b["size"]) for b in batch] == [("narrowcast", "sent", n)]
    assert batch[0]["retry_key"] == sends[0]["retry_key"] and batch[0]["request_id"]
    uploads = [r for r in line.requests if r["path"] == "/v2/bot/audienceGroup/upload"]
    assert {a["id"] for r in uploads for a in r["body"]["audiences"]} == _recipients(ops, cid)
    assert any(r["path"].startswith("/v2/bot/message/progress/narrowcast") for r in line.requests)
    got = line.delivered_to(NARROWCAST)
    assert len(got) == n and set(got.values()) == {1}
    counts = L.counts(ops, cid)
    assert counts["sent"] == n and counts["queued"] == counts["sending"] == counts["failed"] == 0


def test_below_the_threshold_the_send_stays_multicast(env, line):
    store, ops = env
    cid, n = _approved(store, ops, line)
    res = live.run(ops, cid, store=store, line=_bulk(line), clock=lambda: NOON, narrowcast_from=n + 1)
    assert res.status == "done"
    assert [r for r in line.requests if r["path"] == NARROWCAST] == [] and len(line.multicasts) == -(-n // 500)


def test_an_audience_below_lines_minimum_falls_back_to_multicast(env, line):
    store, ops = env
    cid, n = _approved(store, ops, line)
    live.prepare(store, ops, cid, now=NOON)
    people = sorted(_recipients(ops, cid))
    assert len(people) == n
    line.unknown_users = set(people[40:])  # LINE matches only 40 of them: a narrowcast would fail (errorCode 4)
    res = live.run(ops, cid, store=store, line=_bulk(line), clock=lambda: NOON, narrowcast_from=500)
    assert res.status == "done", res
    assert [r for r in line.requests if r["path"] == NARROWCAST] == []
    assert sum(len(r["body"]["to"]) for r in line.multicasts) == n
    states = [(b["kind"], b["state"]) for b in ops.execute("SELECT * FROM send_batches WHERE campaign_id = ? ORDER BY batch_id", [cid])]
    assert states[0] == ("narrowcast", "split") and {s for s in states[1:]} == {("multicast", "sent")}
    assert L.counts(ops, cid)["sent"] == n and line.errors == []


def test_a_refused_narrowcast_marks_nobody_sent(env, line):
    store, ops = env
    cid, n = _approved(store, ops, line)
    line.answer(400, {"message": "The request body has 1 error(s)"})
    res = live.run(ops, cid, store=store, line=_bulk(line), clock=lambda: NOON, narrowcast_from=500)
    counts = L.counts(ops, cid)
    assert counts["sent"] == 0 and counts["failed"] == n
    assert line.deliveries == [] or {p for _, _, p in line.deliveries} == {"/v2/bot/message/push"}  # only the test send
    assert res.counts["sent"] == 0


def test_a_narrowcast_that_line_reports_failed_marks_nobody_sent_and_pauses(env, line):
    store, ops = env
    cid, n = _approved(store, ops, line)
    line.narrowcast_phase = "failed"
    res = live.run(ops, cid, store=store, line=_bulk(line), clock=lambda: NOON, narrowcast_from=500)
    assert res.status == "paused" and "絞り込み配信" in res.message and "送信済みになったお客様はいません" in res.message
    counts = L.counts(ops, cid)
    assert counts["sent"] == 0 and counts["failed"] == n
    assert line.delivered_to(NARROWCAST) == {}


def test_server_errors_on_the_narrowcast_pause_and_resume_sends_once(env, line):
    store, ops = env
    cid, n = _approved(store, ops, line)
    line.storm(8, 503)  # every attempt of this run fails: nobody is marked sent, the batch keeps its key
    res = live.run(ops, cid, store=store, line=_bulk(line), clock=lambda: NOON, narrowcast_from=500)
    assert res.status == "paused" and L.counts(ops, cid)["sent"] == 0 and line.delivered_to(NARROWCAST) == {}
    live.resume(ops, cid, "hanako")
    res = live.run(ops, cid, store=store, line=_bulk(line), clock=lambda: NOON, narrowcast_from=500)
    assert res.status == "done"
    keys = {r["retry_key"] for r in line.requests if r["path"] == NARROWCAST}
    assert len(keys) == 1  # the same retry key on every attempt, before and after the pause
    got = line.delivered_to(NARROWCAST)
    assert len(got) == n and set(got.values()) == {1}


def test_a_lost_answer_is_retried_with_the_same_key_and_answered_409(env, line):
    store, ops = env
    cid, n = _approved(store, ops, line)
    line.answer(500, accept=True)  # LINE accepted the narrowcast, the answer was lost
    res = live.run(ops, cid, store=store, line=_bulk(line), clock=lambda: NOON, narrowcast_from=500)
    assert res.status == "done" and line.conflicts == 1
    got = line.delivered_to(NARROWCAST)
    assert len(got) == n and set(got.values()) == {1} and L.counts(ops, cid)["sent"] == n


def test_the_months_quota_is_checked_before_the_audience_is_uploaded(env, line):
    store, ops = env
    cid, n = _approved(store, ops, line)
    line.quota_limit = n - 1
    res = live.run(ops, cid, store=store, line=_bulk(line), clock=lambda: NOON, narrowcast_from=500)
    assert res.status == "paused" and "追加料金を承諾" in res.message
    assert [r for r in line.requests if r["path"].startswith(("/v2/bot/audienceGroup", NARROWCAST))] == []


def test_the_threshold_is_a_send_setting():
    settings = load_settings({}, {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN})
    # large sends narrowcast unless the shop says otherwise (their statistics come per request id)
    assert channel_objects(settings, environ={})["narrowcast_from"] == 10_000
    assert channel_objects(settings, environ={"CRM_LINE_NARROWCAST_FROM": ""})["narrowcast_from"] == 10_000
    assert channel_objects(settings, environ={"CRM_LINE_NARROWCAST_FROM": "0"})["narrowcast_from"] == 0
    assert channel_objects(settings, environ={"CRM_LINE_NARROWCAST_FROM": "20000"})["narrowcast_from"] == 20000
    assert channel_objects(settings, environ={"CRM_LINE_NARROWCAST_FROM": "たくさん"})["narrowcast_from"] == 0


def test_kill_9_while_the_narrowcast_is_in_flight_resumes_without_sending_twice(env, line, tmp_path):
    store, ops = env
    cid, n = _approved(store, ops, line)
    live.prepare(store, ops, cid, now=NOON)
    ops.close()
    store.close()
    line.keep_requests = False
    line.delay_after_accept = 3.0  # LINE has accepted the narrowcast; its answer is still on the way when the sender dies
    env_ = {**os.environ, "PYTHONPATH": str(ROOT), "LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": line.url,
            "CRM_LINE_NARROWCAST_FROM": "500"}
    cmd = [sys.executable, "-m", "crm_core", "campaign", "send", "--campaign", str(cid), "--db", str(tmp_path / "crm.duckdb")]
    proc = subprocess.Popen(cmd, env=env_, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    end = time.monotonic() + 120
    while not line.narrowcasts and time.monotonic() < end and proc.poll() is None:
        time.sleep(0.01)
    assert line.narrowcasts, proc.communicate()[1].decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    line.delay_after_accept = 0.0
    again = subprocess.run(cmd, env=env_, cwd=str(tmp_path), capture_output=True, timeout=180)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    ops = live.open_ops(str(tmp_path / "crm.duckdb"))
    counts = L.counts(ops, cid)
    ops.close()
    got = line.delivered_to(NARROWCAST)
    assert line.conflicts == 1  # the restarted sender re-sent the same batch with the same key: 409, nothing delivered twice
    assert counts["sent"] == n and len(got) == n and set(got.values()) == {1}
