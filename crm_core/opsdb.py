"""The operations store: a small transactional SQLite file beside the DuckDB store.

DuckDB keeps the analytical data (orders, customers, the model); a DuckDB file
opened for writing excludes every other process, so the many small writes that
come from several processes at once (jobs and their history, the send ledger,
consent and suppression records, the audit log, webhook events) go here
instead: SQLite in WAL mode lets any number of processes read while one
writes, a writer waits up to ``busy_timeout`` for another, and a process
killed at any moment leaves every committed transaction intact.

The file is ``<store stem>.ops.sqlite`` next to the DuckDB file
(``data/crm.duckdb`` -> ``data/crm.ops.sqlite``); ``CRM_OPS_DB`` overrides it.

Each package contributes its own tables through :func:`register`: a component
name and an append-only list of DDL scripts, numbered 1, 2, … by position
(never edit or reorder a published script; add a new one).  :func:`connect`
applies every registered script that the file has not seen yet, each in its
own transaction, and records it in ``ops_schema``.  Registration happens when
the contributing module is imported, so any code that uses a component's
tables has registered them before its first :func:`connect`.

    from crm_core import opsdb

    MIGRATIONS = [
        '''CREATE TABLE send_ledger (...);''',
    ]
    opsdb.register("ledger", MIGRATIONS)

    with opsdb.transaction(opsdb.connect(path)) as con:
        con.execute("INSERT INTO send_ledger VALUES (?, ?)", [a, b])
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000

_registry: dict[str, tuple[str, ...]] = {}
_registry_lock = threading.Lock()
# (resolved path, component) -> number of scripts known applied in this process
_applied: dict[tuple[str, str], int] = {}


def ops_path(db_path: str | Path) -> Path:
    """The operations file for a DuckDB store path (``CRM_OPS_DB`` overrides).

    ``data/crm.duckdb`` -> ``data/crm.ops.sqlite``.
    """
    env = os.environ.get("CRM_OPS_DB")
    if env:
        return Path(env)
    p = Path(db_path)
    return p.with_name(p.stem + ".ops.sqlite")


def register(component: str, migrations: Sequence[str]) -> None:
    """Declare a component's tables: DDL scripts numbered 1, 2, … by position.

    Calling it again with the same component replaces the list (module reloads);
    a list must only ever grow.
    """
    if not component or not component.replace("_", "").isalnum():
        raise ValueError(f"component name must be a plain word: {component!r}")
    with _registry_lock:
        _registry[component] = tuple(migrations)


def registered() -> dict[str, tuple[str, ...]]:
    """A copy of the registry (component -> scripts)."""
    with _registry_lock:
        return dict(_registry)


def connect(path: str | Path, *, timeout_ms: int = BUSY_TIMEOUT_MS, migrate: bool = True) -> sqlite3.Connection:
    """Open the operations file: WAL, ``busy_timeout``, foreign keys on, migrated.

    The connection is in autocommit mode (``isolation_level=None``): a single
    statement commits by itself; use :func:`transaction` for several.  Rows come
    back as :class:`sqlite3.Row` (index or name).  Open one connection per
    thread and close it when done (``with contextlib.closing(connect(p))``).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(str(path), timeout=timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    except sqlite3.OperationalError as exc:
        if _read_only_folder(path.parent):  # a store on a read-only mount: said as such (failures.translate)
            raise OSError(errno.EROFS, "operations store folder is read-only") from exc
        raise
    con.row_factory = sqlite3.Row
    con.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
    _use_wal(con, timeout_ms)
    # NORMAL is durable against process crashes (kill -9) in WAL mode; only a
    # power loss can drop the last transactions.  FULL costs an fsync per commit.
    con.execute("PRAGMA synchronous = " + ("FULL" if os.environ.get("CRM_OPS_SYNC_FULL") else "NORMAL"))
    con.execute("PRAGMA foreign_keys = ON")
    if migrate:
        _migrate(con, str(path.resolve()))
    return con


def _use_wal(con: sqlite3.Connection, timeout_ms: int) -> None:
    """Put the file in WAL mode (once per file: the mode is stored in it).

    Switching a new file to WAL takes a lock SQLite does not wait for (the busy
    timeout does not apply), so processes that open a fresh file together (two
    workers and the console after ``./run.sh``) retry here until the first one
    has switched it, within the same timeout.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    pause = 0.005
    while True:
        try:
            if str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                con.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _read_only_folder(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY) or not os.access(folder, os.W_OK)
    except OSError:
        return False


@contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on any exception).

    IMMEDIATE takes the write lock at the start, so two processes that read
    then write (claim a job, check then insert) never both succeed on stale
    reads; the second waits up to ``busy_timeout``.
    """
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def applied_versions(con: sqlite3.Connection) -> dict[str, int]:
    """component -> highest script number applied to this file."""
    rows = con.execute("SELECT component, max(version) FROM ops_schema GROUP BY component").fetchall()
    return {r[0]: int(r[1]) for r in rows}


def _migrate(con: sqlite3.Connection, key: str) -> None:
    wanted = registered()
    if all(_applied.get((key, c), 0) >= len(s) for c, s in wanted.items()):
        return
    con.execute(
        "CREATE TABLE IF NOT EXISTS ops_schema ("
        " component TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
        " PRIMARY KEY (component, version))"
    )
    for component, scripts in sorted(wanted.items()):
        for number, script in enumerate(scripts, start=1):
            if _applied.get((key, component), 0) >= number:
                continue
            # One transaction per script; IMMEDIATE so two processes starting
            # together do not both apply it (the second sees the row and skips).
            with transaction(con):
                done = con.execute(
                    "SELECT 1 FROM ops_schema WHERE component = ? AND version = ?", [component, number]
                ).fetchone()
                if done is None:
                    for statement in _statements(script):
                        con.execute(statement)
                    con.execute("INSERT INTO ops_schema (component, version) VALUES (?, ?)", [component, number])
            _applied[(key, component)] = number


def _statements(script: str) -> list[str]:
    """Split a DDL script into complete statements (``sqlite3.complete_statement``)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip().strip(";").strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


# -- the jobs tables (used by crm_core.jobs and the worker) ------------------
JOBS_MIGRATIONS = [
    # 1: jobs (one row per unit of work: queued -> running -> done | failed),
    #    job_runs (history: one row per attempt), job_schedules (recurring work).
    """
    CREATE TABLE IF NOT EXISTS jobs (
        job_id       INTEGER PRIMARY KEY AUTOINCREMENT,
        kind         TEXT NOT NULL,
        args         TEXT NOT NULL DEFAULT '{}',
        dedupe_key   TEXT UNIQUE,
        run_at       TEXT NOT NULL,
        status       TEXT NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        attempts     INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 3,
        worker       TEXT,
        lease_until  TEXT,
        created_at   TEXT NOT NULL,
        created_by   TEXT,
        finished_at  TEXT,
        result       TEXT,
        error        TEXT
    );
    CREATE INDEX IF NOT EXISTS jobs_due ON jobs (status, run_at);
    CREATE TABLE IF NOT EXISTS job_runs (
        run_id       INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id       INTEGER NOT NULL REFERENCES jobs (job_id),
        kind         TEXT NOT NULL,
        worker       TEXT NOT NULL,
        started_at   TEXT NOT NULL,
        finished_at  TEXT,
        outcome      TEXT NOT NULL DEFAULT 'running'
                     CHECK (outcome IN ('running', 'done', 'failed', 'lost')),
        summary      TEXT,
        error        TEXT
    );
    CREATE INDEX IF NOT EXISTS job_runs_job ON job_runs (job_id);
    CREATE INDEX IF NOT EXISTS job_runs_started ON job_runs (started_at);
    CREATE TABLE IF NOT EXISTS job_schedules (
        name         TEXT PRIMARY KEY,
        kind         TEXT NOT NULL,
        args         TEXT NOT NULL DEFAULT '{}',
        trigger      TEXT NOT NULL,
        next_run_at  TEXT,
        enabled      INTEGER NOT NULL DEFAULT 1
    );
    """,
]
register("jobs", JOBS_MIGRATIONS)
