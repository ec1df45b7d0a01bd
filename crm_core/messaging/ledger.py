"""The send ledger of live campaigns, in the operations store (exactly once, nothing lost).

Tables
------
``send_campaigns``
    One row per live campaign: what to send (segment rule, template, coupon,
    channel, holdout, variants), when (``send_at`` JST, quiet hours), its
    lifecycle ``status`` (draft → approved → sending ⇄ paused/waiting → done
    | cancelled), the test send of the current content, the approval (who,
    when, the count confirmed) and the A/B settings.
``send_ledger``
    One row per (campaign, recipient, channel) with the variant, the address,
    the ``state`` (:data:`STATES`), the Message-ID (e-mail) or batch (LINE), the
    provider's request id and the last error.  Rows are written when the
    recipients are frozen (intent: ``queued``); an e-mail row is set to
    ``sending`` before its request and to ``sent`` / ``failed`` after it.  A LINE
    row stays ``queued``: its outcome is its batch's (below).  Readers see every
    row's effective state through the view ``send_ledger_now`` (:data:`EFFECTIVE`).
``send_contents``
    Rendered message bodies (zlib JSON), shared by every recipient who gets
    the same text.
``send_batches``
    LINE multicast batches: members (ledger rows with the batch id), the
    content and the ``X-Line-Retry-Key`` — stored before the first request and
    reused on every retry and after a crash, so LINE answers a batch it already
    accepted with 409 and nobody gets it twice.  ``state`` ``sending`` with
    ``attempts`` > 0 means "may have been requested" (intent, committed before the
    request); only batches with ``attempts = 0`` may get a new key (narrowcast merge).
    The outcome (``sent`` with the request id and ``sent_at``, or ``failed``) is
    written on the batch row alone, for all its members at once.
``send_locks``
    One running sender per campaign (pid, host, heartbeat): a second sender
    started at the same time does nothing; a lock whose process died
    (``kill -9``) is taken over.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import sqlite3
import uuid
import zlib
from typing import Any

from crm_core import clock, opsdb

STATES = {"queued": "送信待ち", "sending": "送信中", "sent": "送信済み", "failed": "失敗", "suppressed": "配信停止・対象外",
          "held_out": "比較用に送らない", "capped": "送信回数の上限"}
CAMPAIGN_STATUS = {"draft": "下書き", "approved": "承認済み（送信待ち）", "sending": "送信中", "waiting": "配信しない時間帯のため待機中",
                   "paused": "一時停止中", "cancelled": "中止", "done": "送信完了", "ab_waiting": "A/Bテスト結果待ち"}
LOCK_STALE_SECONDS = 300

MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS send_campaigns (
        campaign_id    INTEGER PRIMARY KEY,
        name           TEXT NOT NULL,
        channel        TEXT NOT NULL CHECK (channel IN ('line', 'email', 'rmail')),
        rule           TEXT,
        template       TEXT NOT NULL,
        coupon_id      TEXT,
        holdout        REAL NOT NULL DEFAULT 0.1,
        variants       TEXT NOT NULL DEFAULT '["A"]',
        variant_templates TEXT NOT NULL DEFAULT '{}',
        send_at        TEXT NOT NULL,
        quiet_hours    TEXT NOT NULL DEFAULT '21-08',
        frequency_cap  INTEGER NOT NULL DEFAULT 3,
        status         TEXT NOT NULL DEFAULT 'draft',
        content_hash   TEXT,
        tested_hash    TEXT,
        tested_at      TEXT,
        tested_by      TEXT,
        created_by     TEXT NOT NULL,
        created_at     TEXT NOT NULL,
        approved_by    TEXT,
        approved_at    TEXT,
        approved_count INTEGER,
        accept_overage INTEGER NOT NULL DEFAULT 0,
        prepared_at    TEXT,
        finished_at    TEXT,
        funnel         TEXT NOT NULL DEFAULT '{}',
        ab             TEXT NOT NULL DEFAULT '{}',
        sender         TEXT NOT NULL DEFAULT '{}',
        note           TEXT
    );
    CREATE TABLE IF NOT EXISTS send_contents (
        content_id  INTEGER PRIMARY KEY AUTOINCREMENT,
        campaign_id INTEGER NOT NULL,
        digest      TEXT NOT NULL,
        body        BLOB NOT NULL,
        UNIQUE (campaign_id, digest)
    );
    CREATE TABLE IF NOT EXISTS send_batches (
        batch_id    INTEGER PRIMARY KEY AUTOINCREMENT,
        campaign_id INTEGER NOT NULL,
        channel     TEXT NOT NULL,
        content_id  INTEGER NOT NULL,
        retry_key   TEXT NOT NULL UNIQUE,
        kind        TEXT NOT NULL DEFAULT 'multicast' CHECK (kind IN ('multicast', 'narrowcast')),
        audience_id INTEGER,
        size        INTEGER NOT NULL,
        state       TEXT NOT NULL DEFAULT 'queued',
        request_id  TEXT,
        error       TEXT,
        attempts    INTEGER NOT NULL DEFAULT 0,
        updated_at  TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS send_batches_todo ON send_batches (campaign_id, state, batch_id);
    CREATE TABLE IF NOT EXISTS send_ledger (
        campaign_id INTEGER NOT NULL,
        customer_id TEXT NOT NULL,
        channel     TEXT NOT NULL,
        variant     TEXT,
        address     TEXT,
        state       TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'suppressed', 'held_out', 'capped')),
        reason      TEXT,
        content_id  INTEGER,
        batch_id    INTEGER,
        message_id  TEXT,
        request_id  TEXT,
        error       TEXT,
        attempts    INTEGER NOT NULL DEFAULT 0,
        seq         INTEGER NOT NULL DEFAULT 0,
        updated_at  TEXT NOT NULL,
        sent_at     TEXT,
        PRIMARY KEY (campaign_id, customer_id, channel)
    );
    CREATE INDEX IF NOT EXISTS send_ledger_todo ON send_ledger (campaign_id, channel, state, seq);
    CREATE INDEX IF NOT EXISTS send_ledger_batch ON send_ledger (batch_id);
    CREATE INDEX IF NOT EXISTS send_ledger_recent ON send_ledger (customer_id, sent_at);
    CREATE TABLE IF NOT EXISTS send_locks (
        campaign_id INTEGER PRIMARY KEY,
        owner       TEXT NOT NULL,
        pid         INTEGER NOT NULL,
        host        TEXT NOT NULL,
        heartbeat   TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE IF NOT EXISTS campaign_ids (
        campaign_id INTEGER PRIMARY KEY,
        kind        TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );
    """,
]
opsdb.register("ledger", MIGRATIONS)

