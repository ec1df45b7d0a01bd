"""The one clock of the console: Japan Standard Time, injectable in tests.

The store keeps times as naive JST (no offset), so :func:`now` returns a naive
datetime on the JST wall clock whatever the server's time zone.  Tests freeze
time with :func:`frozen` (a context variable: it affects only the current
thread or task, never another user's session)::

    with clock.frozen(dt.datetime(2026, 11, 20, 9, 0)):
        ...  # clock.now() == 2026-11-20 09:00 (JST)
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from contextvars import ContextVar
from zoneinfo import ZoneInfo

__all__ = ["JST", "frozen", "now", "now_aware", "now_utc", "today"]

JST = ZoneInfo("Asia/Tokyo")

_FROZEN: ContextVar[dt.datetime | None] = ContextVar("crm_core_clock_frozen", default=None)


def now_aware() -> dt.datetime:
    """The current time as an aware datetime in JST."""
    frozen_at = _FROZEN.get()
    return frozen_at if frozen_at is not None else dt.datetime.now(JST)


def now() -> dt.datetime:
    """The current JST wall-clock time, naive (how the store keeps times)."""
    return now_aware().replace(tzinfo=None)


def now_utc() -> dt.datetime:
    """The current time as an aware datetime in UTC (e.g. iCalendar stamps)."""
    return now_aware().astimezone(dt.UTC)


def today() -> dt.date:
    """Today's date in Japan."""
    return now_aware().date()


@contextlib.contextmanager
def frozen(at: dt.datetime) -> Iterator[dt.datetime]:
    """Freeze :func:`now` at ``at`` (naive = JST) inside the ``with`` block."""
    aware = at.replace(tzinfo=JST) if at.tzinfo is None else at.astimezone(JST)
    token = _FROZEN.set(aware)
    try:
        yield aware
    finally:
        _FROZEN.reset(token)
