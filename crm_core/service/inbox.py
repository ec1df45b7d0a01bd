"""Imports of files dropped into the inbox folder (``data/inbox/`` by default, ``CRM_INBOX``).

The worker notices a file once it has stopped changing for a moment
(:func:`scan`) and queues one ``inbox_import`` job per file version
(the job's ``dedupe_key`` is name, size and modification time).  The job
moves the file to ``processing/`` (an atomic rename: one worker gets it),
imports it with the pipeline, then moves it to ``done/`` or ``failed/`` with a
``<file>.report.json`` beside it.  A worker killed mid-import leaves the file in
``processing/``; the job runs again there (importing is idempotent).

Files whose name starts with ``.`` or ends in ``.part``/``.tmp`` are ignored
(copy under such a name, then rename, so a half-copied file is never read).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crm_core import jobs, opsdb
from crm_core.db import default_db_path
from crm_core.errors import InputError

if TYPE_CHECKING:
    from crm_core.service.context import JobContext

SETTLE_SECONDS = 2.0
SUBFOLDERS = ("processing", "done", "failed")


def default_inbox(db_path: str | Path | None = None) -> Path:
    """``$CRM_INBOX``, else ``inbox/`` beside the store file (``data/inbox/`` for the default store)."""
    env = os.environ.get("CRM_INBOX")
    if env:
        return Path(env)
    return Path(db_path or default_db_path()).resolve().parent / "inbox"


def ensure(inbox: Path) -> None:
    for sub in ("",) + SUBFOLDERS:
        (inbox / sub).mkdir(parents=True, exist_ok=True)


def _candidate(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in (".part", ".tmp")


def scan(con: sqlite3.Connection, inbox: Path, settle: float = SETTLE_SECONDS) -> list[int]:
    """Queue an import job for each settled file in the inbox (once per file version)."""
    if not inbox.is_dir():
        return []
    ids: list[int] = []
    files = [p for p in sorted(inbox.iterdir()) if _candidate(p)]
    if not files:
        return ids
    with opsdb.transaction(con):
        for p in files:
            try:
                st = p.stat()
            except FileNotFoundError:
                continue  # taken by another worker meanwhile
            if time.time() - st.st_mtime < settle:
                continue
            ids.append(jobs.enqueue_on(con, "inbox_import", {"name": p.name, "inbox": str(inbox)},
                                       dedupe_key=f"inbox:{inbox}/{p.name}:{st.st_size}:{st.st_mtime_ns}", created_by="inbox"))
    return ids


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    if not target.exists() and not (folder / (name + ".report.json")).exists():
        return target
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return folder / f"{stamp}_{name}"


def _settle(src: Path, folder: Path, name: str, report: dict[str, Any]) -> Path:
    target = _free_name(folder, name)
    os.replace(src, target)
    Path(str(target) + ".report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return target


def import_inbox_file(ctx: JobContext) -> dict[str, Any] | None:
    """The ``inbox_import`` job: claim the file, import it, file it under done/ or failed/ with its report."""
    from crm_core.pipeline import import_files

    name = ctx.job.args["name"]
    inbox = Path(ctx.job.args.get("inbox") or ctx.inbox)
    ensure(inbox)
    src, work = inbox / name, inbox / "processing" / name
    if src.exists():
        os.replace(src, work)  # atomic: of two workers, one moves it
    elif not work.exists():
        return {"summary": f"「{name}」は既に処理されていました。", "skipped": True}
    started = dt.datetime.now().isoformat(timespec="seconds")
    try:
        with ctx.store() as store:
            report = import_files(store, [work], display_names=[name])
    except InputError as exc:
        _settle(work, inbox / "failed", name, {"file": name, "started_at": started, "errors": [exc.message]})
        raise
    except Exception as exc:
        if ctx.job.attempts >= ctx.job.max_attempts and not ctx.stopping.is_set():  # a stop runs it again
            _settle(work, inbox / "failed", name, {"file": name, "started_at": started,
                                                    "errors": ["予期しないエラーで取り込めませんでした。管理者にお問い合わせください。"],
                                                    "detail": type(exc).__name__})
        raise
    body = {"file": name, "started_at": started, **report.to_dict()}
    done = _settle(work, inbox / "done", name, body)
    added = sum(f.orders_added for f in report.files)
    updated = sum(f.orders_updated for f in report.files)
    return {"summary": f"「{name}」を取り込みました（注文 追加{added:,}件・更新{updated:,}件）。",
            "file": str(done), "orders_added": added, "orders_updated": updated, "warnings": report.warnings}