INDEX_MIGRATIONS = [
    # 1: partial indexes instead of full ones on the ledger's state.  With the full indexes
    #    (campaign_id, channel, state, seq) and (customer_id, sent_at) the outcome of a LINE batch
    #    moved 1,000 index entries (each of 500 rows deleted and re-inserted in both), 4-6 ms of
    #    SQL per batch against a ~15 ms request.  The open-rows index only loses the sent rows, the
    #    sent index only gains them: about 1 ms per batch.  (A component of its own, so that its
    #    numbering never collides with scripts appended to MIGRATIONS.)
    """
    DROP INDEX IF EXISTS send_ledger_todo;
    DROP INDEX IF EXISTS send_ledger_recent;
    CREATE INDEX IF NOT EXISTS send_ledger_open ON send_ledger (campaign_id, channel, seq) WHERE state IN ('queued', 'sending');
    CREATE INDEX IF NOT EXISTS send_ledger_sent ON send_ledger (sent_at, customer_id) WHERE state = 'sent';
    """,
]
"""Queries of open rows must spell the state test as ``state IN ('queued', 'sending')`` and those of
sent rows ``state = 'sent'``: SQLite uses a partial index only when the query contains its WHERE term."""
opsdb.register("ledger_indexes", INDEX_MIGRATIONS)

