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

from crm_core import opsdb
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
]
opsdb.register("consent", MIGRATIONS)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
