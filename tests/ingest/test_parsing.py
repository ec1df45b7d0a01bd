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
