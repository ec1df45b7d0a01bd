"""What a job function gets (:class:`JobContext`)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_core import jobs
from crm_core.db import Store

log = logging.getLogger("crm_core.worker")


@dataclass
class JobContext:
    """What a job function gets: its job, where the stores and the inbox are."""

    job: jobs.Job
    db_path: str
    ops_path: Path
    inbox: Path
    wait: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    """Set when the worker is being stopped (SIGTERM, Ctrl-C): an error then is the stop, not the job's failure."""

    def store(self) -> Store:
        """The DuckDB store, opened at its first query (use ``with ctx.store() as store:``).

        Jobs write for long (imports), so the store publishes a snapshot for
        the console to read meanwhile (see :class:`crm_core.db.Store`).
        """
        return Store(self.db_path, wait=self.wait, lazy=True, snapshot=True,
                     on_wait=lambda: log.info("ほかの処理がデータベースを更新しています。終わり次第始めます…"))
