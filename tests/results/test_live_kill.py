"""kill -9 of the sender mid-batch, repeatedly; a second sender started concurrently.

The sender is the real command (``python -m crm_core campaign send``) in a
subprocess; the LINE stand-in and the SMTP sink run in this process and count
what each recipient received.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crm_core.messaging import ledger as L
from crm_core.results import live
from tests.live_support import EMAIL_RULE, LINE_RULE, NOON, PUBLIC, SECRET, TEMPLATE, make_store
from tests.servers.customers import LINE_USER
from tests.servers.line_mock import LineMock
from tests.servers.smtp_sink import SmtpSink

pytestmark = pytest.mark.timeout(600)
TOKEN = "kill-token"
ME = "marketer@example.jp"
ROOT = Path(__file__).resolve().parents[2]
MULTICAST = "/v2/bot/message/multicast"


def _prepare(tmp_path: Path, channel: str, env: dict[str, str], **people: int) -> tuple[Path, int, int]:
    from crm_core.messaging.sends import load_settings

    db = tmp_path / "crm.duckdb"
    store = make_store(db, **people)
    ops = live.open_ops(store)
    out = live.create(store, ops, name="kill", channel=channel, rule=LINE_RULE if channel == "line" else EMAIL_RULE,
                      template=TEMPLATE, actor="hanako", quiet_hours="off", now=NOON, send_at=NOON)
    cid = out["campaign_id"]
    settings = load_settings({}, {**env, "CRM_TEST_RECIPIENTS": f"{LINE_USER},{ME}"})
    assert live.test_send(store, ops, cid, settings=settings, recipient=LINE_USER if channel == "line" else ME, actor="hanako").ok
    live.approve(ops, cid, by="hanako", confirm_count=out["funnel"]["will_receive"])
    live.prepare(store, ops, cid, from_addr="shop@natural.example.jp", now=NOON)
    ops.close()
    store.close()  # the sender subprocess never needs the DuckDB file again
    return db, cid, out["funnel"]["will_receive"]


def _sender(db: Path, cid: int, env: dict[str, str]) -> subprocess.Popen:
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "crm_core", "campaign", "send", "--campaign", str(cid), "--db", str(db)],
                            cwd=tmp_cwd(db), env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def tmp_cwd(db: Path) -> str:
    return str(db.parent)


def _ops(db: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(db.with_name("crm.ops.sqlite")), timeout=30)
    con.row_factory = sqlite3.Row
    return con


def _wait_for(db: Path, cid: int, sql: str, proc: subprocess.Popen, timeout: float = 60) -> bool:
    """Poll the ledger until ``sql`` returns a true value (or the sender ended)."""
    end = time.monotonic() + timeout
    with _ops(db) as con:
        while time.monotonic() < end:
            if proc.poll() is not None:
                return False
            try:
                if con.execute(sql, [cid]).fetchone()[0]:
                    return True
            except sqlite3.OperationalError:
                pass
            time.sleep(0.005)
    return False


def _status(db: Path, cid: int) -> tuple[str, dict[str, int]]:
    with _ops(db) as con:
        return con.execute("SELECT status FROM send_campaigns WHERE campaign_id = ?", [cid]).fetchone()[0], L.counts(con, cid)


def test_kill_9_mid_batch_repeatedly_line_delivers_everyone_exactly_once(tmp_path):
    with LineMock(TOKEN) as line:
        line.keep_requests = False
        line.delay, line.delay_after_accept = 0.1, 0.6
        env = {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": line.url}
        db, cid, n = _prepare(tmp_path, "line", env, line_users=2600)
        line.deliveries.clear()
        rng = random.Random(14)
        kills = 0
        for _ in range(12):
            with _ops(db) as con:
                tries = con.execute("SELECT sum(attempts) FROM send_batches WHERE campaign_id = ?", [cid]).fetchone()[0]
            proc = _sender(db, cid, env)
            # this sender wrote a batch's intent and its request is in flight (before or after LINE accepted it): kill -9
            sql = f"SELECT count(*) FROM send_batches WHERE campaign_id = ? AND state = 'sending' AND (SELECT sum(attempts) FROM send_batches) > {int(tries)}"  # noqa: S608 - int
            if _wait_for(db, cid, sql, proc):
                time.sleep(rng.uniform(0.0, 0.8))
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(60)
            if _status(db, cid)[0] == "done":
                break
        final = _sender(db, cid, env)
        out, err = final.communicate(timeout=120)
        assert final.returncode == 0, err.decode()
        status, counts = _status(db, cid)
        got = line.delivered_to(MULTICAST)
        conflicts = line.conflicts
    print(f"LINE kill test: {kills} kills, {n} recipients, {conflicts} batches re-sent after a kill and answered 409")  # noqa: T201
    assert kills >= 4
    assert conflicts >= 1, "no kill hit the window between LINE accepting a batch and the ledger recording it"
    assert status == "done"
    assert counts["sent"] == n and counts["queued"] == counts["sending"] == counts["failed"] == 0
    assert len(got) == n, "somebody was skipped"
    assert set(got.values()) == {1}, "somebody got the message twice"


def test_kill_9_between_a_batchs_intent_and_its_outcome_resends_it_with_the_same_key_and_skips_nobody(tmp_path):
    """The sender commits a batch's intent one request ahead and its outcome one request behind: killed while LINE holds
    request k (batch k+1 already marked, never requested), the restart sends k again with its key (409) and k+1 for the first time."""
    import threading

    arrived, release = threading.Event(), threading.Event()
    with LineMock(TOKEN) as line:
        line.keep_requests = True
        env = {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": line.url}
        db, cid, n = _prepare(tmp_path, "line", env, line_users=2600)
        line.requests.clear()
        line.deliveries.clear()

        def hold_the_third(record):
            if record["path"] == MULTICAST and len(line.multicasts) == 3 and not release.is_set():
                arrived.set()
                release.wait(60)

        line.on_send = hold_the_third
        proc = _sender(db, cid, env)
        assert arrived.wait(60), "the third multicast never arrived"
        with _ops(db) as con:
            keys = [r[0] for r in con.execute("SELECT retry_key FROM send_batches WHERE campaign_id = ? ORDER BY batch_id", [cid])]
        # wait until the batch after the one in flight is marked (its intent and the previous outcome are one transaction)
        marked = f"SELECT state = 'sending' FROM send_batches WHERE retry_key = '{keys[3]}' AND campaign_id = ?"  # noqa: S608 - a UUID we read
        # (well within the SDK's 15 s timeout, after which the held request would be retried)
        assert _wait_for(db, cid, marked, proc, timeout=8), "the next batch was not marked ahead"
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        with _ops(db) as con:
            left = {r[0]: (r[1], r[2]) for r in con.execute("SELECT retry_key, state, attempts FROM send_batches WHERE campaign_id = ?", [cid])}
        release.set()  # LINE accepts the held request after the sender died: its answer is lost
        time.sleep(0.3)
        line.on_send = None
        assert [left[k] for k in keys[:4]] == [("sent", 1), ("sent", 1), ("sending", 1), ("sending", 1)]
        assert all(left[k] == ("queued", 0) for k in keys[4:])
        final = _sender(db, cid, env)
        _, err = final.communicate(timeout=120)
        assert final.returncode == 0, err.decode()
        status, counts = _status(db, cid)
        got = line.delivered_to(MULTICAST)
        sent_keys = [r["retry_key"] for r in line.multicasts]
    assert status == "done" and counts["sent"] == n and counts["queued"] == counts["sending"] == 0
    assert len(got) == n, "somebody was skipped"
    assert set(got.values()) == {1}, "somebody got the message twice"
    assert line.conflicts == 1  # the held batch, sent again with its key
    assert sent_keys.count(keys[2]) == 2 and all(sent_keys.count(k) == 1 for k in keys if k != keys[2])


def test_kill_9_mid_send_repeatedly_email_resumes_from_the_ledger(tmp_path):
    with SmtpSink() as smtp:
        env = {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@natural.example.jp",
               "SMTP_STARTTLS": "false", "CRM_UNSUBSCRIBE_SECRET": SECRET, "CRM_PUBLIC_URL": PUBLIC}
        db, cid, n = _prepare(tmp_path, "email", env, emails=600)
        smtp.messages.clear()
        smtp.envelopes.clear()
        rng = random.Random(8058)
        kills = 0
        sent_before = 0
        for _ in range(12):
            proc = _sender(db, cid, env)
            target = sent_before + rng.randint(5, 60)
            if _wait_for(db, cid, f"SELECT count(*) >= {int(target)} FROM send_ledger_now WHERE campaign_id = ? AND state = 'sent'", proc):  # noqa: S608 - int
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(60)
            status, counts = _status(db, cid)
            sent_before = counts["sent"]
            if status == "done":
                break
        final = _sender(db, cid, env)
        _, err = final.communicate(timeout=120)
        assert final.returncode == 0, err.decode()
        status, counts = _status(db, cid)
        with _ops(db) as con:
            expected = {r[0]: r[1] for r in con.execute(
                "SELECT address, message_id FROM send_ledger_now WHERE campaign_id = ? AND state = 'sent'", [cid])}
    received: dict[str, list[str]] = {}
    for env_, msg in zip(smtp.envelopes, smtp.messages, strict=True):
        received.setdefault(env_["rcpt_tos"][0], []).append(str(msg["Message-ID"]))
    duplicates = sum(len(v) - 1 for v in received.values())
    assert kills >= 4
    assert status == "done" and counts["sent"] == n and counts["queued"] == counts["sending"] == 0
    assert set(received) == set(expected), "somebody was skipped (or mailed who should not be)"
    assert all(set(ids) == {expected[a]} for a, ids in received.items()), "a resent mail must carry the same Message-ID"
    # only the one mail in flight at each kill can arrive twice, and then with the same Message-ID
    assert duplicates <= kills
    print(f"email kill test: {kills} kills, {n} recipients, {duplicates} duplicate deliveries (same Message-ID)")  # noqa: T201


def test_a_second_sender_started_concurrently_never_double_sends(tmp_path):
    with LineMock(TOKEN) as line:
        line.keep_requests = False
        line.delay = 0.2
        env = {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": line.url}
        db, cid, n = _prepare(tmp_path, "line", env, line_users=2600)
        line.deliveries.clear()
        procs = [_sender(db, cid, env) for _ in range(2)]
        outs = [p.communicate(timeout=180) for p in procs]
        status, counts = _status(db, cid)
        got = line.delivered_to(MULTICAST)
    texts = [o[0].decode() for o in outs]
    assert any('"busy"' in t for t in texts) or all('"done"' in t for t in texts), texts
    assert status == "done" and counts["sent"] == n
    assert len(got) == n and set(got.values()) == {1}


def test_kill_9_repeatedly_line_or_email_sends_each_recipient_once_on_one_channel(tmp_path):
    """LINE（なければメール）: kills land in the LINE part and in the e-mail part; in the end every recipient got exactly
    one message, on the channel the ledger says, and nobody got both."""
    from crm_core.messaging.sends import load_settings

    with LineMock(TOKEN) as line, SmtpSink() as smtp:
        line.keep_requests = False
        line.delay, line.delay_after_accept = 0.05, 0.3
        env = {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": line.url, "SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port),
               "SMTP_FROM": "shop@natural.example.jp", "SMTP_STARTTLS": "false", "CRM_UNSUBSCRIBE_SECRET": SECRET, "CRM_PUBLIC_URL": PUBLIC}
        db = tmp_path / "crm.duckdb"
        store = make_store(db, line_users=1600, emails=600)
        ops = live.open_ops(store)
        out = live.create(store, ops, name="kill", channel="line_or_email", rule={"all": []}, template=TEMPLATE, actor="hanako",
                          quiet_hours="off", frequency_cap=0, now=NOON, send_at=NOON)
        cid, n = out["campaign_id"], out["funnel"]["will_receive"]
        settings = load_settings({}, {**env, "CRM_TEST_RECIPIENTS": f"{LINE_USER},{ME}"})
        for ch, to in (("line", LINE_USER), ("email", ME)):
            assert live.test_send(store, ops, cid, settings=settings, recipient=to, actor="hanako", channel=ch).ok
        live.approve(ops, cid, by="hanako", confirm_count=n)
        live.prepare(store, ops, cid, from_addr="shop@natural.example.jp", now=NOON)
        ops.close()
        store.close()
        line.deliveries.clear()
        smtp.messages.clear()
        smtp.envelopes.clear()
        rng = random.Random(2026)
        kills, sent_before, kinds = 0, 0, set()
        for _ in range(20):
            proc = _sender(db, cid, env)
            target = sent_before + rng.randint(5, 150)
            if _wait_for(db, cid, f"SELECT count(*) >= {int(target)} FROM send_ledger_now WHERE campaign_id = ? AND state = 'sent'", proc):  # noqa: S608 - int
                time.sleep(rng.uniform(0.0, 0.2))
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(60)
            with _ops(db) as con:
                kinds |= {r[0] for r in con.execute("SELECT DISTINCT channel FROM send_ledger_now WHERE campaign_id = ? AND state = 'sent'", [cid])}
            status, counts = _status(db, cid)
            sent_before = counts["sent"]
            if status == "done":
                break
        final = _sender(db, cid, env)
        _, err = final.communicate(timeout=120)
        assert final.returncode == 0, err.decode()
        status, counts = _status(db, cid)
        with _ops(db) as con:
            ledger = {r[0]: (r[1], r[2], r[3]) for r in con.execute(
                "SELECT customer_id, channel, address, message_id FROM send_ledger_now WHERE campaign_id = ? AND state = 'sent'", [cid])}
        got_line = line.delivered_to(MULTICAST)
        received: dict[str, list[str]] = {}
        for env_, msg in zip(smtp.envelopes, smtp.messages, strict=True):
            received.setdefault(env_["rcpt_tos"][0], []).append(str(msg["Message-ID"]))
    by_line = {a for ch, a, _ in ledger.values() if ch == "line"}
    by_mail = {a: m for ch, a, m in ledger.values() if ch == "email"}
    print(f"line_or_email kill test: {kills} kills, {len(by_line)} by LINE, {len(by_mail)} by e-mail")  # noqa: T201
    assert kills >= 4 and kinds == {"line", "email"}
    assert status == "done" and counts["sent"] == n == len(by_line) + len(by_mail)
    assert set(got_line) == by_line and set(got_line.values()) == {1}, "a LINE recipient was skipped or got it twice"
    assert set(received) == set(by_mail), "an e-mail recipient was skipped (or mailed who gets LINE)"
    assert all(set(ids) == {by_mail[a]} for a, ids in received.items()), "a resent mail must carry the same Message-ID"
    assert sum(len(v) - 1 for v in received.values()) <= kills
