"""Property tests for the amount and date parsing macros the importer runs in DuckDB."""

from __future__ import annotations

import datetime as dt
import unicodedata
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_core.db import Store

FULLWIDTH = str.maketrans("0123456789,-", "０１２３４５６７８９，－")


@pytest.fixture(scope="module")
def store() -> Store:
    return Store(":memory:")


def amount(store: Store, text: str | None):
    return store.scalar("SELECT crm_amount(?)", [text])


def ts(store: Store, text: str | None):
    return store.scalar("SELECT crm_ts_jst(?)", [text])


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(min_value=-10**12, max_value=10**12),
    comma=st.booleans(),
    fullwidth=st.booleans(),
    prefix=st.sampled_from(["", "¥", "￥", "'", " "]),
    suffix=st.sampled_from(["", "円", " 円", " "]),
)
def test_amount_round_trip(store, n, comma, fullwidth, prefix, suffix):
    body = f"{n:,}" if comma else str(n)
    text = prefix + body + suffix
    if fullwidth:
        text = text.translate(FULLWIDTH)
    assert amount(store, text) == Decimal(n)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(categories=["L", "So", "Nl", "No"]), min_size=1, max_size=8))
def test_amount_never_accepts_words_or_circled_digits(store, text):
    """'①'.isdigit() is True but it is not an amount; letters are never numbers."""
    folded = unicodedata.normalize("NFKC", text)
    if any(ch in "0123456789" for ch in folded):
        return  # NFKC may fold some letters-like digits; those are covered by the round trip
    assert amount(store, text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("△500", Decimal(-500)),
        ("▲1,200円", Decimal(-1200)),
        ("1200.50", Decimal("1200.50")),
        ("", None),
        (None, None),
        ("①", None),
        ("12a", None),
    ],
    ids=["triangle-minus", "black-triangle", "decimal", "empty", "null", "circled-one", "trailing-letter"],
)
def test_amount_cases(store, text, expected):
    assert amount(store, text) == expected


_dt = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)).map(lambda d: d.replace(microsecond=0))


@settings(max_examples=300, deadline=None)
@given(d=_dt, sep=st.sampled_from(["-", "/"]), fullwidth=st.booleans())
def test_jst_local_forms(store, d, sep, fullwidth):
    text = d.strftime(f"%Y{sep}%m{sep}%d %H:%M:%S")
    if fullwidth:
        text = text.translate(str.maketrans("0123456789/:-", "０１２３４５６７８９／：－"))
    assert ts(store, text) == d


@settings(max_examples=300, deadline=None)
@given(d=_dt, offset_minutes=st.sampled_from([-480, -300, 0, 60, 330, 540, 600]), colon=st.booleans(), t=st.booleans())
def test_offsets_convert_to_jst(store, d, offset_minutes, colon, t):
    tz = dt.timezone(dt.timedelta(minutes=offset_minutes))
    aware = d.replace(tzinfo=tz)
    sign = "+" if offset_minutes >= 0 else "-"
    hh, mm = divmod(abs(offset_minutes), 60)
    off = f"{sign}{hh:02d}{':' if colon else ''}{mm:02d}"
    text = aware.strftime("%Y-%m-%d" + ("T" if t else " ") + "%H:%M:%S") + ("" if t else " ") + off
    expected = aware.astimezone(dt.timezone(dt.timedelta(hours=9))).replace(tzinfo=None)
    assert ts(store, text) == expected


@pytest.mark.parametrize("text", ["2025-02-30 10:00:00", "2025-13-01", "昨日", "10:00", "2025/1/1 25:00:00"])
def test_invalid_dates_are_null(store, text):
    assert ts(store, text) is None


# The general parser as it was before the plain-cast fast path (the oracle for the fast path).
_GENERAL_JST = (
    "SELECT coalesce(try_strptime($s, '%Y-%m-%d %H:%M:%S'),"
    " crm_local_ts_any($s) + to_minutes(CAST(540 - crm_offset_minutes($s) AS BIGINT)))"
)
_date_like = st.builds(
    lambda y, m, d, clock, sep: f"{y:04d}{sep}{m:02d}{sep}{d:02d}" + clock,
    st.integers(0, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
    st.one_of(
        st.just(""),
        st.builds(lambda h, mi, s, t: f"{t}{h:02d}:{mi:02d}:{s:02d}", st.integers(0, 25), st.integers(0, 61),
                  st.integers(0, 61), st.sampled_from([" ", "T", "  "])),
        st.sampled_from([" 10:00", " 10:00:00+09:00", " 10:00:00Z", "+0900", ".5"]),
    ),
    st.sampled_from(["-", "-", "/", ""]),
)


@settings(max_examples=600, deadline=None)
@given(text=st.one_of(_date_like, st.text(alphabet="0123456789-/: T+Z．０１２", max_size=22)))
def test_plain_cast_fast_path_reads_every_string_like_the_general_parser(store, text):
    """Dates in the common shapes skip the regular expressions; the answer must be the general parser's."""
    assert ts(store, text) == store.scalar(_GENERAL_JST, {"s": text})
    assert store.scalar("SELECT crm_local_ts(?)", [text]) == store.scalar("SELECT crm_local_ts_any(?)", [text])
