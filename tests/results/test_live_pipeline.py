"""LINE multicasts with the ledger's writes overlapping the requests: intent one request ahead, outcome one behind.

The real line-bot-sdk talks to the LINE stand-in; at each multicast's arrival the
test reads the sender's ledger through a connection of its own (what a crash at that
moment would leave behind).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from crm_core import opsdb
from crm_core.messaging import ledger as L
from crm_core.messaging.channels.line_bulk import LineBulk
from crm_core.messaging.delivery import deliver
from crm_core.results import live
from tests.live_support import LINE_RULE, LIVE_TOKEN, NOON, TEMPLATE, make_store
from tests.servers.line_mock import LineMock

pytestmark = pytest.mark.timeout(300)
MULTICAST = "/v2/bot/message/multicast"


@pytest.fixture()
def prepared(tmp_path):
    """A prepared LINE campaign of 2,600 friends (6 multicast batches), no holdout."""
    store = make_store(tmp_path / "crm.duckdb", line_users=2600)
    ops = live.open_ops(store)
    out = live.create(store, ops, name="パイプライン", channel="line", rule=LINE_RULE, template=TEMPLATE, actor="hanako", holdout=0.0,
                      quiet_hours="off", frequency_cap=0, now=NOON, send_at=NOON)
    cid = out["campaign_id"]
    ops.execute("UPDATE send_campaigns SET status = 'approved', approved_by = 'hanako' WHERE campaign_id = ?", [cid])
    live.prepare(store, ops, cid, from_addr="shop@natural.example.jp", now=NOON)
    store.close()
    path = ops.execute("PRAGMA database_list").fetchone()[2]
    yield ops, cid, path, out["funnel"]["will_receive"]
    ops.close()


def _batches(path: str, cid: int) -> list[dict]:
    with closing(sqlite3.connect(path, timeout=30)) as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute("SELECT batch_id, retry_key, state, attempts FROM send_batches WHERE campaign_id = ?"
                                             " ORDER BY batch_id", [cid])]


def test_each_batch_is_marked_sending_before_its_request_and_recorded_sent_at_most_one_request_later(prepared):
    ops, cid, path, n = prepared
    seen: list[tuple[int, list[dict]]] = []
    with LineMock(LIVE_TOKEN) as line:
        def look(record):
            if record["path"] == MULTICAST:
                batches = _batches(path, cid)
                seen.append(([b["retry_key"] for b in batches].index(record["retry_key"]), batches))

        line.on_send = look
        outcome = deliver(ops, cid, line=LineBulk(LIVE_TOKEN, line.url, sleep=lambda s: None), clock=lambda: NOON)
        got = line.delivered_to(MULTICAST)
    assert outcome.status == "done" and outcome.counts["sent"] == n
    assert len(got) == n and set(got.values()) == {1}
    assert [k for k, _ in seen] == list(range(len(seen))) and len(seen) >= 6
    for k, batches in seen:
        # a crash now: this batch's intent is committed, so the next run sends it again with its key
        assert batches[k]["state"] == "sending" and batches[k]["attempts"] == 1, (k, batches[k])
        # every batch two or more requests back has its outcome; nothing further than one ahead is marked
        assert all(b["state"] == "sent" for b in batches[:max(k - 1, 0)]), k
        assert all(b["state"] == "queued" and b["attempts"] == 0 for b in batches[k + 2:]), k
        assert sum(b["state"] == "sending" for b in batches) <= 3


def test_a_pause_during_a_request_records_that_batch_and_gives_back_the_intent_marked_ahead(prepared):
    ops, cid, path, n = prepared
    with LineMock(LIVE_TOKEN) as line:
        def pause_on_the_second(record):
            if record["path"] == MULTICAST and len(line.multicasts) == 2:  # the 2nd multicast (recorded as it arrives)
                with closing(opsdb.connect(path, migrate=False)) as con:
                    L.set_status(con, cid, "paused", "一時停止")

        line.on_send = pause_on_the_second
        bulk = LineBulk(LIVE_TOKEN, line.url, sleep=lambda s: None)
        first = deliver(ops, cid, line=bulk, clock=lambda: NOON)
        batches = _batches(path, cid)
        assert first.status == "paused" and first.counts["sent"] == 1000, first
        assert [b["state"] for b in batches[:2]] == ["sent", "sent"]
        # the third batch was marked ahead during the 2nd request and never requested: queued again, no attempt counted
        # (so it could still become part of a narrowcast with a new key)
        assert all(b["state"] == "queued" and b["attempts"] == 0 for b in batches[2:]), batches[2:]
        line.on_send = None
        L.set_status(ops, cid, "approved")
        second = deliver(ops, cid, line=bulk, clock=lambda: NOON)
        got = line.delivered_to(MULTICAST)
    assert second.status == "done" and second.counts["sent"] == n
    assert len(got) == n and set(got.values()) == {1} and line.conflicts == 0


def test_a_stop_after_some_messages_leaves_no_batch_marked_sending(prepared):
    ops, cid, path, n = prepared
    with LineMock(LIVE_TOKEN) as line:
        bulk = LineBulk(LIVE_TOKEN, line.url, sleep=lambda s: None)
        first = deliver(ops, cid, line=bulk, clock=lambda: NOON, max_messages=1000)
        batches = _batches(path, cid)
        assert first.status == "sending" and first.counts["sent"] == 1000 and first.counts["sending"] == 0
        assert [b["state"] for b in batches] == ["sent"] * 2 + ["queued"] * (len(batches) - 2)
        assert [b["attempts"] for b in batches] == [1] * 2 + [0] * (len(batches) - 2)
        second = deliver(ops, cid, line=bulk, clock=lambda: NOON)
        got = line.delivered_to(MULTICAST)
    assert second.status == "done" and len(got) == n and set(got.values()) == {1}


def test_a_sender_whose_lock_was_taken_over_records_what_line_accepted_and_marks_nothing_more(prepared):
    ops, cid, path, n = prepared
    first, second = [b["batch_id"] for b in _batches(path, cid)[:2]]
    owner = L.acquire(ops, cid, NOON)
    members, alive = L.batch_step(ops, sent=None, intent=first, lock=(cid, owner), now=NOON)
    assert alive and len(members) == 500
    with opsdb.transaction(ops):  # another sender takes the campaign over (this one looked dead)
        ops.execute("UPDATE send_locks SET owner = 'other' WHERE campaign_id = ?", [cid])
    members, alive = L.batch_step(ops, sent=(first, "req-1", 1), intent=second, lock=(cid, owner), now=NOON)
    assert not alive and members == []
    states = {b["batch_id"]: (b["state"], b["attempts"]) for b in _batches(path, cid)}
    assert states[first] == ("sent", 1)  # LINE accepted it: true whoever sends now
    assert states[second] == ("queued", 0)  # the other sender's to send
    assert L.counts(ops, cid)["sent"] == 500
