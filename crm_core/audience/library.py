"""Saved segments: named rules in the store, with a history of their sizes.

Tables (created by a migration in :mod:`crm_core.db`)::

    segments(segment_id, name, rule JSON, created_at, updated_at)
    segment_sizes(segment_id, measured_at, customers)

A saved segment is its validated JSON rule (never SQL).  Its size is recorded
when it is saved or changed and whenever :func:`record_size` or
:func:`measure_all` is called (e.g. after an import), at most once per
day and size, so the history shows how the audience grows or shrinks.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from typing import Any

import pandas as pd

from crm_core import clock
from crm_core.audience import segments
from crm_core.db import Store
from crm_core.errors import InputError

MAX_NAME = 60

def _now() -> dt.datetime:
    return clock.now()


def check_name(name: Any) -> str:
    """A valid segment name (stripped), or an InputError saying what to fix."""
    if not isinstance(name, str) or not name.strip():
        raise InputError("セグメント名を入力してください。", "empty name")
    text = name.strip()
    if len(text) > MAX_NAME:
        raise InputError(f"セグメント名は{MAX_NAME}文字以内にしてください。", "name too long")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in text):
        raise InputError("セグメント名に使えない文字（改行や制御文字など）が含まれています。", "control character in name")
    return text


def _name_taken(store: Store, name: str, except_id: int | None = None) -> bool:
    return bool(
        store.scalar(
            "SELECT count(*) FROM segments WHERE lower(name) = lower(?) AND segment_id IS DISTINCT FROM ?",
            [name, except_id],
        )
    )


def _row(r: tuple) -> dict[str, Any]:
    return {
        "segment_id": int(r[0]),
        "name": r[1],
        "rule": json.loads(r[2]),
        "created_at": r[3],
        "updated_at": r[4],
        "customers": None if r[5] is None else int(r[5]),
        "measured_at": r[6],
    }


_SELECT = """
    SELECT s.segment_id, s.name, s.rule, s.created_at, s.updated_at, z.customers, z.measured_at
    FROM segments s
    LEFT JOIN (SELECT segment_id, arg_max(customers, measured_at) AS customers, max(measured_at) AS measured_at
               FROM segment_sizes GROUP BY segment_id) z ON z.segment_id = s.segment_id
"""


def list_segments(store: Store) -> list[dict[str, Any]]:
    """Saved segments, by name: ``segment_id, name, rule, created_at, updated_at, customers, measured_at``.

    ``customers``/``measured_at`` are the latest recorded size (None if never measured).
    """
    return [_row(r) for r in store.fetchall(_SELECT + " ORDER BY s.name, s.segment_id")]


def get_segment(store: Store, segment_id: int) -> dict[str, Any]:
    """One saved segment (see :func:`list_segments`)."""
    rows = store.fetchall(_SELECT + " WHERE s.segment_id = ?", [int(segment_id)])  # noqa: S608 - constant
    if not rows:
        raise InputError("そのセグメントは見つかりません（削除された可能性があります）。", f"segment {segment_id} missing")
    return _row(rows[0])


def _measure(store: Store, rule: dict[str, Any]) -> int | None:
    try:
        return segments.count(store, rule)
    except InputError:
        return None  # no customer model yet: the size is recorded later


def save_segment(store: Store, name: str, rule: Any, segment_id: int | None = None, now: dt.datetime | None = None) -> int:
    """Save a new segment, or replace the name and rule of ``segment_id``; record its size.

    Returns
    -------
    int
        The segment id.

    Raises
    ------
    InputError
        For an invalid rule or name, or a name another segment already uses.
    """
    clean = segments.validate(rule)
    name = check_name(name)
    if segment_id is not None:
        get_segment(store, segment_id)
    if _name_taken(store, name, segment_id):
        raise InputError(f"「{name}」という名前のセグメントはすでにあります。別の名前にしてください。", "duplicate name")
    now = now or _now()
    text = json.dumps(clean, ensure_ascii=False)
    with store.transaction() as cur:
        if segment_id is None:
            segment_id = int(cur.execute("SELECT coalesce(max(segment_id), 0) + 1 FROM segments").fetchone()[0])
            cur.execute("INSERT INTO segments VALUES (?, ?, ?, ?, ?)", [segment_id, name, text, now, now])
        else:
            cur.execute("UPDATE segments SET name = ?, rule = ?, updated_at = ? WHERE segment_id = ?", [name, text, now, segment_id])
    size = _measure(store, clean)
    if size is not None:
        record_size(store, segment_id, size, now)
    return segment_id


def rename_segment(store: Store, segment_id: int, name: str, now: dt.datetime | None = None) -> None:
    """Give a saved segment a new name (names are unique, ignoring case)."""
    seg = get_segment(store, segment_id)
    name = check_name(name)
    if _name_taken(store, name, seg["segment_id"]):
        raise InputError(f"「{name}」という名前のセグメントはすでにあります。別の名前にしてください。", "duplicate name")
    store.execute("UPDATE segments SET name = ?, updated_at = ? WHERE segment_id = ?", [name, now or _now(), seg["segment_id"]])


def duplicate_segment(store: Store, segment_id: int, name: str | None = None) -> int:
    """Copy a saved segment (default name 「…のコピー」, numbered if taken); returns the new id."""
    seg = get_segment(store, segment_id)
    if name is None:
        base = seg["name"][: MAX_NAME - 8] + "のコピー"
        name, n = base, 2
        while _name_taken(store, name):
            name, n = f"{base}{n}", n + 1
    return save_segment(store, name, seg["rule"])


def delete_segment(store: Store, segment_id: int) -> None:
    """Delete a saved segment and its size history."""
    seg = get_segment(store, segment_id)
    with store.transaction() as cur:
        cur.execute("DELETE FROM segment_sizes WHERE segment_id = ?", [seg["segment_id"]])
        cur.execute("DELETE FROM segments WHERE segment_id = ?", [seg["segment_id"]])


def record_size(store: Store, segment_id: int, customers: int, now: dt.datetime | None = None) -> bool:
    """Append a size to the history unless the same size was already recorded that day.

    Returns
    -------
    bool
        True if a row was added.
    """
    now = now or _now()
    same = store.scalar(
        "SELECT count(*) FROM segment_sizes WHERE segment_id = ? AND CAST(measured_at AS DATE) = ? AND customers = ?",
        [int(segment_id), now.date(), int(customers)],
    )
    if same:
        return False
    store.execute("INSERT INTO segment_sizes VALUES (?, ?, ?)", [int(segment_id), now, int(customers)])
    return True


def measure_all(store: Store, now: dt.datetime | None = None) -> dict[int, int]:
    """Count every saved segment now and record the sizes; returns ``{segment_id: customers}``."""
    out: dict[int, int] = {}
    for seg in list_segments(store):
        size = _measure(store, seg["rule"])
        if size is not None:
            record_size(store, seg["segment_id"], size, now)
            out[seg["segment_id"]] = size
    return out


def size_history(store: Store, segment_id: int) -> pd.DataFrame:
    """Recorded sizes of a segment, oldest first: ``measured_at, customers``."""
    return store.df(
        "SELECT measured_at, customers FROM segment_sizes WHERE segment_id = ? ORDER BY measured_at", [int(segment_id)]
    )
