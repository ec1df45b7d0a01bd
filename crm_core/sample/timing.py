"""Time and identifiers of the sample shop: hourly order intensity with the sale calendar, bijective id scrambles."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------------------
# Time: hourly intensity with the sale calendar
# ---------------------------------------------------------------------------

# Relative order intensity by hour of day (JST): lunch and late-evening peaks.
_DAY_CURVE = np.array([0.90, 0.55, 0.30, 0.18, 0.14, 0.18, 0.32, 0.55, 0.72, 0.82, 0.92, 1.05,
                       1.40, 1.20, 0.95, 0.90, 0.90, 0.95, 1.00, 1.12, 1.42, 1.62, 1.68, 1.38])
_WEEKDAY = np.array([1.04, 1.00, 0.99, 0.97, 0.93, 0.95, 1.12])  # Monday .. Sunday
_SEASON = np.array([0.92, 0.86, 1.00, 0.96, 1.00, 1.00, 1.04, 0.95, 1.00, 1.00, 1.12, 1.22])
_GROWTH_PER_YEAR = 1.2  # new-customer intake grows ~20 % a year
# Per-purchase dropout probability ~ Beta(a, b): U-shaped, a polarised base of
# one-off buyers and a loyal core (BG/NBD's p).
_DROPOUT_BETA = (0.25, 0.15)
# Personal pace (multiplier on the repurchase cycle) ~ lognormal(mu, sigma).
_PACE = (0.0, 0.3)
# Share of repeat orders that follow the main product's cycle; the rest come
# after 7 days + an exponential wait of this mean (days, times the pace).
_REPLENISH_SHARE = 0.85
_ADHOC_MEAN_DAYS = 50.0
# Impulse purchases: an independent Poisson-like stream whose mean gap (days)
# is lognormal per customer; a repeat order comes at whichever is earlier.
_IMPULSE_GAP = (100.0, 0.8)
# Loyal customers (low dropout) also buy more often: gap multiplier = floor + dropout.
_IMPULSE_LOYAL_FLOOR = 0.4
# Share of first-time buyers who never come back whatever their profile (deal hunters, gift buyers).
_ONE_AND_DONE = 0.2
# Chance to stay active after an impulse purchase; factor on subscribers' ad-hoc loyalty.
_IMPULSE_KEEP = 0.95
_SUBSCRIBER_ADHOC_KEEP = 0.7
# Cumulative probabilities of 1, 2, 3, 4 lines per order (outside / inside big sales).
_LINES_CUM = (0.45, 0.80, 0.94, 1.0)
_LINES_CUM_SALE = (0.36, 0.71, 0.90, 1.0)

# Event strength (intensity multipliers) for repeat buyers; acquisitions react more strongly.
_MULT = {
    "super_sale": 3.0,
    "marathon": 2.0,
    "black_friday": 2.0,
    "point_day": 1.45,
    "wonderful_day": 1.3,
    "start_rush": 1.8,
    "last_spurt": 1.4,
    "pre_event_lull": 0.8,
    "anniversary": 2.0,
    "new_year": 1.6,
    "line_coupon_day": 1.5,
    "year_end": 1.25,
}
_ACQ_EVENT_GAIN = 1.25

# Confirmed dates (FACTS.md §6) that override the seeded pattern for お買い物マラソン.
_CONFIRMED_MARATHONS: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {
    (2025, 2): ((19, 23),),
    (2026, 2): ((4, 10), (19, 23)),
}


@dataclass(frozen=True)
class SaleEvent:
    """One sale or campaign of the sample calendar.

    Attributes
    ----------
    store : str
        ``rakuten`` or ``shopify``.
    kind : str
        ``super_sale``, ``marathon``, ``black_friday``, ``point_day``,
        ``wonderful_day`` (Rakuten); ``black_friday``, ``anniversary``,
        ``new_year``, ``line_coupon_day``, ``year_end`` (Shopify).
    name : str
        Japanese name.
    start : datetime.datetime
        First moment (JST, naive).
    end : datetime.datetime
        End, exclusive (a sale running "to 01:59" ends at 02:00).
    status : str
        ``confirmed`` (FACTS.md) or ``pattern``.
    """

    store: str
    kind: str
    name: str
    start: dt.datetime
    end: dt.datetime
    status: str = "pattern"


def _month_iter(start: dt.date, end: dt.date) -> list[tuple[int, int]]:
    months = []
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        months.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return months


def _at(y: int, m: int, d: int, h: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h)


def sale_calendar(start: dt.date, end: dt.date, seed: int = 7) -> list[SaleEvent]:
    """The sample shop's sale calendar between two dates (inclusive).

    楽天スーパーSALE runs in March, June, September and December from the 4th
    20:00 to the 11th 01:59.  お買い物マラソン (20:00 start, 01:59 end) runs once
    or twice a month with seeded start days (confirmed dates from FACTS.md
    where known); November's late event is 楽天ブラックフライデー.  Point days
    (5と0のつく日, ワンダフルデー on the 1st) are listed too.  The Shopify store
    has its own campaigns.  The pattern for a month depends only on ``seed``
    and the month, not on the requested range.

    Parameters
    ----------
    start, end : datetime.date
        First and last day to cover.
    seed : int
        Seed of the pattern jitter.

    Returns
    -------
    list of SaleEvent
        Sorted by start.
    """
    events: list[SaleEvent] = []
    first = dt.date(start.year, start.month, 1) - dt.timedelta(days=1)
    for y, m in _month_iter(first, end + dt.timedelta(days=31)):
        rng = np.random.default_rng([seed, y, m])
        jitter = rng.integers(0, 4, size=4)
        lengths = rng.integers(4, 7, size=2)
        early = rng.random() < 0.6
        if m in (3, 6, 9, 12):
            status = "confirmed" if (y, m) == (2025, 9) else "pattern"
            events.append(SaleEvent("rakuten", "super_sale", "楽天スーパーSALE", _at(y, m, 4, 20), _at(y, m, 11, 2),
                                    status))
            late = [(19 + int(jitter[0]), 19 + int(jitter[0]) + int(lengths[0]))]
            early_runs: list[tuple[int, int]] = []
        else:
            late = [(17 + int(jitter[1]), 17 + int(jitter[1]) + int(lengths[1]))]
            early_runs = [(3 + int(jitter[2] % 2), 3 + int(jitter[2] % 2) + 5 + int(jitter[3] % 2))] if early else []
        runs = early_runs + late
        status = "pattern"
        if (y, m) in _CONFIRMED_MARATHONS:
            runs, status = list(_CONFIRMED_MARATHONS[(y, m)]), "confirmed"
        for d0, d1 in runs:
            kind, name = ("black_friday", "楽天ブラックフライデー") if (m == 11 and d0 >= 15) else ("marathon", "お買い物マラソン")
            events.append(SaleEvent("rakuten", kind, name, _at(y, m, d0, 20), _at(y, m, d1, 2), status))
        last_day = (dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1)).day
        events.append(SaleEvent("rakuten", "wonderful_day", "ワンダフルデー", _at(y, m, 1), _at(y, m, 2)))
        for d in (5, 10, 15, 20, 25, 30):
            if d <= last_day:
                nxt = _at(y, m, d) + dt.timedelta(days=1)
                events.append(SaleEvent("rakuten", "point_day", "5と0のつく日", _at(y, m, d), nxt))
        # Shopify D2C campaigns
        if m == 1:
            events.append(SaleEvent("shopify", "new_year", "初売りセール", _at(y, 1, 1), _at(y, 1, 4)))
        if m == 5:
            events.append(SaleEvent("shopify", "anniversary", "ブランド周年祭", _at(y, 5, 10), _at(y, 5, 17)))
        if m == 11:
            thursday = [d for d in range(22, 29) if dt.date(y, 11, d).weekday() == 3][0]
            bf = _at(y, 11, thursday) + dt.timedelta(days=1)
            events.append(SaleEvent("shopify", "black_friday", "BLACK FRIDAY", bf, bf + dt.timedelta(days=4)))
        if m == 12:
            events.append(SaleEvent("shopify", "year_end", "年末感謝セール", _at(y, 12, 20), _at(y, 12, 29)))
        events.append(SaleEvent("shopify", "line_coupon_day", "LINE限定クーポンデー", _at(y, m, 15, 20), _at(y, m, 18)))
    lo = dt.datetime.combine(start, dt.time())
    hi = dt.datetime.combine(end, dt.time()) + dt.timedelta(days=1)
    events = [e for e in events if e.end > lo and e.start < hi]
    events.sort(key=lambda e: (e.start, e.store, e.kind))
    return events


@dataclass
class _Clock:
    """Hourly intensity of one store over the period (plus a tail after ``end``)."""

    start: dt.date
    n_days: int
    hours: int  # hours inside the period
    cum_repeat: np.ndarray  # cumulative repeat intensity, length hours_ext + 1
    cum_acq: np.ndarray  # cumulative acquisition intensity, length hours + 1
    super_sale: np.ndarray  # bool per hour (ext)
    big_event: np.ndarray  # bool per hour (ext): super sale, marathon, black friday, Shopify campaigns
    month: np.ndarray  # month (1..12) per hour (ext)


def _build_clocks(start: dt.date, n_days: int, seed: int) -> dict[str, _Clock]:
    tail_days = 60
    days_ext = n_days + tail_days
    hours_ext = days_ext * 24
    end_ext = start + dt.timedelta(days=days_ext - 1)
    day64 = np.datetime64(start, "D") + np.arange(days_ext)
    month64 = day64.astype("datetime64[M]")
    month = (month64.astype(np.int64) % 12 + 1).astype(np.int64)
    dow = (day64.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    hod = np.tile(np.arange(24), days_ext)
    month_h = np.repeat(month, 24)
    base = (np.log(_DAY_CURVE)[hod] + np.repeat(np.log(_WEEKDAY)[dow] + np.log(_SEASON)[month - 1], 24))
    t0 = dt.datetime.combine(start, dt.time())

    def hidx(moment: dt.datetime) -> int:
        return int((moment - t0).total_seconds() // 3600)

    clocks: dict[str, _Clock] = {}
    events = sale_calendar(start, end_ext, seed)
    for store in ("rakuten", "shopify"):
        ev = np.zeros(hours_ext)
        ss = np.zeros(hours_ext, dtype=bool)
        big = np.zeros(hours_ext, dtype=bool)
        for e in events:
            if e.store != store:
                continue
            s, t = max(hidx(e.start), 0), min(hidx(e.end), hours_ext)
            if t <= 0 or s >= hours_ext:
                continue
            ev[s:t] += math.log(_MULT[e.kind])
            if e.kind in ("super_sale", "marathon", "black_friday") or store == "shopify":
                big[s:t] = True
            if e.kind == "super_sale":
                ss[s:t] = True
            if e.kind in ("super_sale", "marathon", "black_friday"):
                ev[s:min(s + 2, t)] += math.log(_MULT["start_rush"])
                ev[max(t - 4, s):t] += math.log(_MULT["last_spurt"])
                ev[max(s - 44, 0):s] += math.log(_MULT["pre_event_lull"])
        hours = n_days * 24
        growth = math.log(_GROWTH_PER_YEAR) * np.arange(hours) / (365.25 * 24)
        repeat = np.exp(base + ev)
        acq = np.exp(base[:hours] + _ACQ_EVENT_GAIN * ev[:hours] + growth)
        clocks[store] = _Clock(
            start=start,
            n_days=n_days,
            hours=hours,
            cum_repeat=np.concatenate([[0.0], np.cumsum(repeat)]),
            cum_acq=np.concatenate([[0.0], np.cumsum(acq)]),
            super_sale=ss,
            big_event=big,
            month=month_h,
        )
    return clocks


def _sample_hours(cum: np.ndarray, lo: np.ndarray, hi: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw an hour in ``[lo, hi)`` per row, proportional to the intensity behind ``cum``."""
    c_lo = cum[lo]
    target = c_lo + u * (cum[hi] - c_lo)
    h = np.searchsorted(cum, target, side="right") - 1
    return np.clip(h, lo, hi - 1)


