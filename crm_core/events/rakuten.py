"""Rakuten Ichiba sale calendar: confirmed events plus predicted ("pattern") ones.

Rakuten publishes its schedule to shops through RMS (login only), so the
console keeps its own calendar (FACTS.md §6).  Every row carries a
``status`` and a ``source``:

``confirmed``
    A dated row from a primary source or two independent secondary ones
    (:data:`CONFIRMED_EVENTS`).
``pattern``
    Predicted from the recurring rules below; a planning aid, not a fact.

Rules (all times JST, naive timestamps; ``ends_at`` is the *last second*
inside the event, so a window is ``starts_at <= t <= ends_at``):

* 楽天スーパーSALE (``super_sale``): March, June, September and December,
  the 4th 20:00 to the 11th 01:59:59.  A confirmed super sale in a month
  replaces the pattern row of that month.
* お買い物マラソン (``marathon``): for every month without a confirmed marathon,
  one late in the month, the 19th 20:00 to the 24th 01:59:59, and, in months
  without a スーパーSALE, one early in the month, the 4th 20:00 to the 10th
  01:59:59 (the shape of the confirmed 2026-02 rows).  A month with any
  confirmed marathon gets no pattern marathons.
* Entry (エントリー) for both opens two days before the start at 10:00.
* ワンダフルデー (``wonderful_day``): the 1st of every month, 00:00 to 23:59:59.
* 5と0のつく日 (``five_zero_day``): the 5th, 10th, 15th, 20th, 25th and 30th
  (months without a 30th simply have none), 00:00 to 23:59:59.
  Point days need an entry on the day: ``entry_starts_at`` is the start.

:func:`rakuten_events` is a pure, deterministic function of its date range.
:mod:`crm_core.events.calendar` bundles its rows and keeps the marketer's own rows
and corrections, keyed by the stable ``event_id``
``<kind>-<YYYY-MM-DD of the start>``; the customer model and the segment
builder read the result (:func:`crm_core.model.build.sale_windows`).
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta

import pandas as pd

KINDS = ("super_sale", "marathon", "wonderful_day", "five_zero_day")
SALE_KINDS = ("super_sale", "marathon")
"""Kinds that are shop-wide sale windows (used for acquisition and sale-only flags)."""

KIND_LABELS = {
    "super_sale": "楽天スーパーSALE",
    "marathon": "お買い物マラソン",
    "wonderful_day": "ワンダフルデー",
    "five_zero_day": "5と0のつく日",
}
COLUMNS = ("event_id", "kind", "name", "starts_at", "ends_at", "entry_starts_at", "status", "source")

SUPER_SALE_MONTHS = (3, 6, 9, 12)
FIVE_ZERO_DAYS = (5, 10, 15, 20, 25, 30)

SOURCE_CONFIRMED = "確定: 5springs.co.jp 年間スケジュール (2026-02) ほか二次情報"
SOURCE_PATTERN = "予測: 過去の開催パターン"
SOURCE_POINT_DAY = "予測: 毎月の定例ポイントデー"

_LAST_SECOND = timedelta(hours=1, minutes=59, seconds=59)

CONFIRMED_EVENTS: tuple[tuple[str, datetime, datetime], ...] = (
    ("super_sale", datetime(2025, 9, 4, 20, 0), datetime(2025, 9, 11, 1, 59, 59)),
    ("marathon", datetime(2025, 2, 19, 20, 0), datetime(2025, 2, 23, 1, 59, 59)),
    ("marathon", datetime(2026, 2, 4, 20, 0), datetime(2026, 2, 10, 1, 59, 59)),
    ("marathon", datetime(2026, 2, 19, 20, 0), datetime(2026, 2, 23, 1, 59, 59)),
)
"""(kind, starts_at, ends_at) of dated events from FACTS.md §6."""


def _entry_start(starts_at: datetime) -> datetime:
    """Entry opens two days before the start, at 10:00."""
    day = (starts_at - timedelta(days=2)).date()
    return datetime(day.year, day.month, day.day, 10, 0)


def _sale_name(kind: str, starts_at: datetime) -> str:
    base = f"{KIND_LABELS[kind]} {starts_at.year}年{starts_at.month}月"
    if kind == "marathon":
        return base + ("前半" if starts_at.day <= 15 else "後半")
    return base


def _row(kind: str, starts_at: datetime, ends_at: datetime, entry: datetime, status: str, source: str) -> dict:
    if kind in SALE_KINDS:
        name = _sale_name(kind, starts_at)
    else:
        name = f"{KIND_LABELS[kind]} {starts_at.year}年{starts_at.month}月{starts_at.day}日"
    return {
        "event_id": f"{kind}-{starts_at.date().isoformat()}",
        "kind": kind,
        "name": name,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "entry_starts_at": entry,
        "status": status,
        "source": source,
    }


def _months(start: date, end: date):
    """(year, month) pairs from the month before ``start`` through ``end``'s month."""
    year, month = (start.year, start.month - 1) if start.month > 1 else (start.year - 1, 12)
    while (year, month) <= (end.year, end.month):
        yield year, month
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)


