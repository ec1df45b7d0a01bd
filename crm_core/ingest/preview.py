"""What the import page shows before importing: format, encoding, first rows."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import pandas as pd

from crm_core.errors import InputError
from crm_core.ingest import formats as F
from crm_core.ingest.reader import ENCODING_LABELS, SNIFF, read_header, sniff_encoding


@dataclass
class FilePreview:
    """A first look at one file.

    Attributes
    ----------
    format : str
        Known format key, or ``generic``.
    format_label : str
        Japanese name of the format.
    kind : str
        ``orders``, ``contacts`` or ``products`` (guessed for generic files).
    encoding_label : str
        Japanese label of the detected encoding.
    headers : list of str
    rows : DataFrame
        The first rows (as text).
    suggested_mapping : dict
        ``{header: field}`` proposed for a generic file.
    problem : str or None
        Why the file cannot be imported as it is (a known export with a
        required column missing), in Japanese; None when it can.
    """

    format: str
    format_label: str
    kind: str
    encoding_label: str
    headers: list[str]
    rows: pd.DataFrame
    suggested_mapping: dict[str, str]
    problem: str | None = None


def preview(sample: bytes, name: str, nrows: int = 5) -> FilePreview:
    """Inspect the first bytes of a file (at most 256 KiB are read).

    Raises
    ------
    InputError
        Empty, binary or undecodable file, or no header row.
    """
    sample = sample[:SNIFF]
    if not sample:
        raise InputError(f"「{name}」は空のファイルです。", "empty file")
    encoding = sniff_encoding(sample)
    text = sample.decode(encoding, errors="ignore")
    headers = read_header(text)
    if not any(headers):
        raise InputError(f"「{name}」に見出し行がありません。", "no header")
    reader = csv.reader(io.StringIO(text))
    next(reader, None)
    body = []
    for i, row in enumerate(reader):
        if i >= nrows:
            break
        body.append((row + [""] * len(headers))[: len(headers)])
    if body and len(text) >= SNIFF - 4:
        body = body[: max(1, len(body) - 1)]  # the last row may be cut at the sample's end
    unique = _unique(headers)
    rows = pd.DataFrame(body, columns=unique, dtype="str") if body else pd.DataFrame(columns=unique)
    close = F.closest_format(headers)
    if close is not None:
        known, missing = close
        problem = F.missing_message(name, known, missing) if missing else None
        label = known.label + ("（必須列が足りません）" if missing else "")
        return FilePreview(known.key, label, known.kind, ENCODING_LABELS[encoding], headers, rows, {}, problem)
    kind = F.guess_kind(headers)
    return FilePreview(
        "generic",
        "汎用CSV（列の対応を指定してください）",
        kind,
        ENCODING_LABELS[encoding],
        headers,
        rows,
        F.suggest_mapping(headers, kind),
    )


def _unique(headers: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for h in headers:
        h = h or "(無名)"
        if h in seen:
            seen[h] += 1
            out.append(f"{h} ({seen[h]})")
        else:
            seen[h] = 0
            out.append(h)
    return out
