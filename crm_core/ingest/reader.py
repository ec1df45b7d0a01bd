"""Reading raw export files: encoding detection, streaming transcoding, header.

DuckDB reads UTF-8 only (the ``encodings`` extension would be downloaded at
run time), so cp932 files are transcoded to UTF-8 in a streaming pass:
bounded memory whatever the file size.  The same pass computes the file's
SHA-256 for idempotent re-imports.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crm_core import jp
from crm_core.errors import InputError
from crm_core.ingest import transcode_part

CHUNK = 8 * 1024 * 1024
SNIFF = 256 * 1024

ENCODING_LABELS = {k: jp.ENCODING_LABELS[k] for k in ("utf-8", "utf-8-sig", "cp932")}


log = logging.getLogger(__name__)

PARALLEL_MIN = 64 * 1024 * 1024  # files at least this big are transcoded by several processes


@dataclass
class RawFile:
    """A file ready for DuckDB: UTF-8 on disk, with what we learned reading it.

    ``parts`` are the UTF-8 files DuckDB reads, in order; ``skip`` is the number
    of lines to skip at the start of each (1 when the first part still holds
    the header line, 0 when the header was left out while transcoding).
    """

    original: Path
    parts: list[Path]
    skip: int
    encoding: str
    sha256: str
    headers: list[str]
    size: int

    @property
    def temporary(self) -> list[Path]:
        """The parts we wrote (never the user's own file)."""
        return [p for p in self.parts if p != self.original]


def sniff_encoding(sample: bytes) -> str:
    """Guess the encoding of the first bytes of a file.

    Returns ``utf-8-sig`` (BOM), ``utf-8`` or ``cp932`` (never ``shift_jis``,
    which cannot decode ①, ㈱, 髙 ...).

    Raises
    ------
    InputError
        If neither UTF-8 nor cp932 can decode the sample.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if b"\x00" in sample[:4096]:
        raise InputError(
            "テキスト形式のCSVではないようです（バイナリファイルまたはUTF-16です）。"
            "Excelで開いている場合は「CSV（コンマ区切り）」で保存し直してください。",
            "NUL byte in sample",
        )
    valid_prefix: dict[str, int] = {}
    for encoding in ("utf-8", "cp932"):
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            decoder.decode(sample, final=False)
            return encoding
        except UnicodeDecodeError as exc:
            valid_prefix[encoding] = exc.start
    # A file that decodes well past its header and then hits a bad byte is that
    # encoding with damage: the streaming pass reports the line.
    encoding, prefix = max(valid_prefix.items(), key=lambda kv: kv[1])
    if b"\n" in sample[:prefix]:
        return encoding
    raise InputError(
        "文字コードを判別できませんでした。楽天RMSのCSV（Shift_JIS）またはUTF-8のCSVを選んでください。",
        "neither utf-8 nor cp932 decodes the sample",
    )


def read_header(first_text: str) -> list[str]:
    """The first CSV record of a decoded text sample."""
    reader = csv.reader(io.StringIO(first_text))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        header = []
    return [h.strip() for h in header]


def prepare(
    path: str | Path,
    workdir: str | Path,
    progress: Callable[[float], None] | None = None,
) -> RawFile:
    """Decode ``path`` to a UTF-8 copy in ``workdir`` (or use it as is).

    Parameters
    ----------
    path : path
        The uploaded or given export file.
    workdir : path
        A private temporary folder for the UTF-8 copy.
    progress : callable, optional
        Called with the fraction of bytes processed.

    Raises
    ------
    InputError
        Empty file, no header, or bytes that the detected encoding cannot
        decode (with the approximate line).
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"「{path.name}」は空のファイルです。", "empty file")
    with open(path, "rb") as fh:
        sample = fh.read(SNIFF)
    encoding = sniff_encoding(sample)
    text_sample = sample.decode(encoding, errors="ignore")
    headers = read_header(text_sample)
    if not any(headers):
        raise InputError(f"「{path.name}」に見出し行がありません。", "no header")

    digest = hashlib.sha256()
    if encoding in ("utf-8", "utf-8-sig"):
        # Stream once for the hash and a strict UTF-8 check; DuckDB reads the file itself.
        decoder = codecs.getincrementaldecoder("utf-8")()
        lines = 0
        done = 0
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                try:
                    decoder.decode(chunk, final=False)
                except UnicodeDecodeError as exc:
                    raise _decode_error(path, encoding, lines + chunk[: exc.start].count(b"\n") + 1) from None
                lines += chunk.count(b"\n")
                done += len(chunk)
                if progress:
                    progress(done / size)
        return RawFile(path, [path], 1, encoding, digest.hexdigest(), headers, size)

    if size >= PARALLEL_MIN and (os.cpu_count() or 1) > 1:
        try:
            return _transcode_parallel(path, Path(workdir), encoding, headers, size, progress)
        except _NoWorkers as exc:  # worker processes could not run here: one process then, and say so
            log.warning("parallel transcoding of a %d-byte file failed (%s); transcoding in one process", size, exc)

    out_path = Path(workdir) / (path.stem + ".utf8.csv")
    decoder = codecs.getincrementaldecoder(encoding)()
    lines = 0
    done = 0
    with open(path, "rb") as src, open(out_path, "w", encoding="utf-8", newline="") as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            try:
                dst.write(decoder.decode(chunk, final=False))
            except UnicodeDecodeError as exc:
                raise _decode_error(path, encoding, lines + chunk[: exc.start].count(b"\n") + 1) from None
            lines += chunk.count(b"\n")
            done += len(chunk)
            if progress:
                progress(done / size)
        try:
            dst.write(decoder.decode(b"", final=True))
        except UnicodeDecodeError:
            raise _decode_error(path, encoding, lines + 1) from None
    return RawFile(path, [out_path], 1, encoding, digest.hexdigest(), headers, size)


