"""Japanese formatting (crm_core.jp): small tables checked by hand."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from crm_core import jp

M = "\u2212"  # the minus sign


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (1234, {}, "¥1,234"),
        (1234.5, {}, "¥1,235"),  # half away from zero
        (-70534, {}, f"{M}¥70,534"),
        (-0.4, {}, "¥0"),  # no "−¥0"
        (0, {}, "¥0"),
        (500, {"signed": True}, "+¥500"),
        (-500, {"signed": True}, f"{M}¥500"),
        (None, {}, "—"),
        (float("nan"), {}, "—"),
        (pd.NA, {}, "—"),
    ],
    ids=["plain", "half-up", "negative", "tiny-negative", "zero", "signed+", "signed-", "none", "nan", "na"],
)
def test_yen(value, kwargs, expected):
    assert jp.yen(value, **kwargs) == expected


def test_yen_never_uses_the_full_width_sign():
    assert "￥" not in jp.yen(1) and "-" not in jp.yen(-1)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [(1234567, "人", "1,234,567人"), (0, "件", "0件"), (12.0, "", "12"), (-3, "人", f"{M}3人"), (None, "人", "—")],
)
def test_count(value, unit, expected):
    assert jp.count(value, unit) == expected


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (0.123, {}, "12.3%"),
        (0.1, {}, "10%"),  # no spurious ".0"
        (0.1, {"digits": 0}, "10%"),
        (0.12345, {"digits": 2}, "12.35%"),
        (-179.57, {}, f"{M}17,957%"),  # ROI with separators and the minus sign
        (-179.57, {"digits": 0}, f"{M}17,957%"),
        (0.025, {"signed": True}, "+2.5%"),
        (0, {}, "0%"),
        (None, {}, "—"),
    ],
)
def test_pct(value, kwargs, expected):
    assert jp.pct(value, **kwargs) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(0.012, "+1.2pt"), (-0.005, f"{M}0.5pt"), (0.0, "0pt"), (float("nan"), "—")]
)
def test_points(value, expected):
    assert jp.points(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(12.0, "12日"), (12.5, "12.5日"), (12.04, "12日"), (1234.0, "1,234日"), (None, "—")]
)
def test_days(value, expected):
    assert jp.days(value) == expected


@pytest.mark.parametrize(("value", "expected"), [(2.0, "2倍"), (1.46, "1.5倍"), (math.inf, "∞倍")])
def test_times(value, expected):
    assert jp.times(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(dt.date(2026, 11, 2), "2026年11月2日"), (dt.datetime(2026, 1, 5, 9, 0), "2026年1月5日"),
     ("2026-03-31 10:00:00", "2026年3月31日"), (pd.Timestamp("2026-12-04"), "2026年12月4日"), (pd.NaT, "—")],
)
def test_jdate(value, expected):
    assert jp.jdate(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("cp932", "Shift_JIS（cp932）"), ("Shift_JIS (cp932)", "Shift_JIS（cp932）"), ("utf-8-sig", "UTF-8（BOM付き）"),
     ("UTF-8 (BOM付き)", "UTF-8（BOM付き）"), ("utf-8", "UTF-8"), ("latin-1", "latin-1")],
)
def test_encoding_label(value, expected):
    assert jp.encoding_label(value) == expected


@pytest.mark.parametrize(("value", "digits", "expected"), [(1234.5678, 2, "1,234.57"), (-0.04, 1, "0"), (3, 1, "3")])
def test_number(value, digits, expected):
    assert jp.number(value, digits) == expected
