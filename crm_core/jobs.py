"""Jobs: stored units of background work, claimed once even by several workers.

A job is a row of ``jobs`` in the operations store (:mod:`crm_core.opsdb`):
``queued`` -> ``running`` -> ``done`` | ``failed``.  Any process may
:func:`enqueue` one (the console, the command line, a webhook handler); the
worker (``python -m crm_core worker``, :mod:`crm_core.service.worker`)
:func:`claim`\\ s due jobs and runs the function registered for their kind.

Run once, survive crashes:

* :func:`claim` picks and marks a job inside one ``BEGIN IMMEDIATE``
  transaction, so of two workers polling at once exactly one gets it.
* A claimed job carries a lease (``lease_until``) that the running worker
  extends (:func:`heartbeat`).  If the worker dies (kill -9, power loss), the
  lease runs out and the next :func:`claim` by any worker records the attempt
  as ``lost`` and runs the job again (up to ``max_attempts``), so job
  functions must be idempotent (the importer is: re-importing a file changes
  nothing).
* ``dedupe_key`` (unique) makes enqueueing idempotent: the same inbox file or
  the same scheduled firing is queued once however many processes ask.

Recurring work lives in ``job_schedules``: a trigger (``interval:SECONDS`` or
``cron:MIN HOUR DAY MONTH WEEKDAY`` in Japan time) computed by APScheduler's
trigger classes; :func:`fire_due_schedules` enqueues each firing once.

History (one ``job_runs`` row per attempt: start, end, outcome, error) is what
the ジョブ履歴 page shows (:func:`history`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from crm_core import opsdb

JST = ZoneInfo("Asia/Tokyo")
DEFAULT_LEASE = 30.0  # seconds; the worker renews every third of it

STATUS_LABELS = {"queued": "待機中", "running": "実行中", "done": "完了", "failed": "失敗", "cancelled": "取消"}
OUTCOME_LABELS = {"running": "実行中", "done": "完了", "failed": "失敗", "lost": "中断（再実行）"}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def lease_seconds() -> float:
    """The lease of a claimed job: ``$CRM_JOB_LEASE`` seconds, default 30."""
    try:
        return float(os.environ.get("CRM_JOB_LEASE", DEFAULT_LEASE))
    except ValueError:
        return DEFAULT_LEASE


def worker_name() -> str:
    """``host:pid`` — who ran an attempt."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def connect(ops_path: str | Path) -> Iterator[sqlite3.Connection]:
    """A migrated operations-store connection, closed at the end of the block."""
    with closing(opsdb.connect(ops_path)) as con:
        yield con


@dataclass
class Job:
    job_id: int
    kind: str
    args: dict[str, Any]
    attempts: int
    max_attempts: int
    run_id: int
    worker: str


def enqueue(
    ops_path: str | Path,
    kind: str,
    args: dict[str, Any] | None = None,
    *,
    run_at: dt.datetime | None = None,
    dedupe_key: str | None = None,
    max_attempts: int = 3,
    created_by: str | None = None,
) -> int:
    """Queue a job (to run at ``run_at``, default now); return its id.

    With ``dedupe_key``, a job already queued under that key (in any state) is
    returned instead of queuing a second one.
    """
    with connect(ops_path) as con, opsdb.transaction(con):
        return enqueue_on(con, kind, args, run_at=run_at, dedupe_key=dedupe_key, max_attempts=max_attempts, created_by=created_by)


def enqueue_on(con: sqlite3.Connection, kind: str, args: dict[str, Any] | None = None, *, run_at: dt.datetime | None = None,
               dedupe_key: str | None = None, max_attempts: int = 3, created_by: str | None = None) -> int:
    """:func:`enqueue` inside the caller's transaction on ``con`` (``opsdb.transaction``)."""
    if dedupe_key is not None:
        row = con.execute("SELECT job_id FROM jobs WHERE dedupe_key = ?", [dedupe_key]).fetchone()
        if row is not None:
            return int(row[0])
    cur = con.execute(
        "INSERT INTO jobs (kind, args, dedupe_key, run_at, max_attempts, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [kind, json.dumps(args or {}, ensure_ascii=False), dedupe_key, _iso(run_at or now()), max_attempts, _iso(now()), created_by],
    )
    return int(cur.lastrowid)


