"""A LINE batch's outcome is written on its batch row alone: every reader of the ledger sees its rows through it.

Each test writes real ledger rows and batches (:func:`ledger.write_rows`), records a batch's outcome the way the
sender does (:func:`ledger.record_batch_sent` / :func:`ledger.record_batch_error`) and asks one reader: the status
counts, the per-channel counts, the frequency cap of live campaigns and of scenarios, the LINE statistics job.
A reader of the rows' own ``state`` would see those recipients as still ``queued``.
"""

from __future__ import annotations

import datetime as dt
import json
from contextlib import closing

import pytest

from crm_core import opsdb
from crm_core.messaging import ledger as L
from crm_core.results import engagement as EN
from crm_core.results import live
from crm_core.scenarios import engine

NOON = dt.datetime(2026, 12, 3, 3, 0, tzinfo=dt.UTC)
CID = 7


def _line_rows(n: int, start: int = 0) -> list[dict]:
    return [{"customer_id": f"C{i:05d}", "address": f"U{i:032x}", "state": "queued", "content_id": 1} for i in range(start, start + n)]


@pytest.fixture()
def ops(tmp_path):
    """An operations file with campaign 7 on LINE: 600 recipients in two multicast batches (500 + 100), plus one held out."""
    with closing(opsdb.connect(tmp_path / "crm.ops.sqlite")) as con:
        with opsdb.transaction(con):
            L.write_rows(con, CID, "line", _line_rows(600) + [{"customer_id": "H00001", "address": "Uheld", "state": "held_out"}],
                         from_addr="", now=NOON)
        yield con


def _batches(con) -> list[int]:
    return [r[0] for r in con.execute("SELECT batch_id FROM send_batches WHERE campaign_id = ? ORDER BY batch_id", [CID])]


def test_a_batch_outcome_writes_the_batch_row_alone(ops):
    first = _batches(ops)[0]
    statements: list[str] = []
    ops.set_trace_callback(statements.append)
    L.record_batch_sent(ops, first, request_id="req-1", attempts=1, now=NOON)
    ops.set_trace_callback(None)
    writes = [s for s in statements if s.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))]
    assert len(writes) == 1 and "send_batches" in writes[0], writes
    # the rows keep their intent; the view shows the outcome, with the batch's request id and time
    assert ops.execute("SELECT count(*) FROM send_ledger WHERE batch_id = ? AND state = 'queued'", [first]).fetchone()[0] == 500
    seen = ops.execute(f"SELECT DISTINCT state, request_id, sent_at FROM {L.EFFECTIVE} WHERE batch_id = ?", [first]).fetchall()  # noqa: S608 - constant
    assert [tuple(r) for r in seen] == [("sent", "req-1", L.iso(NOON))]


def test_status_counts_read_a_sent_batch_as_sent(ops):
    L.record_batch_sent(ops, _batches(ops)[0], request_id="req-1", attempts=1, now=NOON)
    counts = L.counts(ops, CID)
    assert counts["sent"] == 500 and counts["queued"] == 100 and counts["held_out"] == 1
    by_channel = live.channel_counts(ops, CID)
    assert by_channel["line"]["sent"] == 500 and by_channel["line"]["queued"] == 100


def test_the_tally_agrees_with_the_view(ops):
    first, second = _batches(ops)
    L.record_batch_sent(ops, first, request_id="req-1", attempts=1, now=NOON)
    L.record_batch_error(ops, second, state="failed", error="invalid", now=NOON)
    ops.execute("UPDATE send_ledger SET reason = 'ab_rest', state = 'queued' WHERE customer_id = 'H00001'")
    with opsdb.transaction(ops):
        L.write_rows(ops, CID, "email", [{"customer_id": "E1", "address": "e@example.jp", "state": "queued", "content_id": 2}],
                     from_addr="shop@example.jp", now=NOON)
    ops.execute("UPDATE send_ledger SET state = 'sent' WHERE customer_id = 'C00003'")  # a row with its own outcome
    view = {(r[0], r[1], bool(r[2])): r[3] for r in ops.execute(
        f"SELECT channel, state, reason IS 'ab_rest', count(*) FROM {L.EFFECTIVE} WHERE campaign_id = ? GROUP BY 1, 2, 3", [CID])}  # noqa: S608
    assert {(ch, state, rest): n for ch, state, rest, n in L.tally(ops, CID)} == view
    assert view == {("line", "sent", False): 500, ("line", "failed", False): 100, ("line", "queued", True): 1, ("email", "queued", False): 1}


def test_a_failed_batch_reads_failed_and_a_stopped_one_stays_queued(ops):
    first, second = _batches(ops)
    L.record_batch_error(ops, first, state="failed", error="invalid: bad request", now=NOON)
    L.record_batch_error(ops, second, state="queued", error="rate_limited: 429", now=NOON)
    counts = L.counts(ops, CID)
    assert counts["failed"] == 500 and counts["queued"] == 100 and counts["sent"] == 0
    errors = {r[0] for r in ops.execute(f"SELECT error FROM {L.EFFECTIVE} WHERE batch_id = ?", [first])}  # noqa: S608 - constant
    assert errors == {"invalid: bad request"}