CHANNEL_MIGRATIONS = [
    # 1: a live campaign may go out on LINE（なければメール） (``line_or_email``: the channel is chosen per
    #    recipient, each ledger row has its own); ``tested_channels`` holds the content hash each channel was
    #    test-sent with.  SQLite cannot change a CHECK in place: the table is rebuilt with the same columns.
    #    (A component of its own, so that its numbering never collides with scripts appended to MIGRATIONS.)
    """
    CREATE TABLE send_campaigns_v2 (
        campaign_id    INTEGER PRIMARY KEY,
        name           TEXT NOT NULL,
        channel        TEXT NOT NULL CHECK (channel IN ('line', 'email', 'rmail', 'line_or_email')),
        rule           TEXT,
        template       TEXT NOT NULL,
        coupon_id      TEXT,
        holdout        REAL NOT NULL DEFAULT 0.1,
        variants       TEXT NOT NULL DEFAULT '["A"]',
        variant_templates TEXT NOT NULL DEFAULT '{}',
        send_at        TEXT NOT NULL,
        quiet_hours    TEXT NOT NULL DEFAULT '21-08',
        frequency_cap  INTEGER NOT NULL DEFAULT 3,
        status         TEXT NOT NULL DEFAULT 'draft',
        content_hash   TEXT,
        tested_hash    TEXT,
        tested_at      TEXT,
        tested_by      TEXT,
        created_by     TEXT NOT NULL,
        created_at     TEXT NOT NULL,
        approved_by    TEXT,
        approved_at    TEXT,
        approved_count INTEGER,
        accept_overage INTEGER NOT NULL DEFAULT 0,
        prepared_at    TEXT,
        finished_at    TEXT,
        funnel         TEXT NOT NULL DEFAULT '{}',
        ab             TEXT NOT NULL DEFAULT '{}',
        sender         TEXT NOT NULL DEFAULT '{}',
        note           TEXT,
        tested_channels TEXT NOT NULL DEFAULT '{}'
    );
    INSERT INTO send_campaigns_v2 (campaign_id, name, channel, rule, template, coupon_id, holdout, variants, variant_templates,
        send_at, quiet_hours, frequency_cap, status, content_hash, tested_hash, tested_at, tested_by, created_by, created_at,
        approved_by, approved_at, approved_count, accept_overage, prepared_at, finished_at, funnel, ab, sender, note)
    SELECT campaign_id, name, channel, rule, template, coupon_id, holdout, variants, variant_templates,
        send_at, quiet_hours, frequency_cap, status, content_hash, tested_hash, tested_at, tested_by, created_by, created_at,
        approved_by, approved_at, approved_count, accept_overage, prepared_at, finished_at, funnel, ab, sender, note
    FROM send_campaigns;
    DROP TABLE send_campaigns;
    ALTER TABLE send_campaigns_v2 RENAME TO send_campaigns;
    """,
]
opsdb.register("ledger_channels", CHANNEL_MIGRATIONS)

OUTCOME_MIGRATIONS = [
    # 1: a LINE batch's outcome (sent / failed, request id, sent_at) is written on its ``send_batches`` row alone;
    #    its ledger rows keep their intent state (``queued``) and read their effective state through the batch
    #    (:data:`EFFECTIVE`, the view ``send_ledger_now``).  Writing the outcome on the 500 rows of a batch cost
    #    ≈ 2.1 ms of CPU per batch (each row rewritten, its partial-index entries moved); the batch row alone
    #    ≈ 0.04 ms.  Rows already marked by the previous release keep their own outcome (the view reads it).
#    ``send_ledger_tally`` (every row's state, by campaign and batch) lets :func:`tally` count a campaign
#    per batch instead of per row; a LINE send no longer changes a row's state, so it costs a send nothing.
    #    (A component of its own, so that its numbering never collides with scripts appended to MIGRATIONS.)
    """
    ALTER TABLE send_batches ADD COLUMN sent_at TEXT;
    UPDATE send_batches SET sent_at = updated_at WHERE state = 'sent';
    CREATE INDEX IF NOT EXISTS send_batches_sent ON send_batches (sent_at) WHERE state = 'sent';
    CREATE INDEX IF NOT EXISTS send_ledger_tally ON send_ledger (campaign_id, channel, state, batch_id, reason);
    CREATE VIEW IF NOT EXISTS send_ledger_now AS
    SELECT l.campaign_id, l.customer_id, l.channel, l.variant, l.address,
           CASE WHEN o.batch_id IS NULL THEN l.state ELSE o.state END AS state, l.state AS row_state,
           l.reason, l.content_id, l.batch_id, l.message_id,
           CASE WHEN o.batch_id IS NULL THEN l.request_id ELSE o.request_id END AS request_id,
           CASE WHEN o.batch_id IS NULL THEN l.error ELSE o.error END AS error,
           CASE WHEN o.batch_id IS NULL THEN l.attempts ELSE o.attempts END AS attempts,
           l.seq, l.updated_at,
           CASE WHEN o.batch_id IS NULL THEN l.sent_at ELSE o.sent_at END AS sent_at
    FROM send_ledger l
    LEFT JOIN send_batches o ON o.batch_id = l.batch_id AND o.state IN ('sent', 'failed') AND l.state IN ('queued', 'sending');
    """,
]
opsdb.register("ledger_outcome", OUTCOME_MIGRATIONS)

