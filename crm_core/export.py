"""CSV exports that Excel in Japan opens, with spreadsheet formulas neutralised.

Text cells are NFKC-normalised first (``＝`` becomes ``=``) and then any text
starting with ``= + - @``, a tab or a carriage return gets a leading ``'``
(FACTS.md §2).  Real numbers such as ``-1500`` stay numbers.
"""

from __future__ import annotations

import unicodedata

import pandas as pd

ENCODINGS = ("utf-8-sig", "cp932")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: object) -> object:
    """Return a cell safe for spreadsheets (text only; numbers untouched)."""
    if not isinstance(value, str):
        return value
    if value.startswith(_FORMULA_START) or unicodedata.normalize("NFKC", value).startswith(_FORMULA_START):
        return "'" + value
    return value


def neutralise(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text columns cannot start a formula."""
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_string_dtype(out[col]) or out[col].dtype == object:
            out[col] = out[col].map(neutralise_cell)
    return out


def to_csv_bytes(df: pd.DataFrame, encoding: str = "utf-8-sig") -> bytes:
    """Encode a table as CSV bytes for download.

    Parameters
    ----------
    df : DataFrame
        The rows to export.
    encoding : {"utf-8-sig", "cp932"}
        UTF-8 with BOM (Excel opens it correctly) or cp932 for older tools
        such as R-Mail; characters cp932 cannot carry become ``?`` and are
        reported by :func:`cp932_unencodable`.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported export encoding: {encoding}")
    text = neutralise(df).to_csv(index=False, lineterminator="\r\n")
    return text.encode(encoding, errors="replace")


def cp932_unencodable(df: pd.DataFrame) -> set[str]:
    """Characters in ``df`` that cp932 cannot encode."""
    bad: set[str] = set()
    for col in df.columns:
        for value in df[col].dropna().astype(str):
            for ch in value:
                try:
                    ch.encode("cp932")
                except UnicodeEncodeError:
                    bad.add(ch)
    return bad
