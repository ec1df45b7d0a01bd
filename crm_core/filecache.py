"""Files the console ships (preset templates and scenarios, the sale calendar), read once per version.

A page asks for the same preset file several times per run, and every rerun asks again; parsing
TOML or CSV each time cost tens of milliseconds per rerun.  :func:`read_once` keeps what a parser
made of a file per *version* of the file (path, modification time, size) in this process, so an
edited or replaced file is read again, and gives every caller its own deep copy, so nobody can
change what the next caller gets.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def file_version(path: str | Path) -> tuple[str, int, int]:
    """The file's identity for in-process caches: path, modification time (ns) and size."""
    info = Path(path).stat()
    return str(path), info.st_mtime_ns, info.st_size


def read_once(parse: Callable[[str], T]) -> Callable[[str | Path], T]:
    """``parse(path)`` run once per version of the file; each call returns a deep copy of the result."""

    @functools.lru_cache(maxsize=4)
    def parsed(path: str, mtime_ns: int, size: int) -> T:  # noqa: ARG001 - the version is the cache key
        return parse(path)

    @functools.wraps(parse)
    def read(path: str | Path) -> T:
        return copy.deepcopy(parsed(*file_version(path)))

    read.cache_clear = parsed.cache_clear  # type: ignore[attr-defined]
    return read
