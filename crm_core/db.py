"""The one place SQL runs: connection, schema, migrations, parameter binding.

Every value reaches DuckDB as a bound parameter (``?`` or ``$name``).
Identifiers never come from user input directly: they pass an allowlist
(see :func:`quote_ident`) before they are quoted.

The store is an embedded DuckDB file: ``data/crm.duckdb`` by default,
``CRM_DB`` in the environment or ``--db`` on the command line to choose another.

Many processes, one store: a DuckDB file opened for writing excludes every
other process, so each process opens the store only for as long as one unit
of work (a command, one page run of the console, one job of the worker) and
writers take turns through a cross-process lock file beside the store
(``crm.duckdb.lock``, an OS file lock: a killed process releases it).  A
:class:`Store` holds that lock from opening to :meth:`Store.close`; stores of
one process on the same file share it.  Opening waits for the lock up to
``wait`` seconds (``$CRM_WAIT``, default 600) and then raises
:class:`StoreBusy`.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from filelock import FileLock, Timeout

from crm_core.errors import InputError

DEFAULT_DB = Path(__file__).resolve().parent.parent / "data" / "crm.duckdb"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def default_db_path() -> Path:
    """Where the store lives: ``$CRM_DB`` or ``data/crm.duckdb``."""
    env = os.environ.get("CRM_DB")
    return Path(env) if env else DEFAULT_DB


WAIT_MESSAGE = "ほかの処理がデータベースを更新しています。終わり次第始めます…"
EXIT_BUSY = 75  # sysexits EX_TEMPFAIL: try again later


class StoreBusy(InputError):
    """Another process kept the store for longer than this one was allowed to wait."""

    def __init__(self, waited: float) -> None:
        super().__init__(
            f"ほかの処理がデータベースを更新中のため、{waited:g}秒待っても始められませんでした。"
            "しばらくしてからもう一度実行してください。",
            f"store busy after waiting {waited:g} s",
        )
        self.waited = waited


def default_wait() -> float:
    """How long opening the store waits for another writer: ``$CRM_WAIT`` seconds, default 600."""
    try:
        return float(os.environ.get("CRM_WAIT", "600"))
    except ValueError:
        return 600.0


class _WriterLock:
    """The cross-process writer lock of one store file, shared by the stores of this process.

    The first :class:`Store` of the process takes the OS lock on ``<db>.lock``;
    later ones (other threads, e.g. concurrent page runs) join it; the last
    :meth:`release` gives it back.  ``filelock`` uses ``flock``: the kernel
    releases it when the process dies, so a killed process blocks nobody.
    """

    def __init__(self, lock_path: str) -> None:
        self.file = FileLock(lock_path, thread_local=False, is_singleton=False)
        self.mutex = threading.Lock()
        self.count = 0

    def acquire(self, wait: float, on_wait: Callable[[], None] | None) -> bool:
        """Take (or join) the lock; True when this call took the OS lock (no other store of this process held it)."""
        with self.mutex:
            fresh = self.count == 0
            if fresh:
                try:
                    self.file.acquire(timeout=0)
                except Timeout:
                    if on_wait is not None:
                        on_wait()
                    try:
                        self.file.acquire(timeout=max(wait, 0), poll_interval=0.05)
                    except Timeout:
                        raise StoreBusy(wait) from None
            self.count += 1
            return fresh

    def release(self) -> None:
        with self.mutex:
            self.count -= 1
            if self.count == 0:
                self.file.release(force=True)


_writer_locks: dict[str, _WriterLock] = {}
_writer_locks_guard = threading.Lock()


def _writer_lock(db_path: str) -> _WriterLock:
    key = os.path.realpath(db_path)
    with _writer_locks_guard:
        lock = _writer_locks.get(key)
        if lock is None:
            lock = _writer_locks[key] = _WriterLock(key + ".lock")
        return lock


def store_is_busy(path: str | Path | None = None) -> bool:
    """True when another process holds the store's writer lock right now (a quick probe)."""
    db = str(path if path is not None else default_db_path())
    lock = _writer_lock(db)
    with lock.mutex:
        if lock.count:
            return False  # this process holds it
        try:
            lock.file.acquire(timeout=0)
        except Timeout:
            return True
        lock.file.release(force=True)
        return False


