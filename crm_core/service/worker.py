"""The background worker: ``python -m crm_core worker``.

Each tick it queues the inbox's new files and the due firings of recurring
jobs, then claims one due job (:func:`crm_core.jobs.claim`, exactly one worker
gets it) and runs the function registered for its kind
(:data:`crm_core.service.kinds.KINDS`), renewing the job's lease from a
second thread while it runs.  Any number of workers may run against one
store (several machines too, on a shared disk); a killed worker's job is run
again by whichever worker claims after the lease runs out.

It opens the DuckDB store only inside a job (``ctx.store()``), taking its turn
with the console and the command line.
"""

from __future__ import annotations

import logging
import signal
import threading
import traceback
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

from crm_core import jobs, opsdb
from crm_core.errors import InputError
from crm_core.service import inbox as inbox_mod
from crm_core.service.context import JobContext
from crm_core.service.kinds import KINDS

log = logging.getLogger("crm_core.worker")

STOPPED = "ワーカーが停止したため中断しました。"


class Worker:
    def __init__(self, db_path: str | Path, *, inbox: Path | None = None, poll: float = 2.0,
                 settle: float = inbox_mod.SETTLE_SECONDS, lease: float | None = None, wait: float | None = None) -> None:
        self.db_path = str(db_path)
        self.ops_path = opsdb.ops_path(db_path)
        self.inbox = inbox or inbox_mod.default_inbox(db_path)
        self.poll = poll
        self.settle = settle
        self.lease = jobs.lease_seconds() if lease is None else lease
        self.wait = wait
        self.name = jobs.worker_name()
        self.stop = threading.Event()

    def tick(self) -> jobs.Job | None:
        """Queue new work, then claim and run at most one job; return it (None when idle)."""
        with closing(opsdb.connect(self.ops_path)) as con:
            inbox_mod.scan(con, self.inbox, self.settle)
            jobs.fire_due_schedules(con)
            job = jobs.claim(con, self.name, kinds=list(KINDS), lease=self.lease)
        if job is not None:
            self.run(job)
        return job

    def run(self, job: jobs.Job) -> str:
        kind = KINDS[job.kind]
        ctx = JobContext(job, self.db_path, self.ops_path, self.inbox, self.wait, stopping=self.stop)
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job, done), daemon=True)
        beat.start()
        log.info("job %s (%s) attempt %s started", job.job_id, job.kind, job.attempts)
        error: str | None = None
        retry = False
        result: dict[str, Any] | None = None
        try:
            result = kind.run(ctx) or {}
        except InputError as exc:
            error = exc.message
        except KeyboardInterrupt:
            # stopped (Ctrl-C / SIGTERM): the job runs again at once, the attempt not counted
            self._finish(job, done, beat, error=STOPPED, stopped=True, retry_after=0)
            raise
        except Exception as exc:  # noqa: BLE001 - recorded in the history, the worker goes on
            if self.stop.is_set():
                # stopped while DuckDB ran a statement: DuckDB turns the KeyboardInterrupt into its own
                # RuntimeError("Query interrupted"); still a stop, not a failure of the job
                self._finish(job, done, beat, error=STOPPED, stopped=True, retry_after=0)
                raise KeyboardInterrupt from exc
            log.error("job %s failed\n%s", job.job_id, "".join(traceback.format_tb(exc.__traceback__)))
            error = f"予期しないエラー（{type(exc).__name__}）"
            retry = kind.retry
        status = self._finish(job, done, beat, result=result, error=error, retry=retry)
        log.info("job %s (%s) -> %s", job.job_id, job.kind, status)
        return status

    def _finish(self, job: jobs.Job, done: threading.Event, beat: threading.Thread, **kw: Any) -> str:
        done.set()
        beat.join()
        summary = (kw.get("result") or {}).get("summary")
        with closing(opsdb.connect(self.ops_path)) as con:
            return jobs.finish(con, job, summary=summary, **kw)

    def _heartbeat(self, job: jobs.Job, done: threading.Event) -> None:
        with closing(opsdb.connect(self.ops_path)) as con:
            while not done.wait(self.lease / 3):
                if not jobs.heartbeat(con, job, lease=self.lease):
                    log.warning("job %s was taken over by another worker", job.job_id)
                    return

    def run_forever(self, *, once: bool = False) -> None:
        """Work until :attr:`stop` is set (or, with ``once``, until nothing is due)."""
        inbox_mod.ensure(self.inbox)
        opsdb.connect(self.ops_path).close()
        log.info("worker %s: store %s, inbox %s", self.name, self.db_path, self.inbox)
        while not self.stop.is_set():
            if self.tick() is not None:
                continue
            if once:
                return
            self.stop.wait(self.poll)


def main(db_path: str | Path, *, inbox: Path | None = None, poll: float = 2.0, once: bool = False,
         wait: float | None = None) -> int:
    """``python -m crm_core worker``: run until Ctrl-C or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    worker = Worker(db_path, inbox=inbox, poll=poll, wait=wait)

    def interrupt(*_: Any) -> None:
        # the event first: whatever turns the KeyboardInterrupt into another error (DuckDB does) or
        # swallows it, the worker still stops once the statement returns
        worker.stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # Ctrl-C in a terminal (ignored when started with &)
        signal.signal(signal.SIGINT, interrupt)
    with suppress(KeyboardInterrupt):  # Ctrl-C / SIGTERM (interrupt above)
        worker.run_forever(once=once)
    log.info("worker stopped")
    return 0