def _transcode_parallel(
    path: Path, workdir: Path, encoding: str, headers: list[str], size: int, progress: Callable[[float], None] | None
) -> RawFile:
    """Transcode a big file with one process per core.

    One sequential pass hashes the file and finds split points at record
    boundaries: a newline outside quotes.  In cp932 the bytes ``"`` and ``\\n``
    never occur inside a double-byte character (trail bytes are 0x40-0xFC),
    so counting quote bytes tells whether a newline ends a record.  The
    header line is left out of the parts (``skip = 0``).
    """
    workers = min(os.cpu_count() or 2, 4)
    digest, header_end, splits = _scan(path, size, workers, progress)
    bounds = [header_end, *splits, size]
    jobs = [
        (str(path), start, end, str(workdir / f"{path.stem}.part{i}.utf8.csv"), encoding)
        for i, (start, end) in enumerate(zip(bounds, bounds[1:]))
        if end > start
    ]
    try:
        results = _run_workers(jobs)
    except _NoWorkers:
        for job in jobs:  # the single pass writes the whole file again: no half-written parts beside it
            Path(job[3]).unlink(missing_ok=True)
        raise
    for bad_offset in results:
        if bad_offset is not None:
            raise _decode_error(path, encoding, _count_lines(path, bad_offset) + 1)
    if progress:
        progress(1.0)
    return RawFile(path, [Path(j[3]) for j in jobs], 0, encoding, digest, headers, size)


def _scan(
    path: Path, size: int, parts: int, progress: Callable[[float], None] | None
) -> tuple[str, int, list[int]]:
    """SHA-256, the end of the header record and up to ``parts - 1`` split offsets."""
    digest = hashlib.sha256()
    targets = [size * i // parts for i in range(1, parts)]
    header_end: int | None = None
    splits: list[int] = []
    quotes = 0  # quote bytes before the current chunk
    offset = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            pos = 0
            while True:
                want = header_end is None or (len(splits) < len(targets) and offset + len(chunk) > targets[len(splits)])
                if not want:
                    break
                start = pos if header_end is None else max(pos, targets[len(splits)] - offset)
                nl = chunk.find(b"\n", start)
                if nl < 0:
                    break
                if (quotes + chunk.count(b'"', 0, nl)) % 2 == 0:
                    if header_end is None:
                        header_end = offset + nl + 1
                    elif offset + nl + 1 > (splits[-1] if splits else header_end):
                        splits.append(offset + nl + 1)
                pos = nl + 1
            quotes += chunk.count(b'"')
            offset += len(chunk)
            if progress:
                progress(0.5 * offset / size)
    return digest.hexdigest(), header_end or size, [s for s in splits if s < size]


class _NoWorkers(Exception):
    """A worker process could not start or died without an answer."""


def _run_workers(jobs: list[tuple[str, int, int, str, str]]) -> list[int | None]:
    """Run :mod:`transcode_part` once per job, all at once, each in its own Python process.

    Plain subprocesses, not a ``multiprocessing`` pool: a pool re-imports the parent's ``__main__`` (Streamlit's page
    script in the console).  ``-I`` keeps the workers free of the environment's Python settings and of the caller's
    directory.  Returns, per job, None or the byte offset of its first undecodable byte.
    """
    script = transcode_part.__file__
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for src, start, end, out, encoding in jobs:
            procs.append(subprocess.Popen(
                [sys.executable, "-I", script, src, str(start), str(end), out, encoding],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            ))
        results: list[int | None] = []
        for proc in procs:
            out, err = proc.communicate()
            answer = out.decode("ascii", errors="replace").strip()
            if proc.returncode == 0:
                results.append(None)
            elif proc.returncode == transcode_part.BAD_BYTES and answer.isdigit():
                results.append(int(answer))
            else:
                last = err.decode("utf-8", errors="replace").strip().splitlines()[-1:] or [""]
                raise _NoWorkers(f"worker exited with {proc.returncode}: {last[0][:200]}")
        return results
    except OSError as exc:
        raise _NoWorkers(str(exc)) from exc
    finally:
        for proc in procs:  # an error or an interrupt leaves no worker (and no open pipe) behind
            if proc.poll() is None:
                proc.kill()
            if proc.stdout is not None and not proc.stdout.closed:
                proc.communicate()  # reaps it and closes its pipes


def _count_lines(path: Path, upto: int) -> int:
    """Newlines before byte offset ``upto`` (for error messages)."""
    lines = 0
    done = 0
    with open(path, "rb") as fh:
        while done < upto:
            chunk = fh.read(min(CHUNK, upto - done))
            if not chunk:
                break
            lines += chunk.count(b"\n")
            done += len(chunk)
    return lines


def _decode_error(path: Path, encoding: str, line: int) -> InputError:
    label = ENCODING_LABELS.get(encoding, encoding)
    return InputError(
        f"「{path.name}」の{line:,}行目付近に、{label}として読めない文字があります。"
        "ファイルが途中で壊れていないか、別の文字コードで保存されていないか確認してください。",
        f"decode error as {encoding} near line {line}",
    )


def remove_quietly(path: Path) -> None:
    """Delete a temporary file if it exists."""
    with contextlib.suppress(OSError):
        os.remove(path)
