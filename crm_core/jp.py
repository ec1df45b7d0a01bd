"""Japanese formatting of numbers, money, dates and encodings: the one place pages and messages take it from.

Rules (README "numbers a marketer reads"):

- yen: ``¥1,234``; negative amounts with the minus sign U+2212: ``−¥70,534``; one
  yen sign (``¥``, never the full-width ``￥`` some locales render);
- counts with thousands separators: ``1,234人``;
- percentages from ratios with separators and without a spurious ``.0``:
  ``12.3%``, ``10%``, ``−17,957%``;
- days and other measures without a spurious ``.0``: ``12日``, ``12.5日``;
- dates ``2026年11月22日``; encodings ``Shift_JIS（cp932）``.

Missing values (None, NaN, NA) read ``—``.  Nothing here imports Streamlit.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

MINUS = "\u2212"
"""The minus sign used for negative numbers (not the ASCII hyphen)."""
DASH = "—"
"""Shown for a missing value."""
YEN = "¥"

ENCODING_LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8（BOM付き）",
    "cp932": "Shift_JIS（cp932）",
    "shift_jis": "Shift_JIS（cp932）",
    "iso-2022-jp": "ISO-2022-JP",
}
"""Encoding key → how the console names it."""


def missing(value: Any) -> bool:
    """True for None, NaN, pandas NA/NaT and other values that are not a number to show."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT
    except (TypeError, ValueError):  # pandas.NA raises on bool()
        return True


def _trim(text: str) -> str:
    """Drop a trailing decimal zero part: ``12.0`` → ``12``, ``12.50`` → ``12.5``."""
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def number(value: Any, digits: int = 1, signed: bool = False) -> str:
    """A number with thousands separators, at most ``digits`` decimals (trailing zeros dropped).

    ``signed`` adds ``+`` to positive values.  Negative values use U+2212.
    """
    if missing(value):
        return DASH
    x = float(value)
    if math.isinf(x):
        return ("" if x > 0 else MINUS) + "∞"
    text = _trim(f"{abs(x):,.{max(int(digits), 0)}f}")
    if text in ("0", ""):
        return "0"
    sign = MINUS if x < 0 else ("+" if signed else "")
    return sign + text


def yen(value: Any, signed: bool = False) -> str:
    """``¥1,234`` (rounded to whole yen, half away from zero); ``−¥70,534``; ``+¥500`` when ``signed``."""
    if missing(value):
        return DASH
    x = float(value)
    whole = int(math.floor(abs(x) + 0.5))
    if whole == 0:
        return f"{YEN}0"
    sign = MINUS if x < 0 else ("+" if signed else "")
    return f"{sign}{YEN}{whole:,}"


def count(value: Any, unit: str = "") -> str:
    """``1,234人``: a whole count with separators and its unit."""
    if missing(value):
        return DASH
    n = int(round(float(value)))
    return (MINUS if n < 0 else "") + f"{abs(n):,}{unit}"


def pct(value: Any, digits: int = 1, signed: bool = False) -> str:
    """A ratio as a percentage: ``0.123`` → ``12.3%``, ``0.1`` → ``10%``, ``-179.57`` → ``−17,957%``."""
    if missing(value):
        return DASH
    return number(float(value) * 100, digits, signed) + "%"


def points(value: Any, digits: int = 1) -> str:
    """A difference of two ratios in percentage points, always signed: ``+1.2pt``, ``−0.5pt``."""
    if missing(value):
        return DASH
    return number(float(value) * 100, digits, signed=True) + "pt"


def days(value: Any, digits: int = 1) -> str:
    """``12日``, ``12.5日`` (no ``12.0日``)."""
    if missing(value):
        return DASH
    return number(value, digits) + "日"


def times(value: Any, digits: int = 1) -> str:
    """A ratio as a multiple: ``1.5倍``, ``2倍``."""
    if missing(value):
        return DASH
    return number(value, digits) + "倍"


def jdate(value: Any) -> str:
    """``2026年11月22日`` from a date, datetime, timestamp or ISO text."""
    if missing(value):
        return DASH
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    return f"{value.year}年{value.month}月{value.day}日"


def encoding_label(value: Any) -> str:
    """How the console names an encoding: ``cp932`` → ``Shift_JIS（cp932）``.

    Accepts the key (``cp932``, ``utf-8-sig``) and older stored labels such as
    ``Shift_JIS (cp932)``; unknown values come back unchanged.
    """
    if missing(value):
        return DASH
    text = str(value).strip()
    key = text.lower()
    if key in ENCODING_LABELS:
        return ENCODING_LABELS[key]
    if "cp932" in key or "shift" in key:
        return ENCODING_LABELS["cp932"]
    if "bom" in key:
        return ENCODING_LABELS["utf-8-sig"]
    return text