def quote_ident(name: str, allowed: Sequence[str] | None = None) -> str:
    """Quote an identifier after checking it against an allowlist.

    Parameters
    ----------
    name : str
        The column or table name.
    allowed : sequence of str, optional
        Names that may be used here. When given, anything else is refused.

    Raises
    ------
    ValueError
        If the name is not allowed or is not a plain identifier.
    """
    if allowed is not None and name not in allowed:
        raise ValueError(f"identifier not allowed here: {name!r}")
    if not _IDENT.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return '"' + name + '"'


# SQL macros used by the importers; pure functions of their arguments.
# Each parser tries a plain cast first (the common case skips the regular
# expressions: COALESCE evaluates later branches only where earlier ones gave NULL).
# Amounts: NFKC-equivalent digit folding, then drop currency signs, commas,
# spaces and the apostrophe Shopify puts before numbers; △/▲ mean minus.
_MACROS = [
    r"""
    CREATE OR REPLACE MACRO crm_fold(s) AS
      translate(trim(s),
        '０１２３４５６７８９．，－＋：／　−ー',
        '0123456789.,-+:/ --')
    """,
    r"""
    CREATE OR REPLACE MACRO crm_amount(s) AS
      coalesce(
        TRY_CAST(s AS DECIMAL(18, 2)),
        TRY_CAST(
          regexp_replace(
            regexp_replace(crm_fold(s), '^[△▲]', '-'),
            '[¥￥円,\s]|^''', '', 'g')
          AS DECIMAL(18, 2)))
    """,
    r"""
    CREATE OR REPLACE MACRO crm_int(s) AS
      coalesce(
        TRY_CAST(s AS BIGINT),
        TRY_CAST(regexp_replace(crm_fold(s), '[,\s回個点]|^''', '', 'g') AS BIGINT))
    """,
    # Local date-time (JST) in several shapes, with an optional UTC offset
    # (+0900, +09:00, Z) that is converted to JST.
    r"""
    CREATE OR REPLACE MACRO crm_local_ts(s) AS
      try_strptime(
        regexp_replace(regexp_replace(crm_fold(s), 'T', ' '), '(\.\d+)?\s*(Z|[+-]\d\d:?\d\d)$', ''),
        ['%Y-%m-%d %H:%M:%S', '%Y/%m/%d %H:%M:%S', '%Y-%m-%d %H:%M', '%Y/%m/%d %H:%M',
         '%Y-%m-%d', '%Y/%m/%d', '%Y%m%d'])
    """,
    r"""
    CREATE OR REPLACE MACRO crm_offset_minutes(s) AS
      CASE
        WHEN regexp_matches(crm_fold(s), 'Z$') THEN 0
        WHEN regexp_matches(crm_fold(s), '[+-]\d\d:?\d\d$') THEN
          (CASE WHEN regexp_extract(crm_fold(s), '([+-])(\d\d):?(\d\d)$', 1) = '-' THEN -1 ELSE 1 END)
          * (CAST(regexp_extract(crm_fold(s), '([+-])(\d\d):?(\d\d)$', 2) AS INTEGER) * 60
             + CAST(regexp_extract(crm_fold(s), '([+-])(\d\d):?(\d\d)$', 3) AS INTEGER))
        ELSE 540
      END
    """,
    r"""
    CREATE OR REPLACE MACRO crm_ts_jst(s) AS
      coalesce(
        try_strptime(s, '%Y-%m-%d %H:%M:%S'),
        crm_local_ts(s) + to_minutes(CAST(540 - crm_offset_minutes(s) AS BIGINT)))
    """,
    r"""
    CREATE OR REPLACE MACRO crm_digits(s) AS
      NULLIF(regexp_replace(crm_fold(s), '[^0-9]', '', 'g'), '')
    """,
    # Customer identity from the configured key (see crm_core.ingest.identity).
    r"""
    CREATE OR REPLACE MACRO crm_identity(key_kind, source, customer_key, email, phone, name, postcode) AS
      CASE
        WHEN customer_key IS NOT NULL THEN 'K:' || source || ':' || customer_key
        WHEN key_kind = 'phone' AND phone IS NOT NULL THEN 'P:' || phone
        WHEN key_kind = 'name_phone' AND name IS NOT NULL AND phone IS NOT NULL
          THEN 'NP:' || replace(replace(name, ' ', ''), '　', '') || '|' || phone
        WHEN key_kind = 'name_postcode' AND name IS NOT NULL AND postcode IS NOT NULL
          THEN 'NZ:' || replace(replace(name, ' ', ''), '　', '') || '|' || postcode
        WHEN key_kind IN ('email', 'phone', 'name_phone', 'name_postcode') AND email IS NOT NULL
          THEN 'E:' || lower(trim(email))
        WHEN phone IS NOT NULL THEN 'P:' || phone
        ELSE NULL
      END
    """,
    r"""
    CREATE OR REPLACE MACRO crm_customer_id(key_kind, source, customer_key, email, phone, name, postcode, order_id) AS
      coalesce(
        'C' || substr(md5(crm_identity(key_kind, source, customer_key, email, phone, name, postcode)), 1, 12),
        'X' || substr(md5(source || ':' || order_id), 1, 12))
    """,
    r"""
    CREATE OR REPLACE MACRO crm_bool(s) AS
      CASE
        WHEN s IS NULL OR trim(s) = '' THEN NULL
        WHEN lower(trim(s)) IN ('1', 'yes', 'true', 'y', 'subscribed', 'はい', '希望する', '受け取る', 'する', '○')
          THEN TRUE
        ELSE FALSE
      END
    """,
]

