"""Decode one byte range of a big export into a UTF-8 part: the worker of the parallel transcoding.

The reader starts this file as its own Python process (``python -I transcode_part.py SRC START END OUT ENCODING``)
instead of a ``multiprocessing`` pool: a spawned pool re-imports the parent's ``__main__``, which inside the console is
Streamlit's page script — the workers crashed and big cp932 files were silently transcoded by one process.  This file
imports the standard library only, so a worker starts in a few tens of milliseconds.

The process prints nothing and exits 0 when the range decodes, or prints the byte offset of the first undecodable byte
and exits 3.
"""

from __future__ import annotations

import codecs
import sys

CHUNK = 8 * 1024 * 1024
BAD_BYTES = 3  # exit status: the range holds bytes the encoding cannot decode


def decode_range(src_path: str, start: int, end: int, out_path: str, encoding: str) -> int | None:
    """Decode bytes [start, end) of ``src_path`` into ``out_path`` (UTF-8); None, or the offset of the first bad byte."""
    decoder = codecs.getincrementaldecoder(encoding)()
    done = start
    with open(src_path, "rb") as src, open(out_path, "w", encoding="utf-8", newline="") as dst:
        src.seek(start)
        while done < end:
            chunk = src.read(min(CHUNK, end - done))
            if not chunk:
                break
            try:
                dst.write(decoder.decode(chunk, final=False))
            except UnicodeDecodeError as exc:
                return done + exc.start
            done += len(chunk)
        try:
            dst.write(decoder.decode(b"", final=True))
        except UnicodeDecodeError:
            return end - 1
    return None


def main(argv: list[str]) -> int:
    src_path, start, end, out_path, encoding = argv
    bad = decode_range(src_path, int(start), int(end), out_path, encoding)
    if bad is None:
        return 0
    print(bad)
    return BAD_BYTES


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
