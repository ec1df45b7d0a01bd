"""Stored jobs (crm_core.jobs): claimed once by concurrent workers, recovered after a crash, schedules fire once."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
import time
from contextlib import closing

from crm_core import jobs, opsdb
from tests.procs import ROOT


def test_enqueue_with_a_dedupe_key_queues_once(tmp_path):
    ops = tmp_path / "x.ops.sqlite"
    a = jobs.enqueue(ops, "inbox_import", {"name": "a.csv"}, dedupe_key="k1")
    b = jobs.enqueue(ops, "inbox_import", {"name": "a.csv"}, dedupe_key="k1")
    c = jobs.enqueue(ops, "inbox_import", {"name": "b.csv"})
    assert a == b != c
    assert [j["job_id"] for j in jobs.pending(ops)] == [a, c]


def test_claim_finish_and_history(tmp_path):
    ops = tmp_path / "x.ops.sqlite"
    later = jobs.enqueue(ops, "k", {"n": 2}, run_at=jobs.now() + dt.timedelta(hours=1))
    first = jobs.enqueue(ops, "k", {"n": 1})
    with closing(opsdb.connect(ops)) as con:
        job = jobs.claim(con, "w1")
        assert job is not None and job.job_id == first and job.args == {"n": 1} and job.attempts == 1
        assert jobs.claim(con, "w1") is None  # the other one is not due yet
        assert jobs.finish(con, job, result={"summary": "ok"}, summary="ok") == "done"
    (run,) = jobs.history(ops)
    assert run["job_id"] == first and run["outcome"] == "done" and run["outcome_label"] == "完了"
    assert run["started_at"] <= run["finished_at"] and run["summary"] == "ok"
    assert jobs.job(ops, first)["result"] == {"summary": "ok"}
    assert [j["job_id"] for j in jobs.pending(ops)] == [later]


def test_a_failed_attempt_is_retried_until_max_attempts(tmp_path):
    ops = tmp_path / "x.ops.sqlite"
    jid = jobs.enqueue(ops, "k", max_attempts=2)
    with closing(opsdb.connect(ops)) as con:
        job = jobs.claim(con, "w")
        assert jobs.finish(con, job, error="boom", retry=True, retry_after=0) == "queued"
        job = jobs.claim(con, "w")
        assert job.attempts == 2
        assert jobs.finish(con, job, error="boom again", retry=True, retry_after=0) == "failed"
        assert jobs.claim(con, "w") is None
    assert [r["outcome"] for r in jobs.history(ops)] == ["failed", "failed"]
    assert jobs.job(ops, jid)["error"] == "boom again"


def test_a_stopped_attempt_is_not_counted_even_the_last_one(tmp_path):
    # three restarts of the worker during one long import must not use up its attempts (review finding)
    ops = tmp_path / "x.ops.sqlite"
    jid = jobs.enqueue(ops, "k", max_attempts=1)
    with closing(opsdb.connect(ops)) as con:
        for _ in range(3):
            job = jobs.claim(con, "w")
            assert job is not None and job.attempts == 1
            assert jobs.finish(con, job, error="stopped", stopped=True, retry_after=0) == "queued"
        job = jobs.claim(con, "w")
        assert jobs.finish(con, job, result={}) == "done"
    assert [r["outcome"] for r in jobs.history(ops)] == ["done", "failed", "failed", "failed"]  # newest first
    assert jobs.job(ops, jid)["status"] == "done"


def test_a_dead_workers_job_is_recovered_after_its_lease(tmp_path):
    ops = tmp_path / "x.ops.sqlite"
    jid = jobs.enqueue(ops, "k")
    with closing(opsdb.connect(ops)) as con:
        dead = jobs.claim(con, "dead-worker", lease=0.2)
        assert jobs.claim(con, "w2", lease=0.2) is None  # leased
        time.sleep(0.3)
        again = jobs.claim(con, "w2", lease=30)
        assert again.job_id == jid and again.attempts == 2
        assert not jobs.heartbeat(con, dead)  # the dead worker no longer owns it
        jobs.finish(con, dead, summary="late")  # a late finish of the lost attempt changes nothing
        assert jobs.finish(con, again, summary="ok") == "done"
    outcomes = sorted(r["outcome"] for r in jobs.history(ops))
    assert outcomes == ["done", "lost"]


def test_schedules_fire_once_per_due_time(tmp_path):
    ops = tmp_path / "x.ops.sqlite"
    jobs.set_schedule(ops, "stats", "line_stats", "interval:1")
    with closing(opsdb.connect(ops)) as con:
        assert jobs.fire_due_schedules(con) == []
        time.sleep(1.1)
        ids = jobs.fire_due_schedules(con)
        assert len(ids) == 1
        assert jobs.fire_due_schedules(con) == []
    (sched,) = jobs.schedules(ops)
    assert sched["next_run_at"] > jobs._iso(jobs.now())


def test_cron_triggers_are_in_japan_time():
    after = dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC)  # 09:00 JST
    nxt = jobs.next_fire("cron:0 4 * * *", after)
    assert nxt.astimezone(jobs.JST).hour == 4 and nxt.astimezone(jobs.JST).day == 2


CLAIMER = textwrap.dedent("""
    import pathlib, sys, time
    from crm_core import jobs, opsdb
    con = opsdb.connect(sys.argv[1])
    gate = pathlib.Path(sys.argv[1]).parent  # start together: a loaded machine must not let one finish first
    (gate / (sys.argv[2] + ".ready")).touch()
    deadline = time.monotonic() + 60
    while len(list(gate.glob("*.ready"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    n = 0
    while True:
        job = jobs.claim(con, sys.argv[2])
        if job is None:
            break
        time.sleep(0.005)  # the job's work: a claimer never holds the queue between two claims
        jobs.finish(con, job, summary=sys.argv[2])
        n += 1
    print(n)
""")


def test_two_workers_claiming_at_once_run_every_job_exactly_once(tmp_path):
    ops = tmp_path / "x.ops.sqlite"
    with closing(opsdb.connect(ops)) as con, opsdb.transaction(con):
        for i in range(300):
            jobs.enqueue_on(con, "k", {"i": i})
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(ops), w], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for w in ("w1", "w2")]
    counts = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert sum(counts) == 300
    assert min(counts) > 0  # both took part
    runs = jobs.history(ops, limit=1000)
    assert len(runs) == 300 == len({r["job_id"] for r in runs})
    assert all(r["outcome"] == "done" for r in runs)
