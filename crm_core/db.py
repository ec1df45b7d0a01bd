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
one process on the same file share it.  Readers (commands that open the file
read-only) take turns with writers through a second lock file
(``crm.duckdb.readers``: shared by readers, exclusive for the writer), since
DuckDB lets a read-only opening and a writing one of the same file exclude
each other too.  Opening waits for its turn up to ``wait`` seconds
(``$CRM_WAIT``, default 600) and then raises :class:`StoreBusy`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
from filelock import FileLock, Timeout

from crm_core.errors import InputError

DEFAULT_DB = Path(__file__).resolve().parent.parent / "data" / "crm.duckdb"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_ENSURE = re.compile(r"\s*CREATE\s+(TABLE|SEQUENCE|INDEX)\s+IF\s+NOT\s+EXISTS\s+([A-Za-z_][A-Za-z0-9_]*)", re.I)


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


QUIET_WAIT = 0.5
"""Seconds a process waits for the store's turn before it says so (``on_wait``): a console keeping the store
between page runs gives it back within 50 ms of the signal (:func:`signal_want`), which needs no message."""


class _ReadersGate:
    """Readers against the writer of one store file: ``<db>.readers``, ``flock`` shared or exclusive.

    A read-only DuckDB opening and a writing one exclude each other across
    processes, so readers take their turn too: each reader process holds the
    gate shared, the writer (inside :class:`_WriterLock`, after the writers'
    lock) holds it exclusive.  Stores of one process share one hold.  Where the
    file cannot be created (a read-only folder) there is no gate: nobody can
    write there either.  The kernel releases a killed process's hold.
    """

    def __init__(self, path: str, exclusive: bool) -> None:
        self.path = path
        self.op = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        self.mutex = threading.Lock()
        self.count = 0
        self.fd: int | None = None

    def acquire(self, wait: float, on_wait: Callable[[], None] | None, told: bool = False) -> None:
        """Take (or join) the gate, waiting up to ``wait`` seconds (``on_wait`` once, unless ``told``); else StoreBusy."""
        with self.mutex:
            if self.count == 0:
                self.fd = self._take(wait, on_wait, told)
            self.count += 1

    def _take(self, wait: float, on_wait: Callable[[], None] | None, told: bool) -> int | None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        started = time.monotonic()
        deadline = started + max(wait, 0)
        pause = 0.02
        while True:
            try:
                fcntl.flock(fd, self.op | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StoreBusy(wait) from None
                if not told and on_wait is not None and time.monotonic() - started >= QUIET_WAIT:
                    on_wait()
                    told = True
                signal_want(self.path.removesuffix(".readers"))  # wait > 0 here (else the deadline has passed)
                time.sleep(pause)
                pause = min(pause * 2, 0.25)
            except OSError:  # a file system without flock: no gate
                os.close(fd)
                return None

    def release(self) -> None:
        with self.mutex:
            self.count -= 1
            if self.count == 0 and self.fd is not None:
                os.close(self.fd)  # closing the descriptor releases the flock
                self.fd = None


def readers_path(db_path: str | Path) -> str:
    """The readers' gate beside the store file (``crm.duckdb.readers``)."""
    return str(db_path) + ".readers"


WANT_FRESH = 1.0
"""Seconds a waiting process's signal (:func:`someone_waits`) counts; a waiter renews it every 0.25 s."""


def want_path(db_path: str | Path) -> str:
    """The file whose time a process waiting for the store's turn renews (``crm.duckdb.want``; beside the real file,
    as the locks are: a store reached through a symbolic link has one signal)."""
    return os.path.realpath(db_path) + ".want"


def signal_want(db_path: str | Path) -> None:
    """Tell whoever holds the store that this process waits for its turn (the console then gives it back at once)."""
    path = want_path(db_path)
    try:
        with open(path, "a"):
            pass
        os.utime(path)
    except OSError:  # a read-only folder: nobody can keep a turn there for long either
        pass


def someone_waits(db_path: str | Path) -> bool:
    """True when another process waits for the store's turn right now (its signal is under :data:`WANT_FRESH` s old)."""
    try:
        return time.time() - os.stat(want_path(db_path)).st_mtime < WANT_FRESH
    except OSError:
        return False


_reader_gates: dict[str, _ReadersGate] = {}


def _reader_gate(db_path: str) -> _ReadersGate:
    key = os.path.realpath(db_path)
    with _writer_locks_guard:
        gate = _reader_gates.get(key)
        if gate is None:
            gate = _reader_gates[key] = _ReadersGate(readers_path(key), exclusive=False)
        return gate


class _WriterLock:
    """The cross-process writer lock of one store file, shared by the stores of this process.

    The first :class:`Store` of the process takes the OS lock on ``<db>.lock``
    (writers take turns), then the readers' gate exclusively (it waits for
    readers to finish, and readers wait for it); later stores (other threads,
    e.g. concurrent page runs) join; the last :meth:`release` gives both back.
    ``filelock`` uses ``flock``: the kernel releases it when the process dies,
    so a killed process blocks nobody.
    """

    def __init__(self, lock_path: str) -> None:
        self.db_path = lock_path.removesuffix(".lock")
        self.file = FileLock(lock_path, thread_local=False, is_singleton=False)
        self.readers = _ReadersGate(readers_path(self.db_path), exclusive=True)
        self.mutex = threading.Lock()
        self.count = 0

    def acquire(self, wait: float, on_wait: Callable[[], None] | None) -> bool:
        """Take (or join) the lock; True when this call took the OS lock (no other store of this process held it)."""
        with self.mutex:
            fresh = self.count == 0
            if fresh:
                start = time.monotonic()
                told = False
                try:
                    self.file.acquire(timeout=0)
                except Timeout:
                    if wait <= 0:  # not waiting: no signal either (the holder need not give the store back for us)
                        raise StoreBusy(wait) from None
                    deadline = start + wait
                    while True:  # the signal renewed every 0.25 s while waiting (see signal_want)
                        signal_want(self.db_path)
                        if not told and on_wait is not None and time.monotonic() - start >= QUIET_WAIT:
                            on_wait()
                            told = True
                        try:
                            self.file.acquire(timeout=min(0.25, max(deadline - time.monotonic(), 0)), poll_interval=0.05)
                            break
                        except Timeout:
                            if time.monotonic() >= deadline:
                                raise StoreBusy(wait) from None
                try:
                    self.readers.acquire(max(wait, 0) - (time.monotonic() - start), on_wait, told=told)
                except StoreBusy:
                    self.file.release(force=True)
                    raise StoreBusy(wait) from None
                except BaseException:
                    self.file.release(force=True)
                    raise
            self.count += 1
            return fresh

    def release(self) -> None:
        with self.mutex:
            self.count -= 1
            if self.count == 0:
                self.readers.release()
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
        except OSError:  # the lock file cannot be created (a read-only folder): no writer can be at work there
            return False
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
# Temporary macros, defined on every connection (cursor) the store opens: the
# store file is never rewritten to define them, so a read-only store works.
# Each parser tries a plain cast first (the common case skips the regular
# expressions: COALESCE evaluates later branches only where earlier ones gave NULL).
# Amounts: NFKC-equivalent digit folding, then drop currency signs, commas,
# spaces and the apostrophe Shopify puts before numbers; △/▲ mean minus.
_MACROS = [
    r"""
    CREATE OR REPLACE TEMP MACRO crm_fold(s) AS
      translate(trim(s),
        '０１２３４５６７８９．，－＋：／　−ー',
        '0123456789.,-+:/ --')
    """,
    r"""
    CREATE OR REPLACE TEMP MACRO crm_amount(s) AS
      coalesce(
        TRY_CAST(s AS DECIMAL(18, 2)),
        TRY_CAST(
          regexp_replace(
            regexp_replace(crm_fold(s), '^[△▲]', '-'),
            '[¥￥円,\s]|^''', '', 'g')
          AS DECIMAL(18, 2)))
    """,
    r"""
    CREATE OR REPLACE TEMP MACRO crm_int(s) AS
      coalesce(
        TRY_CAST(s AS BIGINT),
        TRY_CAST(regexp_replace(crm_fold(s), '[,\s回個点]|^''', '', 'g') AS BIGINT))
    """,
    # Local date-time (JST) in several shapes, with an optional UTC offset
    # (+0900, +09:00, Z) that is converted to JST.
    r"""
    CREATE OR REPLACE TEMP MACRO crm_local_ts_any(s) AS
      try_strptime(
        regexp_replace(regexp_replace(crm_fold(s), 'T', ' '), '(\.\d+)?\s*(Z|[+-]\d\d:?\d\d)$', ''),
        ['%Y-%m-%d %H:%M:%S', '%Y/%m/%d %H:%M:%S', '%Y-%m-%d %H:%M', '%Y/%m/%d %H:%M',
         '%Y-%m-%d', '%Y/%m/%d', '%Y%m%d'])
    """,
    r"""
    CREATE OR REPLACE TEMP MACRO crm_offset_minutes(s) AS
      CASE
        WHEN regexp_matches(crm_fold(s), 'Z$') THEN 0
        WHEN regexp_matches(crm_fold(s), '[+-]\d\d:?\d\d$') THEN
          (CASE WHEN regexp_extract(crm_fold(s), '([+-])(\d\d):?(\d\d)$', 1) = '-' THEN -1 ELSE 1 END)
          * (CAST(regexp_extract(crm_fold(s), '([+-])(\d\d):?(\d\d)$', 2) AS INTEGER) * 60
             + CAST(regexp_extract(crm_fold(s), '([+-])(\d\d):?(\d\d)$', 3) AS INTEGER))
        ELSE 540
      END
    """,
    # The common shapes (ASCII `YYYY-MM-DD` with or without `HH:MM:SS`, no offset) by a plain cast:
    # the general parser above runs regular expressions and seven formats (about 100x slower).
    # The pattern admits only what the general parser reads the same way (hours 00-23, no sign).
    r"""
    CREATE OR REPLACE TEMP MACRO crm_ts_plain(s) AS
      CASE WHEN regexp_full_match(s, '\d{4}-\d\d-\d\d( ([01]\d|2[0-3]):[0-5]\d:[0-5]\d)?')
           THEN TRY_CAST(s AS TIMESTAMP) END
    """,
    r"""
    CREATE OR REPLACE TEMP MACRO crm_local_ts(s) AS
      coalesce(crm_ts_plain(s), crm_local_ts_any(s))
    """,
    r"""
    CREATE OR REPLACE TEMP MACRO crm_ts_jst(s) AS
      coalesce(
        crm_ts_plain(s),
        crm_local_ts_any(s) + to_minutes(CAST(540 - crm_offset_minutes(s) AS BIGINT)))
    """,
    r"""
    CREATE OR REPLACE TEMP MACRO crm_digits(s) AS
      NULLIF(regexp_replace(crm_fold(s), '[^0-9]', '', 'g'), '')
    """,
    # Customer identity from the configured key (see crm_core.ingest.identity).
    r"""
    CREATE OR REPLACE TEMP MACRO crm_identity(key_kind, source, customer_key, email, phone, name, postcode) AS
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
    # The whole 128-bit MD5 (not a prefix): at millions of customers two people
    # never share an id (a 48-bit prefix merged about 1% of shops of 2.4 M).
    r"""
    CREATE OR REPLACE TEMP MACRO crm_customer_id(key_kind, source, customer_key, email, phone, name, postcode, order_id) AS
      coalesce(
        'C' || md5(crm_identity(key_kind, source, customer_key, email, phone, name, postcode)),
        'X' || md5(source || ':' || order_id))
    """,
    r"""
    CREATE OR REPLACE TEMP MACRO crm_bool(s) AS
      CASE
        WHEN s IS NULL OR trim(s) = '' THEN NULL
        WHEN lower(trim(s)) IN ('1', 'yes', 'true', 'y', 'subscribed', 'はい', '希望する', '受け取る', 'する', '○')
          THEN TRUE
        ELSE FALSE
      END
    """,
]

MIGRATIONS: list = [
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
        content_hash     VARCHAR,  -- UBIGINT since migration 9
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
    # 3: the shop's own customer number stays visible (issue 11)
    """
    ALTER TABLE customers ADD COLUMN IF NOT EXISTS customer_key VARCHAR;
    ALTER TABLE contacts ADD COLUMN IF NOT EXISTS customer_key VARCHAR;
    """,
]


def _full_customer_ids(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 4: customer ids from the whole MD5 instead of its first 12 hex digits.

    Every table holding a ``customer_id`` (customers, the customer model,
    campaign recipients, coupon codes, the send log, ...) follows its orders'
    new id.  The store then records that the customers table and the derived
    tables are to be rebuilt (``refresh_due = "customers"``, finished by
    :func:`crm_core.pipeline.finish_pending` on the next start or command).
    """
    if not con.execute("SELECT count(*) FROM orders").fetchone()[0]:
        return
    row = con.execute("SELECT value ->> '$' FROM settings WHERE key = 'identity_key'").fetchone()
    key = row[0] if row and row[0] in ("email", "phone", "name_phone", "name_postcode") else "email"
    new_id = "crm_customer_id(?, source, customer_key, email, phone, buyer_name, postcode, order_id)"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE id_map AS SELECT customer_id AS old_id, min(" + new_id + ") AS new_id "  # noqa: S608 - constant
        "FROM orders GROUP BY customer_id",
        [key],
    )
    con.execute("UPDATE orders SET customer_id = " + new_id, [key])  # noqa: S608 - constant
    linked = con.execute(
        "SELECT table_name FROM information_schema.columns WHERE table_catalog = current_database() "
        "AND table_schema = 'main' AND column_name = 'customer_id' AND table_name <> 'orders' "
        "AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
        "AND table_schema = 'main' AND table_catalog = current_database())"
    ).fetchall()
    for (table,) in linked:
        name = quote_ident(table)
        con.execute(
            "UPDATE " + name + " AS t SET customer_id = m.new_id FROM id_map AS m WHERE t.customer_id = m.old_id"  # noqa: S608
        )
    con.execute("DROP TABLE temp.id_map")
    con.execute("DELETE FROM settings WHERE key = 'refresh_due'")
    con.execute("""INSERT INTO settings VALUES ('refresh_due', '"customers"')""")


MIGRATIONS.append(_full_customer_ids)  # 4: collision-free customer ids
# 5: the shop's users and roles, and the audit log (crm_core.access)
MIGRATIONS.append("""
    CREATE TABLE IF NOT EXISTS users (
        email     VARCHAR PRIMARY KEY,
        name      VARCHAR,
        role      VARCHAR NOT NULL,
        added_at  TIMESTAMP,
        added_by  VARCHAR
    );
    CREATE TABLE IF NOT EXISTS audit_log (
        logged_at   TIMESTAMP,
        user_email  VARCHAR,
        role        VARCHAR,
        action      VARCHAR,
        detail      VARCHAR
    );
""")

# 6: product costs (gross profit), LINE link files and reach history, aggregate message reports
MIGRATIONS.append("""
    ALTER TABLE products ADD COLUMN IF NOT EXISTS sku VARCHAR;
    ALTER TABLE products ADD COLUMN IF NOT EXISTS jan VARCHAR;
    ALTER TABLE products ADD COLUMN IF NOT EXISTS unit_cost DECIMAL(18, 2);
    ALTER TABLE products ADD COLUMN IF NOT EXISTS margin_rate DOUBLE;
    ALTER TABLE products ADD COLUMN IF NOT EXISTS cost_source VARCHAR;
    CREATE TABLE IF NOT EXISTS category_margins (
        category     VARCHAR,
        margin_rate  DOUBLE,
        updated_at   TIMESTAMP
    );
    CREATE TABLE IF NOT EXISTS line_links (
        order_id      VARCHAR,
        phone         VARCHAR,
        email         VARCHAR,
        line_user_id  VARCHAR,
        import_id     INTEGER
    );
    CREATE TABLE IF NOT EXISTS line_reach (
        import_id      INTEGER,
        recorded_at    TIMESTAMP,
        file_names     VARCHAR,
        customers      BIGINT,
        line_customers BIGINT
    );
    CREATE TABLE IF NOT EXISTS message_stats (
        stats_id        BIGINT,
        campaign_id     INTEGER,
        source          VARCHAR,
        message_name    VARCHAR,
        sent_on         DATE,
        delivered       BIGINT,
        opens           BIGINT,
        clicks          BIGINT,
        unique_clicks   BIGINT,
        withheld        VARCHAR,
        import_id       INTEGER,
        recorded_at     TIMESTAMP
    );
""")


# 7: a unique code's own expiry (scenario coupons valid for N days from each customer's send)
MIGRATIONS.append("""
    ALTER TABLE coupon_codes ADD COLUMN IF NOT EXISTS valid_to TIMESTAMP;
""")

# 8: customers whose orders an import changed since the last refresh (NULL: everyone), see crm_core.pipeline
MIGRATIONS.append("CREATE TABLE IF NOT EXISTS refresh_touched (customer_id VARCHAR)")

LAST_ORDERS_FILE = "last_orders_file:"
"""Settings key prefix: a source's last orders file and the state it left the store in (crm_core.ingest.importer)."""


def orders_state(cur: duckdb.DuckDBPyConnection, source: str) -> str:
    """What the store holds of one source's orders: count, import ids and a hash over every order's content hash."""
    n, ids, sig = cur.execute(
        "SELECT count(*), sum(import_id), bit_xor(hash(content_hash)) FROM orders WHERE source = ?", [source]
    ).fetchone()
    return f"{n}:{ids}:{sig}"


SAMPLE_ORDER_HASH = "8242562823385885598"
"""SQL literal for the content hash of the sample campaigns' extra orders: DuckDB's ``hash('sample-campaign')``
(no file's orders hash to it but by chance), written as the number so that migration 9's expression calls no
function (DuckDB replays a log before its built-in functions are loaded)."""


def _numeric_content_hashes(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 9: ``orders.content_hash`` as the 64-bit number it is, not its decimal text (a faster import).

    The value stays the same, so a file imported before diffs as before.  Text
    that is not such a number (an older MD5 format) becomes 0: it never equalled
    a new hash, and still does not, so those orders count as changed, as before.
    The sample campaigns' marker becomes :data:`SAMPLE_ORDER_HASH`.  A source's
    last-file record whose state still matches the store is carried over to the
    new column, so the re-import shortcut keeps recognising that file.
    """
    kind = con.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_catalog = current_database() "
        "AND table_schema = 'main' AND table_name = 'orders' AND column_name = 'content_hash'"
    ).fetchone()
    if kind and kind[0] == "UBIGINT":
        return
    records = con.execute("SELECT key, value FROM settings WHERE key LIKE ?", [LAST_ORDERS_FILE + "%"]).fetchall()
    current = []
    for key, value in records:
        record = json.loads(value)
        if record.get("state") == orders_state(con, key[len(LAST_ORDERS_FILE):]):
            current.append((key, record))
    con.execute(
        "ALTER TABLE orders ALTER content_hash TYPE UBIGINT USING CASE "
        "WHEN content_hash IS NULL THEN NULL "
        "WHEN content_hash = 'sample-campaign' THEN " + SAMPLE_ORDER_HASH + " "  # noqa: S608 - constant
        "ELSE coalesce(TRY_CAST(content_hash AS UBIGINT), 0) END"
    )
    for key, record in current:
        record["state"] = orders_state(con, key[len(LAST_ORDERS_FILE):])
        con.execute("UPDATE settings SET value = ? WHERE key = ?", [json.dumps(record), key])


MIGRATIONS.append(_numeric_content_hashes)  # 9: content hashes as 64-bit numbers


REFRESH_DUE = "refresh_due"
"""Setting: data changed but the derived tables (customer model, ...) are not rebuilt yet."""


def mark_refresh_due(cur: duckdb.DuckDBPyConnection) -> None:
    """Record, inside the caller's transaction, that derived tables must be rebuilt (see :mod:`crm_core.pipeline`)."""
    cur.execute("DELETE FROM settings WHERE key = ?", [REFRESH_DUE])
    cur.execute("INSERT INTO settings VALUES (?, 'true')", [REFRESH_DUE])


def snapshot_path(db_path: str | Path) -> Path:
    """Where a long writer publishes the store as it was when it started (``crm.duckdb.snapshot``)."""
    return Path(str(db_path) + ".snapshot")


def _remove_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)


FOREIGN_HOLDER_WAIT = 5.0
"""Seconds a writer retries when a program outside the console (a DuckDB shell, an old version) holds the file."""


def _connect_retry(path: str, config: dict[str, str], wait: float, read_only: bool = False,
                   turn_taken: bool = False) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retrying while another process holds the file.

    Every process of the console takes its turn first (``turn_taken``: the
    writer lock and the readers' gate), so an opening that still finds the
    file locked has met a program outside the console: it retries for
    :data:`FOREIGN_HOLDER_WAIT` seconds and then says who holds the file
    (:mod:`crm_core.failures`).  Without a gate (a read-only folder) a
    reader waits up to ``wait`` for a console writer, and like a writer for
    anything else.
    """
    start = time.monotonic()
    pause = 0.05
    while True:
        try:
            return duckdb.connect(path, read_only=read_only, config=config)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            # A reader facing a console writer (it holds the writer lock) waits for its turn;
            # anyone facing a program outside the console gives up soon and says who holds the file.
            ours = read_only and not turn_taken and store_is_busy(path)
            limit = max(wait, 0) if ours else min(max(wait, 0), FOREIGN_HOLDER_WAIT)
            if time.monotonic() - start >= limit:
                if ours:
                    raise StoreBusy(wait) from None
                from crm_core.failures import translate

                raise (translate(exc, path) or StoreBusy(wait)) from exc
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Apply the migrations the file has not seen yet, each in its own transaction.

    The parsing macros are not stored in the file: :func:`_define_macros`
    defines them as temporary macros on every cursor (and here, for the
    migrations, only when one is due: 10 ms of every page run otherwise), so a
    read-only file works as well and opening a store writes nothing when
    nothing changed.
    """
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    current = row[0] or 0
    if current >= len(MIGRATIONS):
        return
    _define_macros(con)  # some migrations use them (the queries' cursors define their own: see Store.cursor)
    applied = False
    for number, script in enumerate(MIGRATIONS, start=1):
        if number <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            if callable(script):
                script(con)
            else:
                con.execute(script)
            con.execute("INSERT INTO schema_version VALUES (?)", [number])
            con.execute("COMMIT")
        except Exception:
            rollback_quietly(con)
            raise
        applied = True
    if applied:
        # Migrations rewrite tables (ALTER ... USING an expression): leave none of that in the write-ahead log.
        # DuckDB replays the log on open before its built-in functions are loaded, so a crash right after a
        # migration would otherwise make it try to download an extension — and refuse to open offline.
        con.execute("CHECKPOINT")


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
    read_only : bool or None
        ``True`` opens the file for reading only (nothing is migrated or
        written; commands that only read use this), ``False`` for reading and
        writing, ``None`` (default) for reading and writing unless the file
        or its folder is read-only, in which case it is opened read-only.

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

    Raises
    ------
    StorageError
        When the file cannot be opened: held by a program outside the console,
        missing (read-only), no permission, a full disk (see :mod:`crm_core.failures`).
    StoreBusy
        When another process of the console kept its turn longer than ``wait``.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        read_only: bool | None = None,
        *,
        wait: float | None = None,
        on_wait: Callable[[], None] | None = None,
        lazy: bool = False,
        snapshot: bool = False,
    ) -> None:
        self.path = str(path if path is not None else default_db_path())
        self.snapshot = snapshot and self.path != ":memory:"
        self.read_only = bool(read_only) and self.path != ":memory:"
        self._published = False
        try:
            if read_only is None and self.path != ":memory:" and _looks_read_only(Path(self.path)):
                self.read_only = True
            if self.path != ":memory:" and not self.read_only:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._failure(exc) from exc
        self.wait = default_wait() if wait is None else float(wait)
        self.on_wait = on_wait
        self._con: duckdb.DuckDBPyConnection | None = None
        self._writer: _WriterLock | _ReadersGate | None = None  # this store's turn, given back at close
        self._lock = threading.Lock()
        self._local = threading.local()
        self._generation = 0
        if not lazy:
            self._open()

    def _failure(self, exc: BaseException) -> BaseException:
        """The Japanese :class:`StorageError` for a machine failure, else ``exc`` itself."""
        from crm_core.errors import StorageError
        from crm_core.failures import translate

        problem = translate(exc, self.path)
        if problem is not None and problem.kind == "read_only" and self.path.endswith(".snapshot"):
            # the console reads an import's snapshot meanwhile: nothing can be saved until the import ends
            return StorageError("データの取込中のため、いまは保存できません。取込が終わってからもう一度お試しください。",
                                f"write to the snapshot during an import: {problem.detail}", "busy_import")
        return problem or exc

    def _guard(self, fn: Any, *args: Any) -> Any:
        """Call ``fn``; a machine failure becomes a :class:`StorageError`, anything else is raised as is."""
        try:
            return fn(*args)
        except (duckdb.Error, OSError, RecursionError, MemoryError) as exc:
            problem = self._failure(exc)
            if problem is exc:
                raise
            raise problem from exc

    # -- connection -------------------------------------------------------
    def _open(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is not None:
                return self._con
            writer: _WriterLock | _ReadersGate | None = None
            fresh = False
            turn_taken = False
            if self.path != ":memory:" and not self.read_only:
                writer = _writer_lock(self.path)
                fresh = writer.acquire(self.wait, self.on_wait)
                turn_taken = writer.readers.fd is not None
            elif self.path != ":memory:" and not self.path.endswith(".snapshot"):  # nobody writes a snapshot
                writer = _reader_gate(self.path)
                writer.acquire(self.wait, self.on_wait)
                turn_taken = writer.fd is not None
            try:
                # A bounded buffer pool keeps big imports within a laptop's memory
                # (DuckDB spills to a temp folder beside the database file instead).
                config = {"memory_limit": os.environ.get("CRM_DB_MEMORY_LIMIT", "1536MB")}
                try:
                    con = _connect_retry(self.path, config, self.wait, read_only=self.read_only, turn_taken=turn_taken)
                except (duckdb.Error, OSError) as exc:
                    raise self._failure(exc) from exc
                try:
                    if not self.read_only:
                        self._guard(_migrate, con)
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
        try:
            shutil.copyfile(self.path, tmp)
            os.replace(tmp, target)
        except OSError:  # e.g. no room for the copy: readers wait for the turn instead of reading the snapshot
            _remove_quietly(tmp)
            return
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
            _define_macros(cur)
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
        """Run one statement with bound parameters on this thread's cursor.

        A machine failure (full disk, read-only store, ...) is raised as a
        Japanese :class:`~crm_core.errors.StorageError`; other errors unchanged.
        On a read-only store, ``CREATE TABLE IF NOT EXISTS`` (the modules'
        ``ensure_tables``) creates an empty temporary table in place of a
        table the file does not have yet, so pages that read it show their
        empty state (nothing written there is kept).
        """
        if self.read_only and (ensure := _ENSURE.match(sql)):
            kind, name = ensure.group(1).upper(), ensure.group(2)
            if kind == "INDEX" or self._has(kind, name):
                return self.cursor()  # nothing to create (an index only speeds up writes)
            sql = sql[:ensure.start(1)] + "TEMP " + sql[ensure.start(1):]
        return self._guard(self.cursor().execute, sql, params or [])

    def _has(self, kind: str, name: str) -> bool:
        """True when the store file holds this table (or sequence)."""
        if kind == "SEQUENCE":
            return bool(self.cursor().execute(
                "SELECT count(*) FROM duckdb_sequences() WHERE database_name = current_database() AND sequence_name = ?",
                [name]).fetchone()[0])
        return self.has_table(name)

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
        """Run a block atomically: everything commits, or nothing does.

        Inside :meth:`scratch` the block joins the scratch transaction (which
        is rolled back at its end) instead of starting its own.
        """
        cur = self.cursor()
        if getattr(self._local, "scratch", False):
            yield cur
            return
        self._guard(cur.execute, "BEGIN TRANSACTION")
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException as exc:
            # DuckDB has already ended a transaction whose commit failed (a full
            # disk): rolling back then fails too and must not hide the cause.
            rollback_quietly(cur)
            problem = self._failure(exc) if isinstance(exc, Exception) else exc
            if problem is exc:
                raise
            raise problem from exc

    @contextmanager
    def scratch(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A block whose writes this thread sees and nobody keeps: rolled back at its end.

        Used to look at the store as it would be (e.g. the customer model
        rebuilt as of an earlier day) without replacing what is stored; other
        connections keep seeing the stored data throughout.  Transactions
        opened inside join this one.
        """
        if getattr(self._local, "scratch", False):
            raise RuntimeError("scratch blocks do not nest")
        cur = self.cursor()
        self._guard(cur.execute, "BEGIN TRANSACTION")
        self._local.scratch = True
        try:
            yield cur
        finally:
            self._local.scratch = False
            rollback_quietly(cur)

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

    def delete_setting(self, key: str) -> None:
        """Remove a setting (reading it then gives the default)."""
        self.execute("DELETE FROM settings WHERE key = ?", [key])

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

    def clear_data(self, keep_campaigns: bool = False) -> None:
        """Remove all imported shop data and everything derived from it.

        Keeps settings, saved column mappings, saved segment rules, templates,
        coupons' definitions and the test-send log.  Derived tables (the
        customer model, recommendations) are dropped; tables of later stages
        that hold customer ids are emptied when they exist — except, with
        ``keep_campaigns``, campaign records (recipients, results) and issued
        coupon codes, which re-attach when the same customers are imported
        again (customer ids follow from the identity key).
        See :func:`crm_core.backup.clear_plan` for the counts.
        """
        kept = CAMPAIGN_TABLES if keep_campaigns else ()
        with self.transaction() as cur:
            for table in DATA_TABLES:
                cur.execute("DELETE FROM " + quote_ident(table, DATA_TABLES))  # noqa: S608
            existing = {r[0] for r in cur.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            for table in DERIVED_TABLES:
                if table in existing:
                    cur.execute("DROP TABLE " + quote_ident(table, DERIVED_TABLES))
            for table in CUSTOMER_LINKED_TABLES:
                if table in existing and table not in kept:
                    cur.execute("DELETE FROM " + quote_ident(table, CUSTOMER_LINKED_TABLES))  # noqa: S608


def rollback_quietly(cur: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if DuckDB has not already ended it."""
    with suppress(duckdb.Error):
        cur.execute("ROLLBACK")


def _define_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Define the parsing macros on one connection (temporary: the store file is not written)."""
    for macro in _MACROS:
        con.execute(macro)


def _looks_read_only(path: Path) -> bool:
    """True when an existing store file (or its folder, for its WAL) cannot be written."""
    if not path.exists():
        return False
    return not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))


DATA_TABLES = (
    "orders",
    "order_lines",
    "customers",
    "contacts",
    "products",
    "imports",
    "import_rejects",
    "line_links",
    "line_reach",
    "message_stats",
    "refresh_touched",
)
TABLES = DATA_TABLES + ("column_mappings", "settings", "schema_version")
# Rebuilt from the data after every import.
DERIVED_TABLES = ("customer_model", "customer_model_meta", "customer_model_facts", "customer_recommendations",
                  "page_summaries", "customer_profit_stored", "sale_events")  # sale_events: stores of earlier versions
# Tables of later stages that refer to customers (emptied with the data, if present).
CUSTOMER_LINKED_TABLES = (
    "segment_sizes",
    "coupon_codes",
    "campaign_events",
    "campaign_recipients",
    "campaigns",
)
# What ``clear_data(keep_campaigns=True)`` keeps: campaign records and codes already in customers' hands.
CAMPAIGN_TABLES = ("coupon_codes", "campaign_events", "campaign_recipients", "campaigns")
