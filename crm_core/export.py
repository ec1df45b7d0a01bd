"""CSV exports that Excel in Japan opens, with spreadsheet formulas neutralised.

Text cells are NFKC-normalised first (``＝`` becomes ``=``) and then any text
starting with ``= + - @``, a tab or a carriage return gets a leading ``'``
(FACTS.md §2).  Real numbers such as ``-1500`` stay numbers.
"""

from __future__ import annotations

import codecs
import threading
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
    """A copy of ``df`` whose text columns and column headers cannot start a formula.

    Headers can come from the marketer's data (rank names in the rank-movement
    table, segment names), so they are neutralised like cells.
    """
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_string_dtype(out[col]) or out[col].dtype == object:
            out[col] = out[col].map(neutralise_cell)
    out.columns = [neutralise_cell(c) for c in out.columns]
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


_SINK = threading.local()


def _collect(err: UnicodeError) -> tuple[str, int]:
    """Codec error handler: note the characters cp932 cannot carry (this thread's sink), write ``?``."""
    if not isinstance(err, UnicodeEncodeError):
        raise err
    _SINK.bad.update(err.object[err.start:err.end])
    return "?", err.end


codecs.register_error("crm_collect_unencodable", _collect)


def cp932_unencodable(df: pd.DataFrame) -> set[str]:
    """Characters in ``df`` (cells and headers) that cp932 cannot encode.

    Each column is encoded as one text; the encoder's error handler collects
    the characters it cannot carry, so the cost stays that of encoding.
    """
    _SINK.bad = set()
    texts = ["\n".join(str(c) for c in df.columns)]
    texts += ["\n".join(df[col].dropna().astype(str)) for col in df.columns]
    for text in texts:
        text.encode("cp932", errors="crm_collect_unencodable")
    return _SINK.bad


def unencodable_warning(chars: set[str] | list[str]) -> str:
    """The Japanese warning for characters written as ``?`` in a cp932 file."""
    shown = "".join(sorted(chars)[:20])
    more = f" ほか{len(chars) - 20}文字" if len(chars) > 20 else ""
    return f"cp932で表せない文字を「?」に置き換えました: {shown}{more}"