def claim(con: sqlite3.Connection, worker: str, *, kinds: Sequence[str] | None = None, lease: float | None = None) -> Job | None:
    """Take the next due job (oldest first) for ``worker``, or None.

    First recovers jobs whose worker's lease ran out (their attempt becomes
    ``lost``; the job is queued again, or ``failed`` after its last attempt).
    """
    lease = lease_seconds() if lease is None else lease
    t = now()
    with opsdb.transaction(con):
        _recover_expired(con, t)
        sql = "SELECT job_id, kind, args, attempts, max_attempts FROM jobs WHERE status = 'queued' AND run_at <= ?"
        params: list[Any] = [_iso(t)]
        if kinds is not None:
            sql += " AND kind IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(kinds)))
        row = con.execute(sql + " ORDER BY run_at, job_id LIMIT 1", params).fetchone()
        if row is None:
            return None
        attempts = int(row["attempts"]) + 1
        con.execute(
            "UPDATE jobs SET status = 'running', attempts = ?, worker = ?, lease_until = ?, error = NULL WHERE job_id = ?",
            [attempts, worker, _iso(t + dt.timedelta(seconds=lease)), row["job_id"]],
        )
        run = con.execute(
            "INSERT INTO job_runs (job_id, kind, worker, started_at) VALUES (?, ?, ?, ?)",
            [row["job_id"], row["kind"], worker, _iso(t)],
        )
        return Job(int(row["job_id"]), row["kind"], json.loads(row["args"]), attempts, int(row["max_attempts"]),
                   int(run.lastrowid), worker)


LOST_RUN = "処理の途中でワーカーが止まりました（停止・再起動など）。回数の上限までは自動でやり直します。"
"""What ジョブ履歴 shows for a run whose worker stopped (its lease expired): marketers read it there."""


def _recover_expired(con: sqlite3.Connection, t: dt.datetime) -> None:
    expired = con.execute(
        "SELECT job_id, attempts, max_attempts FROM jobs WHERE status = 'running' AND lease_until < ?", [_iso(t)]
    ).fetchall()
    for row in expired:
        con.execute(
            "UPDATE job_runs SET outcome = 'lost', finished_at = ?, error = ? WHERE job_id = ? AND outcome = 'running'",
            [_iso(t), LOST_RUN, row["job_id"]],
        )
        last = int(row["attempts"]) >= int(row["max_attempts"])
        con.execute(
            "UPDATE jobs SET status = ?, worker = NULL, lease_until = NULL, error = ?, finished_at = ? WHERE job_id = ?",
            ["failed" if last else "queued", LOST_RUN, _iso(t) if last else None, row["job_id"]],
        )


def heartbeat(con: sqlite3.Connection, job: Job, *, lease: float | None = None) -> bool:
    """Extend ``job``'s lease; False when the job is no longer this worker's (it was recovered)."""
    lease = lease_seconds() if lease is None else lease
    cur = con.execute(
        "UPDATE jobs SET lease_until = ? WHERE job_id = ? AND worker = ? AND status = 'running'",
        [_iso(now() + dt.timedelta(seconds=lease)), job.job_id, job.worker],
    )
    return cur.rowcount == 1


def finish(con: sqlite3.Connection, job: Job, *, result: dict[str, Any] | None = None, summary: str | None = None,
           error: str | None = None, retry: bool = False, retry_after: float = 60.0, stopped: bool = False) -> str:
    """Record the end of an attempt; return the job's new status.

    ``error`` None means success (``done``).  With an error and ``retry`` the
    job is queued again after ``retry_after`` × attempts seconds while attempts
    remain; otherwise it is ``failed``.  ``stopped`` (the worker was stopped
    mid-job: a restart, a deploy) queues it again after ``retry_after`` seconds
    without counting the attempt, so restarts never use up a job's attempts.
    """
    t = now()
    with opsdb.transaction(con):
        outcome = "done" if error is None else "failed"
        con.execute(
            "UPDATE job_runs SET outcome = ?, finished_at = ?, summary = ?, error = ? WHERE run_id = ? AND outcome = 'running'",
            [outcome, _iso(t), summary, error, job.run_id],
        )
        if error is not None and stopped:
            status, run_at, finished = "queued", _iso(t + dt.timedelta(seconds=retry_after)), None
        elif error is not None and retry and job.attempts < job.max_attempts:
            status, run_at, finished = "queued", _iso(t + dt.timedelta(seconds=retry_after * job.attempts)), None
        else:
            status, run_at, finished = outcome, None, _iso(t)
        con.execute(
            "UPDATE jobs SET status = ?, run_at = coalesce(?, run_at), worker = NULL, lease_until = NULL,"
            " finished_at = ?, result = ?, error = ?, attempts = attempts - ? WHERE job_id = ? AND worker = ?",
            [status, run_at, finished, None if result is None else json.dumps(result, ensure_ascii=False, default=str),
             error, 1 if error is not None and stopped else 0, job.job_id, job.worker],
        )
        return status


