"""CSV exports that Excel in Japan opens, with spreadsheet formulas neutralised.

Text cells are NFKC-normalised first (``＝`` becomes ``=``) and then any text
starting with ``= + - @``, a tab or a carriage return gets a leading ``'``
(FACTS.md §2).  Real numbers such as ``-1500`` stay numbers.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import shutil
import threading
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

ENCODINGS = ("utf-8-sig", "cp932")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

FORMULA_FIRST = (
    "\t\r+-=@"
    "\u207a\u207c\u208a\u208c"  # superscript / subscript plus and equals
    "\u2a75\u2a76"  # two and three consecutive equals signs
    "\ufb29\ufe62\ufe63\ufe66\ufe6b"  # Hebrew alternative plus, small plus / hyphen-minus / equals / at
    "\uff0b\uff0d\uff1d\uff20"  # fullwidth + - = @
)
"""Every character that starts a formula by itself or after NFKC (a test scans all of Unicode).

NFKC of a text starts with a formula character only when NFKC of its first
character does, so looking at the first character is the whole rule; the SQL
export (:func:`sql_neutralised`) uses it as is.
"""


def neutralise_cell(value: object) -> object:
    """Return a cell safe for spreadsheets (text only; numbers untouched)."""
    if not isinstance(value, str):
        return value
    if (value and value[0] in FORMULA_FIRST) or unicodedata.normalize("NFKC", value).startswith(_FORMULA_START):
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


# ---------------------------------------------------------------------------
# Big exports: neutralised in SQL, written by DuckDB's COPY
# ---------------------------------------------------------------------------

_SQL_FIRST = ", ".join(str(ord(c)) for c in FORMULA_FIRST)  # code points: an integer test is twice as fast as text
_NEEDS_QUOTES = (",", '"', "\r", "\n")
_TRANSCODE_CHUNK = 8 << 20  # bytes of UTF-8 read at a time when writing cp932


def sql_neutralised(expr: str) -> str:
    """SQL of a text cell as :func:`neutralise_cell` makes it; empty text is written as an empty field.

    ``expr`` is SQL built by the caller from constant or allowlisted names.
    """
    return f"CASE WHEN unicode({expr}) IN ({_SQL_FIRST}) THEN '''' || {expr} ELSE nullif({expr}, '') END"


def _sql_cell(expr: str, sql_type: str) -> str:
    """SQL writing one column the way ``DataFrame.to_csv`` wrote it (neutralised text, True/False, floats)."""
    if sql_type == "VARCHAR":
        return sql_neutralised(expr)
    if sql_type == "BOOLEAN":
        return f"CASE WHEN {expr} THEN 'True' WHEN NOT {expr} THEN 'False' END"
    if sql_type.startswith("DECIMAL"):  # pandas read decimals as floats: 5760.0
        return f"CAST({expr} AS DOUBLE)"
    if sql_type in ("DOUBLE", "FLOAT"):  # NaN is an empty cell, as pandas writes it
        return f"CASE WHEN isnan({expr}) THEN NULL ELSE {expr} END"
    if sql_type == "TIMESTAMP":
        return f"strftime({expr}, '%Y-%m-%d %H:%M:%S')"
    if sql_type in ("DATE", "TIME") or sql_type.startswith(("TIMESTAMP", "INTERVAL")):
        return f"CAST({expr} AS VARCHAR)"
    return expr


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote_header(name: str) -> str:
    """A header cell as the csv module writes it (quoted only when it has to be)."""
    return '"' + name.replace('"', '""') + '"' if any(c in name for c in _NEEDS_QUOTES) else name


def copy_csv(
    store,
    columns: Sequence[tuple[str, str]],
    from_sql: str,
    params: list | dict | None,
    out_path: str | Path,
    encoding: str = "utf-8-sig",
    unencodable: set[str] | None = None,
) -> int:
    """Write a query's rows as a CSV that Excel opens, at DuckDB's pace; return the rows written.

    The same file :func:`to_csv_bytes` writes for the query's DataFrame (text
    cells and headers neutralised, ``\\r\\n`` line ends, UTF-8 with BOM or
    cp932), but the cells are neutralised in SQL and DuckDB's ``COPY``
    writes them, so millions of rows take seconds.  The file appears
    complete or not at all (written beside it, then renamed).

    Parameters
    ----------
    store : Store
        The CRM store (the query runs on this thread's cursor, inside its
        transaction if one is open).
    columns : sequence of (str, str)
        Each column's SQL expression and its header (neutralised too).
    from_sql, params : str, list or dict
        The rest of the query (``FROM ... WHERE ... ORDER BY ...``, built
        from allowlisted names, values bound) and its values.  Qualify the
        names in ``ORDER BY``: unqualified ones would mean the written cells.
    out_path : str or Path
        The CSV file to write.
    encoding : {"utf-8-sig", "cp932"}
        With cp932, characters it cannot carry become ``?``.
    unencodable : set, optional
        With cp932, filled with the characters written as ``?``.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported export encoding: {encoding}")
    exprs = [e for e, _ in columns]
    probe = store.execute("SELECT " + ", ".join(exprs) + " " + from_sql + " LIMIT 0", params)  # noqa: S608
    types = [str(d[1]) for d in probe.description]
    names = [str(neutralise_cell(h)) for _, h in columns]
    out = Path(out_path)
    part = out.with_name(f".{out.name}.{os.getpid()}.part")
    body = out.with_name(f".{out.name}.{os.getpid()}.body")
    # the header goes in the COPY itself (as column names) when no header cell needs quotes
    direct = encoding == "utf-8-sig" and not any(c in n for n in names for c in _NEEDS_QUOTES) and all(names)
    aliases = ["\ufeff" + names[0], *names[1:]] if direct else [f"c{i}" for i in range(len(names))]
    select = ", ".join(
        _sql_cell(f"({e})", t) + ' AS "' + a.replace('"', '""') + '"' for e, t, a in zip(exprs, types, aliases)
    )
    copy = (
        "COPY (SELECT " + select + " " + from_sql + ") TO "  # noqa: S608 - caller's allowlisted SQL
        + _sql_literal(str(part if direct else body))
        + " (FORMAT csv, HEADER " + ("true" if direct else "false") + ", NEW_LINE '\r\n', USE_TMP_FILE false)"
    )
    try:
        if encoding == "cp932" and hasattr(os, "mkfifo"):
            head = ",".join(_quote_header(n) for n in names) + "\r\n"
            rows, bad = _copy_through_pipe(store, copy, params, head, body, part)
            if unencodable is not None:
                unencodable |= bad
            os.replace(part, out)
            return rows
        rows = int(store.execute(copy, params).fetchone()[0])
        if not direct:
            head = ",".join(_quote_header(n) for n in names) + "\r\n"
            with open(part, "wb") as fh:
                if encoding == "utf-8-sig":
                    fh.write(("\ufeff" + head).encode("utf-8"))
                    with open(body, "rb") as src:
                        shutil.copyfileobj(src, fh, _TRANSCODE_CHUNK)
                else:
                    bad = _transcode_cp932(head, body, fh)
                    if unencodable is not None:
                        unencodable |= bad
        os.replace(part, out)
    finally:
        for leftover in (part, body):
            leftover.unlink(missing_ok=True)
    return rows