MIGRATIONS: list[str] = [
    # 1: the core store
    """
    CREATE SEQUENCE IF NOT EXISTS import_seq START 1;
    CREATE TABLE IF NOT EXISTS imports (
        import_id        INTEGER,
        file_name        VARCHAR,
        sha256           VARCHAR,
        format           VARCHAR,
        encoding         VARCHAR,
        rows_read        BIGINT,
        orders_added     BIGINT,
        orders_updated   BIGINT,
        orders_unchanged BIGINT,
        lines            BIGINT,
        rows_rejected    BIGINT,
        identity_key     VARCHAR,
        imported_at      TIMESTAMP
    );
    CREATE TABLE IF NOT EXISTS orders (
        order_id         VARCHAR NOT NULL,
        source           VARCHAR NOT NULL,
        customer_id      VARCHAR,
        ordered_at       TIMESTAMP,
        status           VARCHAR,
        cancelled        BOOLEAN,
        total_amount     DECIMAL(18, 2),
        item_amount      DECIMAL(18, 2),
        shipping_fee     DECIMAL(18, 2),
        discount_amount  DECIMAL(18, 2),
        points_used      DECIMAL(18, 2),
        refunded_amount  DECIMAL(18, 2),
        coupon_code      VARCHAR,
        payment_method   VARCHAR,
        prefecture       VARCHAR,
        subscription_id  VARCHAR,
        subscription_seq INTEGER,
        buyer_name       VARCHAR,
        buyer_name_kana  VARCHAR,
        email            VARCHAR,
        phone            VARCHAR,
        postcode         VARCHAR,
        gender           VARCHAR,
        birthday         DATE,
        email_opt_in     BOOLEAN,
        customer_key     VARCHAR,
        content_hash     VARCHAR,
        import_id        INTEGER
    );
    CREATE TABLE IF NOT EXISTS order_lines (
        source       VARCHAR NOT NULL,
        order_id     VARCHAR NOT NULL,
        line_no      INTEGER NOT NULL,
        product_id   VARCHAR,
        sku          VARCHAR,
        product_name VARCHAR,
        category     VARCHAR,
        unit_price   DECIMAL(18, 2),
        quantity     INTEGER,
        line_amount  DECIMAL(18, 2)
    );
    CREATE TABLE IF NOT EXISTS contacts (
        source        VARCHAR,
        email         VARCHAR,
        phone         VARCHAR,
        name          VARCHAR,
        email_opt_in  BOOLEAN,
        sms_opt_in    BOOLEAN,
        line_user_id  VARCHAR,
        birthday      DATE,
        gender        VARCHAR,
        prefecture    VARCHAR,
        tags          VARCHAR,
        import_id     INTEGER
    );
    CREATE TABLE IF NOT EXISTS products (
        product_id     VARCHAR,
        product_name   VARCHAR,
        category       VARCHAR,
        import_id      INTEGER
    );
    CREATE TABLE IF NOT EXISTS customers (
        customer_id     VARCHAR,
        source          VARCHAR,
        name            VARCHAR,
        name_kana       VARCHAR,
        email           VARCHAR,
        phone           VARCHAR,
        gender          VARCHAR,
        birthday        DATE,
        prefecture      VARCHAR,
        email_opt_in    BOOLEAN,
        line_user_id    VARCHAR,
        tags            VARCHAR,
        orders_merged   BIGINT,
        first_seen_at   TIMESTAMP
    );
    CREATE TABLE IF NOT EXISTS import_rejects (
        import_id   INTEGER,
        file_name   VARCHAR,
        row_no      BIGINT,
        order_id    VARCHAR,
        reason      VARCHAR
    );
    CREATE TABLE IF NOT EXISTS column_mappings (
        name        VARCHAR,
        kind        VARCHAR,
        mapping     JSON,
        saved_at    TIMESTAMP
    );
    CREATE TABLE IF NOT EXISTS settings (
        key   VARCHAR,
        value JSON
    );
    """,
    # 2: the marketer's own records (before: created by each module on first use, some on every page render)
    """
    CREATE TABLE IF NOT EXISTS segments (
        segment_id  INTEGER,
        name        VARCHAR,
        rule        JSON,
        created_at  TIMESTAMP,
        updated_at  TIMESTAMP
    );
    CREATE TABLE IF NOT EXISTS segment_sizes (
        segment_id  INTEGER,
        measured_at TIMESTAMP,
        customers   BIGINT
    );
    CREATE TABLE IF NOT EXISTS message_templates (key VARCHAR PRIMARY KEY, data JSON, updated_at TIMESTAMP);
    CREATE TABLE IF NOT EXISTS coupons (
        coupon_id VARCHAR PRIMARY KEY, name VARCHAR, kind VARCHAR, value DOUBLE, min_purchase DOUBLE,
        valid_from TIMESTAMP, valid_to TIMESTAMP, code_mode VARCHAR, shared_code VARCHAR, segment VARCHAR,
        channel VARCHAR, created_at TIMESTAMP);
    CREATE TABLE IF NOT EXISTS coupon_codes (coupon_id VARCHAR, code VARCHAR PRIMARY KEY, customer_id VARCHAR, created_at TIMESTAMP);
    CREATE TABLE IF NOT EXISTS test_recipients (channel VARCHAR, address VARCHAR, label VARCHAR, added_at TIMESTAMP);
    CREATE TABLE IF NOT EXISTS send_log (
        attempt_id VARCHAR, sent_at TIMESTAMP, actor VARCHAR, kind VARCHAR, channel VARCHAR,
        template_key VARCHAR, customer_id VARCHAR, recipient VARCHAR, request_id VARCHAR,
        outcome VARCHAR, error_code VARCHAR, http_status INTEGER, attempts INTEGER);
    CREATE TABLE IF NOT EXISTS campaign_plans (
        plan_id     VARCHAR PRIMARY KEY,
        name        VARCHAR NOT NULL,
        event_id    VARCHAR,
        channel     VARCHAR NOT NULL,
        segment     VARCHAR,
        coupon      VARCHAR,
        note        VARCHAR,
        created_at  TIMESTAMP NOT NULL,
        updated_at  TIMESTAMP NOT NULL
    );
    CREATE TABLE IF NOT EXISTS planned_sends (
        send_id           VARCHAR PRIMARY KEY,
        plan_id           VARCHAR NOT NULL,
        phase             VARCHAR NOT NULL,
        label             VARCHAR NOT NULL,
        send_at           TIMESTAMP NOT NULL,
        channel           VARCHAR NOT NULL,
        template          VARCHAR NOT NULL,
        segment           VARCHAR,
        coupon            VARCHAR,
        exclude_conflicts BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE TABLE IF NOT EXISTS campaigns (
        campaign_id INTEGER PRIMARY KEY, name VARCHAR, channel VARCHAR, rule JSON, template VARCHAR,
        coupon_code VARCHAR, sent_at TIMESTAMP, attribution_days INTEGER, holdout_share DOUBLE,
        variants JSON, line_plan VARCHAR, cost_per_message DOUBLE, fixed_cost DOUBLE,
        marked_only BOOLEAN, created_at TIMESTAMP);
    CREATE TABLE IF NOT EXISTS campaign_recipients (
        campaign_id INTEGER, customer_id VARCHAR, variant VARCHAR, holdout BOOLEAN);
    CREATE TABLE IF NOT EXISTS campaign_events (
        campaign_id INTEGER, customer_id VARCHAR, delivered BOOLEAN, opened BOOLEAN, clicked BOOLEAN,
        file_name VARCHAR, imported_at TIMESTAMP);
    """,
]