def _sale_window(year: int, month: int, start_day: int, end_day: int) -> tuple[datetime, datetime]:
    starts_at = datetime(year, month, start_day, 20, 0)
    ends_at = datetime(year, month, end_day) + _LAST_SECOND
    return starts_at, ends_at


def _month_rows(year: int, month: int) -> list[dict]:
    rows: list[dict] = []
    confirmed = [
        (kind, s, e) for kind, s, e in CONFIRMED_EVENTS if (s.year, s.month) == (year, month)
    ]
    confirmed_kinds = {kind for kind, _, _ in confirmed}
    for kind, s, e in confirmed:
        rows.append(_row(kind, s, e, _entry_start(s), "confirmed", SOURCE_CONFIRMED))

    is_super_sale_month = month in SUPER_SALE_MONTHS
    if is_super_sale_month and "super_sale" not in confirmed_kinds:
        s, e = _sale_window(year, month, 4, 11)
        rows.append(_row("super_sale", s, e, _entry_start(s), "pattern", SOURCE_PATTERN))
    if "marathon" not in confirmed_kinds:
        windows = [] if is_super_sale_month else [(4, 10)]
        windows.append((19, 24))
        for start_day, end_day in windows:
            s, e = _sale_window(year, month, start_day, end_day)
            rows.append(_row("marathon", s, e, _entry_start(s), "pattern", SOURCE_PATTERN))

    first = datetime(year, month, 1)
    rows.append(_row("wonderful_day", first, first + timedelta(days=1, seconds=-1), first, "pattern", SOURCE_POINT_DAY))
    last_day = calendar.monthrange(year, month)[1]
    for day in FIVE_ZERO_DAYS:
        if day <= last_day:
            s = datetime(year, month, day)
            rows.append(_row("five_zero_day", s, s + timedelta(days=1, seconds=-1), s, "pattern", SOURCE_POINT_DAY))
    return rows


def rakuten_events(start: date, end: date) -> pd.DataFrame:
    """Rakuten events that overlap the dates ``start`` .. ``end`` (inclusive).

    Parameters
    ----------
    start, end : date
        First and last calendar day of interest (JST).

    Returns
    -------
    DataFrame
        One row per event, sorted by ``starts_at`` then ``kind``, columns
        ``event_id, kind, name, starts_at, ends_at, entry_starts_at, status,
        source``; the three times are naive JST timestamps, ``ends_at`` the
        last second inside the event.
    """
    if isinstance(start, datetime):
        start = start.date()
    if isinstance(end, datetime):
        end = end.date()
    rows: list[dict] = []
    if start <= end:
        for year, month in _months(start, end):
            rows.extend(
                r for r in _month_rows(year, month) if r["starts_at"].date() <= end and r["ends_at"].date() >= start
            )
    rows.sort(key=lambda r: (r["starts_at"], KINDS.index(r["kind"])))
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("starts_at", "ends_at", "entry_starts_at"):
        df[col] = pd.to_datetime(df[col]).astype("datetime64[us]")
    return df.reset_index(drop=True)


def sale_timeline(events: pd.DataFrame) -> list[tuple[datetime, str | None]]:
    """Split time into disjoint pieces labelled by the sale window they fall in.

    Parameters
    ----------
    events : DataFrame
        Rows as returned by :func:`rakuten_events` (other kinds are ignored).

    Returns
    -------
    list of (datetime, str or None)
        Sorted ``(from, kind)`` pairs: from each start until the next one the
        label is ``kind`` (``"super_sale"``, ``"marathon"``) or ``None``
        outside sale windows.  The first pair starts at ``datetime.min``.
        Where windows overlap, スーパーSALE wins over マラソン.  A window
        covers ``starts_at <= t < ends_at + 1 second``.  An ASOF join on
        this list labels any number of orders in one pass.
    """
    windows = [
        (r.kind, r.starts_at.to_pydatetime(), r.ends_at.to_pydatetime() + timedelta(seconds=1))
        for r in events.itertuples(index=False)
        if r.kind in SALE_KINDS
    ]
    bounds = sorted({b for _, s, e in windows for b in (s, e)})
    timeline: list[tuple[datetime, str | None]] = [(datetime.min, None)]
    for b in bounds:
        covering = [kind for kind, s, e in windows if s <= b < e]
        label = min(covering, key=SALE_KINDS.index) if covering else None
        if label != timeline[-1][1]:
            timeline.append((b, label))
    return timeline
