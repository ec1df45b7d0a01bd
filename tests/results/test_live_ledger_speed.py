"""The ledger's cost per send: open and sent rows are found through partial indexes, so a batch outcome stays cheap."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from crm_core import opsdb
from crm_core.messaging import ledger as L

OPEN_QUERIES = [
    # delivery: the next e-mail chunk
    "SELECT customer_id FROM send_ledger WHERE campaign_id = ? AND channel = 'email' AND state IN ('queued', 'sending')"
    " AND content_id IS NOT NULL ORDER BY seq LIMIT 100",
]


def _plan(con: sqlite3.Connection, sql: str, *args) -> str:
    return " ".join(r[3] for r in con.execute("EXPLAIN QUERY PLAN " + sql, args or [1]))


def test_open_and_sent_rows_are_read_through_partial_indexes(tmp_path):
    with closing(opsdb.connect(tmp_path / "crm.ops.sqlite")) as con:
        statements: list[str] = []
        indexes = {r[0]: r[1] for r in con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'send_ledger'")
                   if r[1]}
        # no index holds every row's state: a sent batch would move each of its rows inside it
        assert "send_ledger_todo" not in indexes and "send_ledger_recent" not in indexes
        assert "WHERE state IN ('queued', 'sending')" in indexes["send_ledger_open"]
        assert "WHERE state = 'sent'" in indexes["send_ledger_sent"]
        for sql in OPEN_QUERIES:
            assert "send_ledger_open" in _plan(con, sql), sql
        assert "send_ledger_sent" in _plan(con, "SELECT customer_id, count(*) FROM send_ledger WHERE state = 'sent' AND sent_at >= ?"
                                                 " GROUP BY customer_id", "2026-11-26")
        # a campaign's counts (status, progress, what is left to send) read the rows' states from a covering index, per batch
        statements = []
        con.set_trace_callback(statements.append)
        L.tally(con, 1)
        con.set_trace_callback(None)
        plan = " ".join(r[3] for r in con.execute("EXPLAIN QUERY PLAN " + statements[-1]))
        assert "COVERING INDEX send_ledger_tally" in plan, plan
        # the frequency cap reads rows with their own outcome and rows of sent batches, each part through its partial index
        statements = []
        con.set_trace_callback(statements.append)
        L.recently_sent(con, L.utcnow())
        con.set_trace_callback(None)
        plan = " ".join(r[3] for r in con.execute("EXPLAIN QUERY PLAN " + statements[-1]))  # the statement with its values
        assert "send_ledger_sent" in plan and "send_batches_sent" in plan and "send_ledger_batch" in plan, plan


def test_a_batch_outcome_is_one_statement_and_recently_sent_still_counts_it(tmp_path):
    with closing(opsdb.connect(tmp_path / "crm.ops.sqlite")) as con:
        con.execute("INSERT INTO send_batches (batch_id, campaign_id, channel, content_id, retry_key, size, updated_at)"
                    " VALUES (7, 1, 'line', 1, 'key-7', 500, '2026-12-03T03:00:00+00:00')")
        rows = [(1, f"C{i:04d}", "line", f"U{i:032x}", "queued", 7, i, "2026-12-03T03:00:00+00:00") for i in range(500)]
        con.executemany("INSERT INTO send_ledger (campaign_id, customer_id, channel, address, state, batch_id, seq, updated_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        statements: list[str] = []
        con.set_trace_callback(statements.append)
        L.record_batch_sent(con, 7, request_id="r1", attempts=1, now=L.utcnow())
        con.set_trace_callback(None)
        writes = [s for s in statements if s.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))]
        assert len(writes) == 1, writes  # the batch row alone: its rows read their outcome through it
        assert L.counts(con, 1)["sent"] == 500
        assert len(L.recently_sent(con, L.utcnow().replace(year=2025))) == 500


def test_an_existing_ops_file_gets_the_partial_indexes(tmp_path):
    path = tmp_path / "crm.ops.sqlite"
    with closing(opsdb.connect(path)) as con:  # as an ops file of the previous release: full indexes, no ledger_indexes script
        con.executescript("DROP INDEX send_ledger_open; DROP INDEX send_ledger_sent;"
                          " CREATE INDEX send_ledger_todo ON send_ledger (campaign_id, channel, state, seq);"
                          " CREATE INDEX send_ledger_recent ON send_ledger (customer_id, sent_at);"
                          " DELETE FROM ops_schema WHERE component = 'ledger_indexes';")
    opsdb._applied.pop((str(path.resolve()), "ledger_indexes"), None)
    with closing(opsdb.connect(path)) as con:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'send_ledger'")}
    assert {"send_ledger_open", "send_ledger_sent"} <= names and not names & {"send_ledger_todo", "send_ledger_recent"}


def test_a_template_is_parsed_once_per_text_not_once_per_recipient():
    from crm_core.messaging import templates as T

    tpl = T.load_presets()["thanks_first"]
    shop = None  # the preset renders without a shop profile
    T.render(tpl, T.build_context({"name": "顧客0"}, T.Campaign(), shop, "email", tpl.key), "email")
    parsed = T._analysed.cache_info().misses, T._compiled.cache_info().misses
    for i in range(1, 50):
        out = T.render(tpl, T.build_context({"name": f"顧客{i}"}, T.Campaign(), shop, "email", tpl.key), "email")
        assert f"顧客{i}" in out.text
    assert (T._analysed.cache_info().misses, T._compiled.cache_info().misses) == parsed