def snapshot_path(db_path: str | Path) -> Path:
    """Where a long writer publishes the store as it was when it started (``crm.duckdb.snapshot``)."""
    return Path(str(db_path) + ".snapshot")


def _remove_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)


def _connect_retry(path: str, config: dict[str, str], wait: float, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retrying while a process outside the writer lock holds the file.

    Every process of the console takes the writer lock first, so this only
    waits for something else (an old version, a DuckDB shell) holding the file.
    """
    deadline = time.monotonic() + max(wait, 0)
    pause = 0.05
    while True:
        try:
            return duckdb.connect(path, read_only=read_only, config=config)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            if time.monotonic() >= deadline:
                raise StoreBusy(wait) from None
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


_MACROS_KEY = hashlib.sha256("\n".join(_MACROS).encode()).hexdigest()[:16]


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    current = row[0] or 0
    for number, script in enumerate(MIGRATIONS, start=1):
        if number <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(script)
            con.execute("INSERT INTO schema_version VALUES (?)", [number])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    # The macros are written once per version of their text (re-creating them
    # on every open costs ~100 ms: a catalog write and a checkpoint).
    con.execute("CREATE TABLE IF NOT EXISTS schema_macros (macros_key VARCHAR)")
    if con.execute("SELECT count(*) FROM schema_macros WHERE macros_key = ?", [_MACROS_KEY]).fetchone()[0]:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        for macro in _MACROS:
            con.execute(macro)
        con.execute("DELETE FROM schema_macros")
        con.execute("INSERT INTO schema_macros VALUES (?)", [_MACROS_KEY])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


class Store:
    """An open CRM store (a DuckDB database file), held for one unit of work.

    Open a store for a command, a page run or a job and :meth:`close` it (or
    use it as a context manager): while it is open, this process holds the
    store's writer lock and the DuckDB file, and every other process waits.
    Call :meth:`cursor` (or the helpers, which do) from each thread.

    Parameters
    ----------
    path : str or Path, optional
        The database file; ``":memory:"`` for a throwaway store.  Defaults to
        :func:`default_db_path`.
    wait : float, optional
        Seconds to wait for another process's writer lock (default
        :func:`default_wait`); :class:`StoreBusy` when it runs out.
    on_wait : callable, optional
        Called once, before waiting, when the store is busy (to say so).
    lazy : bool
        Open the file at the first query instead of now (so slow work that
        does not need the store, such as decoding an upload, runs before this
        process takes its turn).
    snapshot : bool
        For long writes (imports): once this store has its turn, publish a
        checkpointed copy of the store as it is (:func:`snapshot_path`) that
        the console reads, read-only, until this store closes.  Costs one
        file copy (about 1 s per GB).
    read_only : bool
        Open a file read-only without taking a turn (for a snapshot).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        wait: float | None = None,
        on_wait: Callable[[], None] | None = None,
        lazy: bool = False,
        snapshot: bool = False,
        read_only: bool = False,
    ) -> None:
        self.path = str(path if path is not None else default_db_path())
        self.snapshot = snapshot and self.path != ":memory:"
        self.read_only = read_only
        self._published = False
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.wait = default_wait() if wait is None else float(wait)
        self.on_wait = on_wait
        self._con: duckdb.DuckDBPyConnection | None = None
        self._writer: _WriterLock | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._generation = 0
        if not lazy:
            self._open()

    # -- connection -------------------------------------------------------
    def _open(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is not None:
                return self._con
            writer = None
            fresh = False
            if self.path != ":memory:" and not self.read_only:
                writer = _writer_lock(self.path)
                fresh = writer.acquire(self.wait, self.on_wait)
            try:
                # A bounded buffer pool keeps big imports within a laptop's memory
                # (DuckDB spills to a temp folder beside the database file instead).
                config = {"memory_limit": os.environ.get("CRM_DB_MEMORY_LIMIT", "1536MB")}
                con = _connect_retry(self.path, config, self.wait, read_only=self.read_only)
                try:
                    if not self.read_only:
                        _migrate(con)
                    if self.snapshot and fresh:
                        self._publish(con)
                    elif fresh:
                        _remove_quietly(snapshot_path(self.path))  # left by a writer that was killed
                except BaseException:
                    con.close()
                    raise
            except BaseException:
                if writer is not None:
                    writer.release()
                raise
            self._con, self._writer = con, writer
            self._generation += 1
            return con

    def _publish(self, con: duckdb.DuckDBPyConnection) -> None:
        """Write the snapshot: checkpoint, copy to a temporary name, rename into place (atomic)."""
        import shutil

        con.execute("CHECKPOINT")
        target = snapshot_path(self.path)
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(self.path, tmp)
        os.replace(tmp, target)
        self._published = True

    @property
    def is_open(self) -> bool:
        """True while this store holds the file (and the writer lock)."""
        return self._con is not None

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor for this thread (created on first use, then reused)."""
        con = self._con if self._con is not None else self._open()
        cur = getattr(self._local, "cur", None)
        if cur is None or getattr(self._local, "generation", None) != self._generation:
            with self._lock:
                cur = con.cursor()
            self._local.cur = cur
            self._local.generation = self._generation
        return cur

    def close(self) -> None:
        """Close the database file and give the writer lock back (idempotent)."""
        with self._lock:
            con, writer = self._con, self._writer
            self._con = self._writer = None
            if con is not None:
                con.close()
            if self._published:
                _remove_quietly(snapshot_path(self.path))
                self._published = False
            if writer is not None:
                writer.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ----------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None):
        """Run one statement with bound parameters on this thread's cursor."""
        return self.cursor().execute(sql, params or [])

    def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None):
        """First row of a query, or None."""
        return self.execute(sql, params).fetchone()

    def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[tuple]:
        """All rows of a query."""
        return self.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        """The single value of a one-row, one-column query."""
        row = self.fetchone(sql, params)
        return None if row is None else row[0]

    def df(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> pd.DataFrame:
        """A query's result as a pandas DataFrame (only for rows a page shows)."""
        return self.execute(sql, params).df()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Run a block atomically: everything commits, or nothing does."""
        cur = self.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    # -- settings ---------------------------------------------------------
    def get_setting(self, key: str, default: Any = None) -> Any:
        """A JSON setting stored in the store."""
        import json

        row = self.fetchone("SELECT value FROM settings WHERE key = ?", [key])
        return default if row is None else json.loads(row[0])

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON setting (never a secret)."""
        import json

        with self.transaction() as cur:
            cur.execute("DELETE FROM settings WHERE key = ?", [key])
            cur.execute("INSERT INTO settings VALUES (?, ?)", [key, json.dumps(value, ensure_ascii=False)])

    def has_table(self, name: str) -> bool:
        """True when the store file holds a table or view called ``name`` (temporary ones do not count)."""
        return bool(self.scalar(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = ?",
            [name],
        ))

    def table_count(self, table: str) -> int:
        """Row count of one of the store's own tables."""
        name = quote_ident(table, TABLES)
        return int(self.scalar("SELECT count(*) FROM " + name))  # noqa: S608 - allowlisted identifier

    def is_empty(self) -> bool:
        """True when no order has been imported yet."""
        return self.table_count("orders") == 0

    def clear_data(self) -> None:
        """Remove all imported shop data and everything derived from it.

        Keeps settings, saved column mappings, saved segment rules, templates,
        coupons' definitions and the test-send log.  Derived tables (the
        customer model, recommendations) are dropped; tables of later stages
        that hold customer ids are emptied when they exist.
        """
        with self.transaction() as cur:
            for table in DATA_TABLES:
                cur.execute("DELETE FROM " + quote_ident(table, DATA_TABLES))  # noqa: S608
            existing = {r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            for table in DERIVED_TABLES:
                if table in existing:
                    cur.execute("DROP TABLE " + quote_ident(table, DERIVED_TABLES))
            for table in CUSTOMER_LINKED_TABLES:
                if table in existing:
                    cur.execute("DELETE FROM " + quote_ident(table, CUSTOMER_LINKED_TABLES))  # noqa: S608


DATA_TABLES = (
    "orders",
    "order_lines",
    "customers",
    "contacts",
    "products",
    "imports",
    "import_rejects",
)
TABLES = DATA_TABLES + ("column_mappings", "settings", "schema_version")
# Rebuilt from the data after every import.
DERIVED_TABLES = ("customer_model", "customer_model_meta", "customer_recommendations", "sale_events")  # sale_events: stores of earlier versions
# Tables of later stages that refer to customers (emptied with the data, if present).
CUSTOMER_LINKED_TABLES = (
    "segment_sizes",
    "coupon_codes",
    "campaign_events",
    "campaign_recipients",
    "campaigns",
)