def test_the_frequency_cap_counts_the_recipients_of_a_sent_batch_once(ops):
    first, second = _batches(ops)
    L.record_batch_sent(ops, first, request_id="req-1", attempts=1, now=NOON)
    L.record_batch_sent(ops, second, request_id="req-2", attempts=1, now=NOON - dt.timedelta(days=10))  # before the window
    # an e-mail campaign with its own per-row outcome, and a row of the previous release marked sent with its batch
    with opsdb.transaction(ops):
        L.write_rows(ops, 8, "email", [{"customer_id": "C00000", "address": "a@example.jp", "state": "queued", "content_id": 2}],
                     from_addr="shop@example.jp", now=NOON)
    ops.execute("UPDATE send_ledger SET state = 'sent', sent_at = ? WHERE campaign_id = 8", [L.iso(NOON)])
    ops.execute("UPDATE send_ledger SET state = 'sent', sent_at = ? WHERE customer_id = 'C00001' AND campaign_id = ?", [L.iso(NOON), CID])
    recent = L.recently_sent(ops, NOON - dt.timedelta(days=7))
    assert len(recent) == 500 and recent["C00000"] == 2 and recent["C00001"] == 1 and recent["C00499"] == 1
    assert "C00500" not in recent  # sent ten days ago
    # the same answer as the view, read in one piece
    whole = {r[0]: r[1] for r in ops.execute(f"SELECT customer_id, count(*) FROM {L.EFFECTIVE} WHERE state = 'sent' AND sent_at >= ?"  # noqa: S608
                                             " GROUP BY customer_id", [L.iso(NOON - dt.timedelta(days=7))])}
    assert recent == whole


def test_a_scenario_message_sent_by_batch_is_not_also_counted_as_pending(ops):
    ops.execute("INSERT INTO scenario_batches (scenario, step, day, channel, campaign_id) VALUES ('welcome', 0, '2026-12-02', 'line', ?)",
                [CID])
    L.record_batch_sent(ops, _batches(ops)[0], request_id="req-1", attempts=1, now=NOON)
    rows = [{"scenario": "followup", "step": 0, "customer_id": cid, "trigger_key": "k1", "trigger_day": "2026-12-03",
             "priority": 1, "channel": "line", "address": "U", "state": "queued", "holdout_share": 0.0} for cid in ("C00000", "C00550")]
    out = {r["customer_id"]: r["state"] for r in engine.assign(ops, dt.date(2026, 12, 3), rows, {"daily_cap": 0, "frequency_cap": 2})}
    # C00000 got one message (sent), C00550 has one handed to the ledger and not sent yet: both may get a second
    assert out == {"C00000": "queued", "C00550": "queued"}
    out = engine.assign(ops, dt.date(2026, 12, 3), rows, {"daily_cap": 0, "frequency_cap": 1})
    assert {r["customer_id"]: r["state"] for r in out} == {"C00000": "capped", "C00550": "capped"}


def test_the_line_statistics_job_sees_a_campaign_sent_by_batch(ops):
    ops.execute("INSERT INTO send_campaigns (campaign_id, name, channel, template, send_at, created_by, created_at, prepared_at, variants)"
                " VALUES (?, '冬', 'line', 't', ?, 'hanako', ?, ?, ?)", [CID, L.iso(NOON), L.iso(NOON), L.iso(NOON), json.dumps(["A"])])
    assert EN.line_campaigns_to_fetch(ops, NOON + dt.timedelta(days=1)) == []
    for batch in _batches(ops):
        L.record_batch_sent(ops, batch, request_id=f"req-{batch}", attempts=1, now=NOON)
    (got,) = EN.line_campaigns_to_fetch(ops, NOON + dt.timedelta(days=1))
    assert got["campaign_id"] == CID and got["sent"] == 600 and got["multicast"]


def test_an_ops_file_of_the_previous_release_keeps_its_outcomes(tmp_path):
    path = tmp_path / "crm.ops.sqlite"
    with closing(opsdb.connect(path)) as con:  # as before this release: outcome on the rows and the batch, no sent_at on batches
        with opsdb.transaction(con):
            L.write_rows(con, CID, "line", _line_rows(3), from_addr="", now=NOON)
        con.executescript("DROP VIEW send_ledger_now; DROP INDEX send_batches_sent; ALTER TABLE send_batches DROP COLUMN sent_at;"
                          " DELETE FROM ops_schema WHERE component = 'ledger_outcome';")
        con.execute("UPDATE send_batches SET state = 'sent', request_id = 'old', updated_at = ?", [L.iso(NOON)])
        con.execute("UPDATE send_ledger SET state = 'sent', request_id = 'old', sent_at = ?", [L.iso(NOON)])
    opsdb._applied.pop((str(path.resolve()), "ledger_outcome"), None)
    with closing(opsdb.connect(path)) as con:
        assert L.counts(con, CID)["sent"] == 3
        assert len(L.recently_sent(con, NOON - dt.timedelta(days=1))) == 3  # counted once, not once per part
        assert con.execute("SELECT sent_at FROM send_batches").fetchone()[0] == L.iso(NOON)