EFFECTIVE = "send_ledger_now"
"""The ledger as its readers must see it: one row per ``send_ledger`` row, same columns, with a LINE row whose
batch has an outcome (``sent`` / ``failed``) showing the batch's state, request id, error, attempts and sent_at.
The one home of the "effective state": every reader of a row's state, request id or sent time reads this view
(``FROM send_ledger_now``), never ``send_ledger``'s raw ``state`` (which for LINE stays the intent, ``queued``).
A row's own outcome wins when it has one (e-mail, R-Mail, suppressed / held out / capped rows, rows of the
previous release); a batch's outcome applies only to rows still open.  Writers keep writing ``send_ledger``.

``row_state`` is the row's own state.  An open row (effective ``queued`` / ``sending``) is always open on its own, so
readers of open rows add ``row_state IN ('queued', 'sending')``: it changes nothing in the answer and lets SQLite read
the partial index ``send_ledger_open`` (it uses a partial index only when the query spells its WHERE term)."""


def utcnow() -> dt.datetime:
    return clock.now_utc()


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


# -- contents ------------------------------------------------------------------------------
def pack(content: Any) -> bytes:
    return zlib.compress(json.dumps(content, ensure_ascii=False, sort_keys=True).encode())


def unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))


def digest(content: Any) -> str:
    return hashlib.sha256(json.dumps(content, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def store_content(con: sqlite3.Connection, campaign_id: int, content: Any, cache: dict[str, int] | None = None) -> int:
    """The content id of a body (stored once per campaign)."""
    key = digest(content)
    if cache is not None and key in cache:
        return cache[key]
    con.execute("INSERT OR IGNORE INTO send_contents (campaign_id, digest, body) VALUES (?, ?, ?)", [campaign_id, key, pack(content)])
    content_id = int(con.execute("SELECT content_id FROM send_contents WHERE campaign_id = ? AND digest = ?",
                                 [campaign_id, key]).fetchone()[0])
    if cache is not None:
        cache[key] = content_id
    return content_id


def load_content(con: sqlite3.Connection, content_id: int) -> Any:
    return unpack(con.execute("SELECT body FROM send_contents WHERE content_id = ?", [content_id]).fetchone()[0])


# -- writing ledger rows (live campaigns and scenarios) -----------------------------------------
def write_rows(con: sqlite3.Connection, campaign_id: int, channel: str, rows: list[dict[str, Any]], *, from_addr: str,
               now: dt.datetime, insert: bool = True) -> None:
    """Write the ledger rows of recipients whose content is stored, with e-mail Message-IDs and LINE batches.

    The one way live campaigns (:func:`crm_core.results.live.prepare`) and scenarios
    (:mod:`crm_core.scenarios.engine`) put recipients on the ledger, inside the caller's
    transaction.  ``rows``: dicts with ``customer_id``, ``address``, ``state``, and optionally
    ``variant``, ``reason`` and ``content_id`` (a queued row with a content is sendable: it gets a
    Message-ID, or a place in a LINE multicast batch with its own retry key).  ``insert=False``
    updates existing rows (variant, reason, content, Message-ID) instead — the rest of an A/B test.
    """
    from crm_core.messaging.channels.email_bulk import new_message_id
    from crm_core.messaging.channels.line_bulk import MULTICAST_MAX, new_retry_key

    stamp = iso(now)
    groups: dict[int, list[str]] = {}
    out = []
    base = int(con.execute("SELECT coalesce(max(seq), -1) + 1 FROM send_ledger WHERE campaign_id = ?", [campaign_id]).fetchone()[0])
    for seq, r in enumerate(rows, start=base):
        content_id, message_id = r.get("content_id"), None
        if content_id is not None and r["state"] == "queued":
            if channel == "line":
                groups.setdefault(content_id, []).append(r["customer_id"])
            elif channel == "email":
                message_id = new_message_id(from_addr or "crm@localhost")
        out.append((campaign_id, r["customer_id"], channel, r.get("variant", "A"), r["address"], r["state"], r.get("reason"),
                    content_id, message_id, seq, stamp))
    if insert:
        con.executemany(
            "INSERT INTO send_ledger (campaign_id, customer_id, channel, variant, address, state, reason, content_id, message_id, seq,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", out)
    else:
        con.executemany(
            "UPDATE send_ledger SET variant = ?, reason = NULL, content_id = ?, message_id = ?, updated_at = ?"
            " WHERE campaign_id = ? AND customer_id = ? AND channel = ?",
            [(o[3], o[7], o[8], o[10], o[0], o[1], o[2]) for o in out])
    for content_id, members in groups.items():
        for start in range(0, len(members), MULTICAST_MAX):
            chunk = members[start:start + MULTICAST_MAX]
            cur = con.execute("INSERT INTO send_batches (campaign_id, channel, content_id, retry_key, size, updated_at)"
                              " VALUES (?, 'line', ?, ?, ?, ?)", [campaign_id, content_id, new_retry_key(), len(chunk), stamp])
            con.execute("UPDATE send_ledger SET batch_id = ? WHERE campaign_id = ? AND channel = 'line'"
                        " AND customer_id IN (SELECT value FROM json_each(?))", [cur.lastrowid, campaign_id, json.dumps(chunk)])


# -- campaign ids ----------------------------------------------------------------------------------
def next_campaign_id(con: sqlite3.Connection, kind: str, *, floor: int = 0, now: dt.datetime | None = None) -> int:
    """A new campaign id for a live campaign or a scenario batch, never handed out twice (across processes).

    ``floor``: the highest id already used elsewhere (the DuckDB ``campaigns`` of recorded
    sends).  Reserved in ``campaign_ids`` under the operations store's write lock, so two
    processes allocating at once get different ids; works inside or outside the caller's
    transaction.
    """
    def take() -> int:
        row = con.execute("SELECT max(coalesce((SELECT max(campaign_id) FROM campaign_ids), 0),"
                          " coalesce((SELECT max(campaign_id) FROM send_campaigns), 0), ?) + 1", [int(floor)]).fetchone()
        new = int(row[0])
        con.execute("INSERT INTO campaign_ids VALUES (?, ?, ?)", [new, kind, iso(now or utcnow())])
        return new

    if con.in_transaction:
        return take()
    with opsdb.transaction(con):
        return take()


# -- LINE batches: intent and outcome ------------------------------------------------------------
def batch_intent(con: sqlite3.Connection, batch_id: int, now: dt.datetime) -> None:
    """Mark a batch as being sent (its members, body and retry key were stored before): one statement, committed."""
    con.execute("UPDATE send_batches SET state = 'sending', attempts = attempts + 1, updated_at = ? WHERE batch_id = ?",
                [iso(now), batch_id])


def record_batch_sent(con: sqlite3.Connection, batch_id: int, *, request_id: str | None, attempts: int, now: dt.datetime) -> None:
    """The outcome of an accepted batch: the batch ``sent`` (one statement; its ledger rows read it through the batch)."""
    with opsdb.transaction(con):
        _batch_sent(con, batch_id, request_id, attempts, iso(now))


def _batch_sent(con: sqlite3.Connection, batch_id: int, request_id: str | None, attempts: int, stamp: str) -> None:
    """The batch row alone: its members read their outcome through it (:data:`EFFECTIVE`)."""
    con.execute("UPDATE send_batches SET state = 'sent', request_id = ?, sent_at = ?, updated_at = ?, error = NULL, attempts = ?"
                " WHERE batch_id = ?", [request_id, stamp, stamp, attempts, batch_id])


def batch_step(con: sqlite3.Connection, *, sent: tuple[int, str | None, int] | None, intent: int | None, lock: tuple[int, str] | None,
               now: dt.datetime) -> tuple[list[str], bool]:
    """One transaction between two LINE multicasts: the outcome of the batch LINE accepted, the intent of the next, the heartbeat.

    ``sent``: ``(batch_id, request_id, attempts)`` of an accepted batch whose outcome is not recorded
    yet (:func:`record_batch_sent`: the batch row only); ``intent``: the batch to mark ``sending`` (:func:`batch_intent`);
    ``lock``: ``(campaign_id, owner)`` whose heartbeat to refresh.  Committed together (one commit
    instead of three).  Returns the intent batch's member addresses in order (read after the
    commit) and whether the lock is still this sender's (when it is not, only the outcome is written).

    The live sender runs this on its own connection in a thread while the request of the batch
    between the two is in flight (:mod:`crm_core.messaging.delivery`), so a batch's intent is
    committed one request ahead and its outcome one request behind: after a crash the batches
    marked ``sending`` (at most three) are sent again with their stored retry keys, and LINE
    answers those it accepted with 409.
    """
    stamp = iso(now)
    alive = True
    with opsdb.transaction(con):
        if lock is not None:
            alive = heartbeat(con, lock[0], lock[1], now)
        if sent is not None:  # LINE accepted it: true whoever holds the lock now
            _batch_sent(con, sent[0], sent[1], sent[2], stamp)
        if intent is not None and alive:
            con.execute("UPDATE send_batches SET state = 'sending', attempts = attempts + 1, updated_at = ? WHERE batch_id = ?",
                        [stamp, intent])
    members = [] if intent is None or not alive else [r[0] for r in con.execute("SELECT address FROM send_ledger WHERE batch_id = ? ORDER BY seq",
                                                                    [intent])]
    return members, alive


def withdraw_intent(con: sqlite3.Connection, batch_ids: list[int], now: dt.datetime) -> None:
    """Undo the intent of batches marked ``sending`` ahead of time whose request never left (the run stopped first).

    Only for a sender that holds the campaign's lock and knows it made no request for them: the batch is
    ``queued`` again with its attempt given back (so a never-requested batch can still be merged into a narrowcast).
    """
    if batch_ids:
        con.execute("UPDATE send_batches SET state = 'queued', attempts = max(attempts - 1, 0), updated_at = ?"
                    " WHERE state = 'sending' AND batch_id IN (SELECT value FROM json_each(?))", [iso(now), json.dumps(batch_ids)])


def record_batch_accepted(con: sqlite3.Connection, batch_id: int, *, request_id: str | None, now: dt.datetime) -> None:
    """A narrowcast LINE accepted: the batch waits for its progress (``accepted``); its rows stay open until LINE reports it sent."""
    con.execute("UPDATE send_batches SET state = 'accepted', request_id = ?, updated_at = ? WHERE batch_id = ?",
                [request_id, iso(now), batch_id])


def merge_into_narrowcast(con: sqlite3.Connection, campaign_id: int, threshold: int, now: dt.datetime) -> list[int]:
    """Turn a large LINE send into narrowcasts: per body, never-attempted multicast batches with ``threshold`` or more
    recipients in all become one narrowcast batch with its own retry key (stored before any request).

    Only batches never sent (``attempts = 0``) are merged: a batch that was requested keeps its key,
    since LINE may have accepted it.  Returns the new narrowcast batch ids.
    """
    from crm_core.messaging.channels.line_bulk import new_retry_key

    out = []
    with opsdb.transaction(con):
        groups = con.execute(
            "SELECT content_id, json_group_array(batch_id), sum(size) FROM send_batches WHERE campaign_id = ? AND channel = 'line'"
            " AND kind = 'multicast' AND state = 'queued' AND attempts = 0 GROUP BY content_id HAVING sum(size) >= ?",
            [campaign_id, max(int(threshold), 1)]).fetchall()
        for content_id, batch_ids, size in groups:
            cur = con.execute("INSERT INTO send_batches (campaign_id, channel, content_id, retry_key, kind, size, updated_at)"
                              " VALUES (?, 'line', ?, ?, 'narrowcast', ?, ?)", [campaign_id, content_id, new_retry_key(), size, iso(now)])
            con.execute("UPDATE send_ledger SET batch_id = ? WHERE batch_id IN (SELECT value FROM json_each(?))", [cur.lastrowid, batch_ids])
            con.execute("DELETE FROM send_batches WHERE batch_id IN (SELECT value FROM json_each(?))", [batch_ids])
            out.append(int(cur.lastrowid))
    return out


def split_into_multicasts(con: sqlite3.Connection, batch_id: int, now: dt.datetime, note: str) -> None:
    """Send a never-requested narrowcast batch as multicasts after all (each of at most 500 with its own retry key)."""
    from crm_core.messaging.channels.line_bulk import MULTICAST_MAX, new_retry_key

    with opsdb.transaction(con):
        batch = con.execute("SELECT * FROM send_batches WHERE batch_id = ?", [batch_id]).fetchone()
        if batch["attempts"] or batch["kind"] != "narrowcast":
            raise ValueError("only a narrowcast LINE never accepted can be split into multicasts")
        members = [r[0] for r in con.execute("SELECT rowid FROM send_ledger WHERE batch_id = ? ORDER BY seq", [batch_id])]
        for start in range(0, len(members), MULTICAST_MAX):
            chunk = members[start:start + MULTICAST_MAX]
            cur = con.execute("INSERT INTO send_batches (campaign_id, channel, content_id, retry_key, kind, size, updated_at)"
                              " VALUES (?, 'line', ?, ?, 'multicast', ?, ?)",
                              [batch["campaign_id"], batch["content_id"], new_retry_key(), len(chunk), iso(now)])
            con.execute("UPDATE send_ledger SET batch_id = ? WHERE rowid IN (SELECT value FROM json_each(?))",
                        [cur.lastrowid, json.dumps(chunk)])
        con.execute("UPDATE send_batches SET state = 'split', error = ?, updated_at = ? WHERE batch_id = ?", [note, iso(now), batch_id])


def record_batch_error(con: sqlite3.Connection, batch_id: int, *, state: str, error: str, now: dt.datetime) -> None:
    """A batch that was not accepted: ``queued`` (kept with its key and body, resumed later) or ``failed``; never ``sent``.

    Written on the batch row alone: its rows read ``failed`` through it (:data:`EFFECTIVE`) and stay ``queued`` otherwise."""
    if state not in ("queued", "failed"):
        raise ValueError(f"a batch error leaves the batch queued or failed, not {state!r}")
    con.execute("UPDATE send_batches SET state = ?, error = ?, updated_at = ? WHERE batch_id = ?", [state, error, iso(now), batch_id])


# -- counts -------------------------------------------------------------------------------------
def tally(con: sqlite3.Connection, campaign_id: int) -> list[tuple[str, str, bool, int]]:
    """A campaign's ledger rows counted by ``(channel, effective state, waiting as the rest of an A/B test)``.

    The same states as :data:`EFFECTIVE` (``tests/messaging/test_ledger_effective.py`` compares them), counted
    per batch rather than per row: the rows are grouped by their own state and batch in the covering index
    ``send_ledger_tally``, and only the groups meet their batch's outcome (a few hundred lookups instead of
    one per recipient).  The status counts, the per-channel counts and the sender's "what is left" read this.
    """
    rows = con.execute(
        "SELECT g.channel, CASE WHEN o.batch_id IS NULL THEN g.state ELSE o.state END, g.reason IS 'ab_rest', sum(g.n) FROM"
        " (SELECT channel, state, batch_id, reason, count(*) AS n FROM send_ledger WHERE campaign_id = ?"
        "  GROUP BY channel, state, batch_id, reason) g"
        " LEFT JOIN send_batches o ON o.batch_id = g.batch_id AND o.state IN ('sent', 'failed') AND g.state IN ('queued', 'sending')"
        " GROUP BY 1, 2, 3", [int(campaign_id)])
    return [(r[0], r[1], bool(r[2]), int(r[3])) for r in rows]


def counts(con: sqlite3.Connection, campaign_id: int, tallied: list[tuple[str, str, bool, int]] | None = None) -> dict[str, int]:
    """Ledger rows by effective state (every state present, 0 when none); ``tallied``: a :func:`tally` already read."""
    out = dict.fromkeys(STATES, 0)
    for _channel, state, _rest, n in tally(con, campaign_id) if tallied is None else tallied:
        out[state] += n
    return out


def recently_sent(con: sqlite3.Connection, since: dt.datetime) -> dict[str, int]:
    """Marketing messages sent per customer since a time (every campaign and scenario on the ledger).

    The rows :data:`EFFECTIVE` shows ``sent`` since then, read in two parts so that each uses its partial index
    (a filter on the view's computed state could not): rows with their own outcome (``send_ledger_sent``) and
    the open rows of batches sent since then (``send_batches_sent``, then the rows by batch).
    """
    stamp = iso(since)
    rows = con.execute("SELECT customer_id, count(*) FROM ("
                       " SELECT customer_id FROM send_ledger WHERE state = 'sent' AND sent_at >= ?"
                       " UNION ALL"
                       " SELECT l.customer_id FROM send_batches b JOIN send_ledger l ON l.batch_id = b.batch_id"
                       " WHERE b.state = 'sent' AND b.sent_at >= ? AND l.state IN ('queued', 'sending'))"
                       " GROUP BY customer_id", [stamp, stamp])
    return {r[0]: int(r[1]) for r in rows}


# -- one sender per campaign ----------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire(con: sqlite3.Connection, campaign_id: int, now: dt.datetime | None = None) -> str | None:
    """Take the campaign's send lock; returns the owner token, or None when a live sender holds it."""
    now = now or utcnow()
    owner = uuid.uuid4().hex
    host = socket.gethostname()
    with opsdb.transaction(con):
        row = con.execute("SELECT * FROM send_locks WHERE campaign_id = ?", [campaign_id]).fetchone()
        if row is not None:
            age = (now - dt.datetime.fromisoformat(row["heartbeat"])).total_seconds()
            dead = row["host"] == host and not _alive(int(row["pid"]))
            if not dead and age < LOCK_STALE_SECONDS:
                return None
            con.execute("DELETE FROM send_locks WHERE campaign_id = ?", [campaign_id])
        con.execute("INSERT INTO send_locks VALUES (?, ?, ?, ?, ?)", [campaign_id, owner, os.getpid(), host, iso(now)])
    return owner


def heartbeat(con: sqlite3.Connection, campaign_id: int, owner: str, now: dt.datetime | None = None) -> bool:
    """Refresh the lock; False when it was taken over (stop sending)."""
    cur = con.execute("UPDATE send_locks SET heartbeat = ? WHERE campaign_id = ? AND owner = ?",
                      [iso(now or utcnow()), campaign_id, owner])
    return cur.rowcount == 1


def release(con: sqlite3.Connection, campaign_id: int, owner: str) -> None:
    con.execute("DELETE FROM send_locks WHERE campaign_id = ? AND owner = ?", [campaign_id, owner])


# -- campaigns ----------------------------------------------------------------------------------
def get(con: sqlite3.Connection, campaign_id: int) -> dict[str, Any] | None:
    row = con.execute("SELECT * FROM send_campaigns WHERE campaign_id = ?", [int(campaign_id)]).fetchone()
    if row is None:
        return None
    out = dict(row)
    for key in ("variants", "variant_templates", "funnel", "ab", "sender", "tested_channels"):
        out[key] = json.loads(out[key]) if out.get(key) else ({} if key != "variants" else ["A"])
    out["rule"] = json.loads(out["rule"]) if out["rule"] else None
    return out


def set_status(con: sqlite3.Connection, campaign_id: int, status: str, note: str | None = None) -> None:
    con.execute("UPDATE send_campaigns SET status = ?, note = ? WHERE campaign_id = ?", [status, note, int(campaign_id)])


def status_of(con: sqlite3.Connection, campaign_id: int) -> str | None:
    row = con.execute("SELECT status FROM send_campaigns WHERE campaign_id = ?", [int(campaign_id)]).fetchone()
    return row[0] if row else None
