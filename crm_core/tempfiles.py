"""Working folders in the system temp folder that a killed process cannot leave behind for good.

Imports transcode cp932 exports into a UTF-8 copy (as big as the export) and
the console writes uploads to disk.  Each working folder is named
``crm-<purpose>-<pid>-<random>``; a process killed with ``kill -9`` cannot
remove its own, so :func:`sweep` (called at the start of every import, every
command and the console's start) removes the folders of processes that no
longer run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_NAME = re.compile(r"^crm-[a-z]+-(\d+)-")


@contextlib.contextmanager
def work_dir(purpose: str) -> Iterator[str]:
    """A private temporary folder named after this process; removed on exit."""
    with tempfile.TemporaryDirectory(prefix=f"crm-{purpose}-{os.getpid()}-") as path:
        yield path


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: leave its folder alone
    return True


def sweep(root: str | Path | None = None) -> int:
    """Remove working folders whose process is gone; return how many were removed."""
    base = Path(root or tempfile.gettempdir())
    removed = 0
    try:
        entries = list(base.iterdir())
    except OSError:
        return 0
    for entry in entries:
        match = _NAME.match(entry.name)
        if not match or not entry.is_dir() or _alive(int(match.group(1))):
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += not entry.exists()
    if removed:
        log.info("removed %d working folder(s) left by stopped processes", removed)
    return removed
