"""Consent and suppression as records (特定電子メール法, FACTS.md §4 and §9), in the operations store.

Every opt-in and opt-out is a row with the channel, the address (an e-mail
address in lower case or a LINE user id), when it happened, where it came
from (``import``, ``webhook``, ``unsubscribe``, ``manual``, ``bounce``) and who
recorded it.  Nothing is overwritten: the current state of an address is the
kind of its **latest** event by ``occurred_at`` (an opt-out wins a tie), so an
import that replays an older opt-in never undoes a later opt-out, while a new
opt-in (the customer follows the LINE account again, or asks to be mailed
again) does.  Records are kept (the law asks for one month after the last send).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from crm_core import clock, opsdb
from crm_core.errors import InputError

CHANNELS = ("email", "line")
KINDS = ("opt_in", "opt_out")
SOURCES = {"import": "取り込み", "webhook": "LINE（友だち追加・ブロック）", "unsubscribe": "配信停止リンク",
           "manual": "手動", "bounce": "宛先不明（送信エラー）"}

MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS consent_events (
        event_id    INTEGER PRIMARY KEY AUTOINCREMENT,
        channel     TEXT NOT NULL CHECK (channel IN ('email', 'line')),
        address     TEXT NOT NULL,
        customer_id TEXT,
        kind        TEXT NOT NULL CHECK (kind IN ('opt_in', 'opt_out')),
        source      TEXT NOT NULL CHECK (source IN ('import', 'webhook', 'unsubscribe', 'manual', 'bounce')),
        reason      TEXT,
        campaign_id INTEGER,
        actor       TEXT,
        occurred_at TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS consent_by_address ON consent_events (channel, address, occurred_at);
    """,
    """
    CREATE TABLE IF NOT EXISTS consent_imports (
        import_id   INTEGER NOT NULL,
        imported_at TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        opt_in      INTEGER NOT NULL,
        opt_out     INTEGER NOT NULL,
        kept_out    INTEGER NOT NULL,
        PRIMARY KEY (import_id, imported_at)
    );
    """,
]
opsdb.register("consent", MIGRATIONS)


def utcnow() -> dt.datetime:
    return clock.now_utc()


def _iso(value: dt.datetime | str | None, default: dt.datetime) -> str:
    if value is None:
        value = default
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:  # naive times are JST (the console's time zone)
        value = value.replace(tzinfo=dt.timezone(dt.timedelta(hours=9)))
    return value.astimezone(dt.UTC).isoformat()


def normalise(channel: str, address: str) -> str:
    """E-mail addresses in lower case; LINE ids as given (trimmed)."""
    address = (address or "").strip()
    return address.lower() if channel == "email" else address