_PIPE_SIZE = 1 << 20  # bytes the pipe holds while the transcoder works (Linux: F_SETPIPE_SZ)


def _copy_through_pipe(store, copy: str, params, head: str, pipe: Path, part: Path) -> tuple[int, set[str]]:
    """Run ``copy`` into the named pipe ``pipe`` while a thread transcodes what arrives into ``part`` (cp932).

    DuckDB formats and writes on its threads while Python's cp932 codec runs
    on another, instead of one after the other.  Return the rows written and
    the characters written as ``?``.  A failing ``COPY`` or transcoder ends
    both sides (the pipe is closed), and the error is raised.
    """
    pipe.unlink(missing_ok=True)  # left by a killed export of a process with the same id
    os.mkfifo(pipe, 0o600)
    outcome: dict[str, object] = {}

    def pump() -> None:
        try:
            fd = os.open(pipe, os.O_RDONLY)  # waits for the writer (DuckDB, or release() below)
            try:
                with contextlib.suppress(OSError):
                    import fcntl

                    fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_SIZE)
                with open(part, "wb") as fh, open(fd, "rb", closefd=False) as src:
                    # whole blocks (a read of the pipe alone returns whatever DuckDB wrote last): fewer codec calls
                    outcome["bad"] = _transcode_cp932(head, lambda: src.read(_PIPE_SIZE), fh)
            finally:
                os.close(fd)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    def release() -> None:
        """Give a transcoder still waiting for a writer its end of file."""
        while worker.is_alive():
            try:
                os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
                return
            except OSError:  # no reader yet (ENXIO): it is about to open
                worker.join(0.01)

    worker = threading.Thread(target=pump, name="cp932-export", daemon=True)
    worker.start()
    try:
        rows = int(store.execute(copy, params).fetchone()[0])
    except BaseException:
        release()
        worker.join()
        if isinstance(outcome.get("error"), BaseException):
            raise outcome["error"] from None
        raise
    release()  # a COPY of no rows may never have opened the pipe
    worker.join()
    if isinstance(outcome.get("error"), BaseException):
        raise outcome["error"]
    return rows, outcome.get("bad", set())


def _transcode_cp932(head: str, body, fh) -> set[str]:
    """Write ``head`` and the UTF-8 ``body`` to ``fh`` in cp932; return the characters written as ``?``.

    ``body`` is a file path, or a function returning the next bytes (``b""`` at the end).
    """
    _SINK.bad = set()
    decoder = codecs.getincrementaldecoder("utf-8")()
    fh.write(_encode_cp932(head))
    with contextlib.ExitStack() as stack:
        if callable(body):
            read = body
        else:
            src = stack.enter_context(open(body, "rb"))
            read = lambda: src.read(_TRANSCODE_CHUNK)  # noqa: E731
        while chunk := read():
            fh.write(_encode_cp932(decoder.decode(chunk)))
        fh.write(_encode_cp932(decoder.decode(b"", final=True)))
    return _SINK.bad


_KNOWN_BAD_MAX = 8  # distinct characters cp932 cannot carry that are counted instead of collected again


def _encode_cp932(text: str) -> bytes:
    """``text`` in cp932, each character it cannot carry written as ``?`` and added to this thread's sink.

    The codec's own ``replace`` runs in C; the collecting handler is a Python
    call per character, which made a file with a ``¥`` on every line twice as
    slow.  Each such character becomes exactly one ``?`` and cp932 never
    uses the byte ``?`` inside a double-byte character, so the ``?`` that
    ``replace`` added are counted: when the characters already collected
    account for all of them, the bytes and the set are final; otherwise the
    text is encoded again with the collecting handler.
    """
    out = text.encode("cp932", errors="replace")
    if b"?" not in out:  # the usual case: nothing replaced, nothing to count
        return out
    replaced = out.count(b"?") - text.count("?")
    if replaced and (len(_SINK.bad) > _KNOWN_BAD_MAX or replaced != sum(text.count(c) for c in _SINK.bad)):
        out = text.encode("cp932", errors="crm_collect_unencodable")
    return out