# -- schedules ------------------------------------------------------------------------------------
def _trigger(spec: str):
    """APScheduler trigger for ``interval:SECONDS`` or ``cron:M H DOM MON DOW`` (Japan time)."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    kind, _, value = spec.partition(":")
    if kind == "interval":
        return IntervalTrigger(seconds=float(value), timezone=JST, start_date=dt.datetime(2000, 1, 1, tzinfo=JST))
    if kind == "cron":
        return CronTrigger.from_crontab(value.strip(), timezone=JST)
    raise ValueError(f"unknown trigger {spec!r} (interval:SECONDS or cron:M H DOM MON DOW)")


def next_fire(spec: str, after: dt.datetime) -> dt.datetime:
    """The first firing of ``spec`` strictly after ``after``."""
    trig = _trigger(spec)
    nxt = trig.get_next_fire_time(None, after)
    while nxt is not None and nxt <= after:
        nxt = trig.get_next_fire_time(nxt, nxt + dt.timedelta(microseconds=1))
    if nxt is None:
        raise ValueError(f"trigger {spec!r} never fires again")
    return nxt


def set_schedule(ops_path: str | Path, name: str, kind: str, trigger: str, args: dict[str, Any] | None = None,
                 *, enabled: bool = True, replace: bool = True) -> None:
    """Create (or with ``replace`` update) a recurring job; its first firing is the trigger's next time."""
    first = _iso(next_fire(trigger, now()))
    with connect(ops_path) as con, opsdb.transaction(con):
        exists = con.execute("SELECT 1 FROM job_schedules WHERE name = ?", [name]).fetchone()
        if exists and not replace:
            return
        con.execute("DELETE FROM job_schedules WHERE name = ?", [name])
        con.execute(
            "INSERT INTO job_schedules (name, kind, args, trigger, next_run_at, enabled) VALUES (?, ?, ?, ?, ?, ?)",
            [name, kind, json.dumps(args or {}, ensure_ascii=False), trigger, first, int(enabled)],
        )


def fire_due_schedules(con: sqlite3.Connection) -> list[int]:
    """Enqueue every due firing of every enabled schedule once; return the new or existing job ids."""
    t = now()
    ids: list[int] = []
    with opsdb.transaction(con):
        due = con.execute(
            "SELECT name, kind, args, trigger, next_run_at FROM job_schedules WHERE enabled = 1 AND next_run_at <= ?", [_iso(t)]
        ).fetchall()
        for row in due:
            ids.append(enqueue_on(con, row["kind"], json.loads(row["args"]), run_at=None,
                                dedupe_key=f"schedule:{row['name']}@{row['next_run_at']}", max_attempts=3, created_by="schedule"))
            # one firing per tick even after a long stop (no burst of missed runs)
            con.execute("UPDATE job_schedules SET next_run_at = ? WHERE name = ?",
                        [_iso(next_fire(row["trigger"], t)), row["name"]])
    return ids


# -- reading --------------------------------------------------------------------------------------
def history(ops_path: str | Path, limit: int = 200) -> list[dict[str, Any]]:
    """The latest attempts, newest first (for the ジョブ履歴 page), with Japanese outcome labels."""
    if not Path(ops_path).exists():
        return []
    with connect(ops_path) as con:
        rows = con.execute(
            "SELECT r.run_id, r.job_id, r.kind, r.worker, r.started_at, r.finished_at, r.outcome, r.summary, r.error,"
            " j.args, j.attempts FROM job_runs r JOIN jobs j USING (job_id) ORDER BY r.started_at DESC, r.run_id DESC LIMIT ?",
            [int(limit)],
        ).fetchall()
    return [{**dict(r), "args": json.loads(r["args"]), "outcome_label": OUTCOME_LABELS.get(r["outcome"], r["outcome"])} for r in rows]


def pending(ops_path: str | Path, limit: int = 200) -> list[dict[str, Any]]:
    """Queued and running jobs, soonest first."""
    if not Path(ops_path).exists():
        return []
    with connect(ops_path) as con:
        rows = con.execute(
            "SELECT job_id, kind, args, run_at, status, attempts, worker FROM jobs WHERE status IN ('queued', 'running')"
            " ORDER BY run_at, job_id LIMIT ?",
            [int(limit)],
        ).fetchall()
    return [{**dict(r), "args": json.loads(r["args"]), "status_label": STATUS_LABELS.get(r["status"], r["status"])} for r in rows]


def schedules(ops_path: str | Path) -> list[dict[str, Any]]:
    """Every recurring job with its next run."""
    if not Path(ops_path).exists():
        return []
    with connect(ops_path) as con:
        rows = con.execute("SELECT name, kind, args, trigger, next_run_at, enabled FROM job_schedules ORDER BY name").fetchall()
    return [{**dict(r), "args": json.loads(r["args"])} for r in rows]


def job(ops_path: str | Path, job_id: int) -> dict[str, Any] | None:
    """One job row (args and result decoded)."""
    with connect(ops_path) as con:
        row = con.execute("SELECT * FROM jobs WHERE job_id = ?", [int(job_id)]).fetchone()
    if row is None:
        return None
    d = dict(row)
    d["args"] = json.loads(d["args"])
    d["result"] = json.loads(d["result"]) if d["result"] else None
    return d