def record(
    con: sqlite3.Connection,
    channel: str,
    address: str,
    kind: str,
    source: str,
    *,
    occurred_at: dt.datetime | str | None = None,
    customer_id: str | None = None,
    reason: str = "",
    actor: str = "",
    campaign_id: int | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Add one consent event; returns its id."""
    if channel not in CHANNELS or kind not in KINDS or source not in SOURCES:
        raise InputError("同意・配信停止の記録の種類が正しくありません。", f"bad consent {channel}/{kind}/{source}")
    address = normalise(channel, address)
    if not address:
        raise InputError("宛先（メールアドレスかLINEユーザーID）を入力してください。", "empty address")
    now = now or utcnow()
    cur = con.execute(
        "INSERT INTO consent_events (channel, address, customer_id, kind, source, reason, campaign_id, actor, occurred_at, recorded_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [channel, address, customer_id, kind, source, reason or None, campaign_id, actor or None,
         _iso(occurred_at, now), _iso(now, now)],
    )
    return int(cur.lastrowid)


_LATEST = """
    SELECT channel, address, kind, source, occurred_at, customer_id, reason, actor FROM (
        SELECT *, row_number() OVER (PARTITION BY channel, address
                                     ORDER BY occurred_at DESC, kind = 'opt_out' DESC, event_id DESC) AS n
        FROM consent_events WHERE {where}
    ) WHERE n = 1
"""


def status(con: sqlite3.Connection, channel: str, address: str) -> str | None:
    """``"opt_in"``, ``"opt_out"`` or None (no record) for one address."""
    sql = _LATEST.format(where="channel = ? AND address = ?")  # fixed fragments only
    row = con.execute(sql, [channel, normalise(channel, address)]).fetchone()
    return row["kind"] if row else None


def suppressed(con: sqlite3.Connection, channel: str) -> set[str]:
    """Addresses of a channel whose latest event is an opt-out."""
    sql = "SELECT address FROM (" + _LATEST.format(where="channel = ?") + ") WHERE kind = 'opt_out'"  # noqa: S608 - fixed fragments
    rows = con.execute(sql, [channel])
    return {r[0] for r in rows}


def suppress(con: sqlite3.Connection, channel: str, address: str, *, source: str = "manual", reason: str = "",
             actor: str = "", campaign_id: int | None = None, customer_id: str | None = None,
             now: dt.datetime | None = None) -> int:
    """Stop sending to an address (an opt-out event)."""
    return record(con, channel, address, "opt_out", source, reason=reason, actor=actor, campaign_id=campaign_id,
                  customer_id=customer_id, now=now)


def unsuppress(con: sqlite3.Connection, channel: str, address: str, *, actor: str, reason: str = "",
               now: dt.datetime | None = None) -> int:
    """A manual opt-in now (e.g. the customer asked to be mailed again); older records stay."""
    return record(con, channel, address, "opt_in", "manual", reason=reason, actor=actor, now=now)


def list_suppressed(con: sqlite3.Connection, channel: str | None = None) -> list[dict[str, Any]]:
    """Suppressed addresses with when, why and by whom (latest opt-out)."""
    where, params = ("channel = ?", [channel]) if channel else ("1 = 1", [])
    sql = "SELECT * FROM (" + _LATEST.format(where=where) + ") WHERE kind = 'opt_out' ORDER BY occurred_at DESC"  # noqa: S608 - fixed fragments
    rows = con.execute(sql, params)
    return [dict(r) for r in rows]


def history(con: sqlite3.Connection, channel: str, address: str) -> list[dict[str, Any]]:
    """Every record of one address, oldest first (what the law asks to keep)."""
    rows = con.execute("SELECT * FROM consent_events WHERE channel = ? AND address = ? ORDER BY occurred_at, event_id",
                       [channel, normalise(channel, address)])
    return [dict(r) for r in rows]


# -- imports ------------------------------------------------------------------------------------
def unrecorded_imports(con: sqlite3.Connection, imports: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The imports (``(import_id, imported_at)``) whose mail permissions are not recorded yet."""
    done = {(int(r[0]), r[1]) for r in con.execute("SELECT import_id, imported_at FROM consent_imports")}
    return [i for i in imports if (int(i[0]), str(i[1])) not in done]


def record_imported(con: sqlite3.Connection, rows: list[dict[str, Any]], imports: list[tuple[int, str]],
                    now: dt.datetime | None = None) -> dict[str, int]:
    """Record the mail permissions of imported files (e-mail, source ``import``) and mark the imports done.

    ``rows`` come from :func:`crm_core.ingest.permissions.mail_permissions`:
    ``address``, ``opt_in``, ``occurred_at`` (the order time, or None for a
    customer list: "as of now") and ``customer_id``.

    Rules (特定電子メール法: an opt-out is honoured at once and not reversed by an older opt-in):

    - An opt-in is **not** recorded while the address's latest record is an
      opt-out from outside the shop system (unsubscribe link, LINE, bounce,
      manual): the shop system never heard of it and keeps saying "yes", also
      on later orders.  Only a new opt-in through the console undoes it.  An
      opt-out that came from an earlier import is replaced by a later "yes"
      (the customer subscribed again in the shop system).
    - Idempotent: a dated row already recorded (same address, kind and time)
      is skipped, an undated row is recorded only when it changes the
      address's state, and each import is handled once.

    Returns counts: ``opt_in``, ``opt_out`` (records added) and ``kept_out``
    (opt-ins not recorded because of a later opt-out).
    """
    now = now or utcnow()
    counts = {"opt_in": 0, "opt_out": 0, "kept_out": 0}
    latest = {r["address"]: (r["kind"], r["source"], r["occurred_at"])
              for r in con.execute(_LATEST.format(where="channel = 'email'"))}  # fixed fragments only
    dated = {(r[0], r[1], r[2]) for r in con.execute(
        "SELECT address, kind, occurred_at FROM consent_events WHERE channel = 'email' AND source = 'import'")}
    new: list[list[Any]] = []
    stamp = _iso(now, now)
    for row in rows:
        address = normalise("email", row["address"])
        if not address:
            continue
        kind = "opt_in" if row["opt_in"] else "opt_out"
        when = _iso(row["occurred_at"], now)
        current = latest.get(address)
        if kind == "opt_in" and current and current[0] == "opt_out" and current[1] != "import":
            counts["kept_out"] += 1
            continue
        if row["occurred_at"] is None:
            if current and current[0] == kind:
                continue
        elif (address, kind, when) in dated:
            continue
        if current is None or when >= current[2]:
            latest[address] = (kind, "import", when)
        dated.add((address, kind, when))
        new.append(["email", address, row.get("customer_id"), kind, "import", None, None, "import", when, stamp])
        counts[kind] += 1
    with opsdb.transaction(con):
        con.executemany(
            "INSERT INTO consent_events (channel, address, customer_id, kind, source, reason, campaign_id, actor, occurred_at,"
            " recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", new)
        con.executemany(
            "INSERT OR IGNORE INTO consent_imports (import_id, imported_at, recorded_at, opt_in, opt_out, kept_out)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(int(i), str(at), stamp, counts["opt_in"], counts["opt_out"], counts["kept_out"]) for i, at in imports])
    return counts