# ---------------------------------------------------------------------------
# Identifiers: bijective scrambles keep per-customer values unique at any size
# ---------------------------------------------------------------------------

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _scramble(x: np.ndarray, hi: int, lo: int, keys: Sequence[int]) -> np.ndarray:
    """A keyed permutation of ``range(hi * lo)``: unique inputs give unique, well-mixed outputs.

    A Feistel network on the mixed-radix pair (x // lo, x % lo); each round is
    a bijection, so customer numbers map to distinct phone numbers, relay
    addresses and e-mail numbers however many customers there are.
    """
    x = x.astype(np.int64)
    a, b = hi, lo
    for k in keys:
        left, right = x // b, x % b
        f = ((right * (k | 1)) ^ (right >> 3) ^ (k >> 5)) % a
        x = right * a + (left + f) % a
        a, b = b, a
    return x


def _choice(rng: np.random.Generator, pairs: Sequence[tuple[str, float]], n: int) -> np.ndarray:
    w = np.array([p for _, p in pairs], dtype=float)
    return rng.choice(len(pairs), size=n, p=w / w.sum())


def _cum_table(weights: np.ndarray) -> np.ndarray:
    """Row-normalised cumulative weights (last column exactly 1)."""
    c = np.cumsum(weights, axis=-1)
    c = c / c[..., -1:]
    c[..., -1] = 1.0
    return c


def _draw_rows(cum: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Categorical draw per element from the cumulative table row ``rows[i]``."""
    return (cum[rows] < u[:, None]).sum(axis=1)
