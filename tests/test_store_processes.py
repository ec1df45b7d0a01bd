"""Many processes, one store (issue 13): writers take turns, a waiting command says so, kill -9 blocks nobody."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from crm_core.db import EXIT_BUSY, WAIT_MESSAGE, Store, StoreBusy, store_is_busy
from tests.procs import ROOT, Holder, counts, env, import_cmd, start_import, write_orders


def _stderr_until(proc: subprocess.Popen, text: str, timeout: float) -> list[str]:
    """The lines ``proc`` writes on stderr up to the first holding ``text`` (all of them if it ends or ``timeout`` passes)."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if text in line:
                break
        found.set()

    threading.Thread(target=read, daemon=True).start()
    found.wait(timeout)
    return list(lines)


def test_an_import_waits_for_another_writer_says_so_and_then_lands(tmp_path):
    db = tmp_path / "crm.duckdb"
    csv = tmp_path / "orders.csv"
    orders = write_orders(csv, 2_000)
    holder = Holder(db)
    proc = start_import(db, csv)
    # it says so while the other writer still holds the store (a fixed sleep assumed the process reached the store
    # within 3 s; on a loaded machine starting Python and the libraries alone takes 2-3 s)
    said = _stderr_until(proc, WAIT_MESSAGE, timeout=120)
    assert said and WAIT_MESSAGE in said[-1], "".join(said)
    assert proc.poll() is None, proc.communicate()  # still waiting, not failed
    holder.release()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["orders_added"] == orders
    assert counts(db)[0] == orders


def test_the_wait_limit_runs_out_with_exit_status_75_and_changes_nothing(tmp_path):
    db = tmp_path / "crm.duckdb"
    csv = tmp_path / "orders.csv"
    write_orders(csv, 500)
    holder = Holder(db)
    try:
        t0 = time.monotonic()
        done = subprocess.run(import_cmd(db, csv, "--wait", "1"), cwd=ROOT, env=env(db),
                              capture_output=True, text=True, timeout=120)
        waited = time.monotonic() - t0
    finally:
        holder.release()
    assert done.returncode == EXIT_BUSY == 75
    assert WAIT_MESSAGE in done.stderr
    assert "1秒待っても始められませんでした" in done.stderr
    assert "Traceback" not in done.stderr
    assert waited < 30
    assert counts(db) == (0, 0, 0)


def test_two_imports_at_once_both_land(tmp_path):
    db = tmp_path / "crm.duckdb"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    # big enough that the second waits longer than QUIET_WAIT (shorter waits print no message)
    na = write_orders(a, 60_000, seed=1)
    nb = write_orders(b, 60_000, seed=2)
    procs = [start_import(db, a), start_import(db, b)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, results):
        assert p.returncode == 0, err
    assert sum(WAIT_MESSAGE in err for _out, err in results) >= 1  # one took its turn after the other
    assert counts(db) == (na + nb, 120_000, 2)


def test_kill_9_of_an_import_during_its_write_loses_nothing_committed_and_blocks_nobody(tmp_path):
    db = tmp_path / "crm.duckdb"
    first, big, last = tmp_path / "first.csv", tmp_path / "big.csv", tmp_path / "last.csv"
    n_first = write_orders(first, 5_000, seed=1)
    write_orders(big, 1_000_000, seed=2)
    n_last = write_orders(last, 5_000, seed=3)
    assert subprocess.run(import_cmd(db, first), cwd=ROOT, env=env(db), capture_output=True, timeout=120).returncode == 0
    before = counts(db)
    proc = start_import(db, big)
    # kill it mid-write: as soon as it says it is writing the orders (its transaction is open; the write of a
    # million lines and the customers' rebuild take seconds, a fixed sleep no longer lands inside it)
    for line in proc.stderr:
        if "取り込んでいます（注文データ）" in line:
            break
    assert store_is_busy(db) and proc.poll() is None, "the import finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # nothing half-written: the store is exactly as before the killed import, and nobody is blocked
    assert not store_is_busy(db)
    t0 = time.monotonic()
    assert counts(db) == before
    assert time.monotonic() - t0 < 10
    done = subprocess.run(import_cmd(db, last, "--wait", "5"), cwd=ROOT, env=env(db), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert counts(db) == (n_first + n_last, 10_000, 2)


def test_stores_of_one_process_share_the_turn(tmp_path):
    db = tmp_path / "crm.duckdb"
    a = Store(db)
    b = Store(db, wait=0)  # same process: joins, does not wait for itself
    assert b.scalar("SELECT 42") == 42
    a.close()
    assert not store_is_busy(db)
    b.close()
    holder = Holder(db)
    try:
        assert store_is_busy(db)
        with pytest.raises(Exception) as caught:
            Store(db, wait=0.2)
        assert "待っても始められませんでした" in str(caught.value)
    finally:
        holder.release()
    with Store(db, wait=0) as c:
        assert c.scalar("SELECT 1") == 1


def test_a_writer_waits_for_a_reader_of_the_console_and_is_never_told_another_program_holds_the_file(tmp_path):
    # CI found it: a command that only reads (here the worker's start-up check for a refresh a killed import left)
    # opens the file read-only, which DuckDB makes exclusive of any writer; the console, opening the store at
    # that moment, said "another program (PID …) holds the file" instead of waiting a moment for its turn
    db = tmp_path / "crm.duckdb"
    with Store(db) as s:
        s.execute("SELECT 1")
    reader = Holder(db, read=True)
    late = threading.Timer(1.0, reader.release)
    try:
        with pytest.raises(StoreBusy):  # the console's quick try: busy (so it shows the snapshot or waits), not a failure
            Store(db, wait=0).cursor()
        said: list[str] = []
        late.start()
        t0 = time.monotonic()
        with Store(db, wait=60, on_wait=lambda: said.append("waiting")) as w:
            assert w.scalar("SELECT 1") == 1
        assert said == ["waiting"]
        assert time.monotonic() - t0 >= 0.5
        late.join()
    finally:
        late.cancel()
        if reader.proc.poll() is None and not late.is_alive():
            reader.proc.kill()
    # and a reader waits for a writer of the console the same way
    holder = Holder(db)
    try:
        with pytest.raises(StoreBusy):
            Store(db, read_only=True, wait=0.3).cursor()
    finally:
        holder.release()
    # readers share the file
    first, second = Holder(db, read=True), Holder(db, read=True)
    first.release()
    second.release()


def test_a_long_writer_publishes_a_snapshot_the_console_reads_while_it_writes(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from crm_core.db import snapshot_path

    db = tmp_path / "crm.duckdb"
    csv = tmp_path / "orders.csv"
    orders = write_orders(csv, 3_000)
    assert subprocess.run(import_cmd(db, csv), cwd=ROOT, env=env(db), capture_output=True, timeout=120).returncode == 0
    snapshot_path(db).write_bytes(b"stale")  # left by a killed writer: the next writer clears it
    with Store(db):
        assert not snapshot_path(db).exists()

    holder = Holder(db, snapshot=True)  # stands for an import in its merge
    try:
        assert snapshot_path(db).exists()
        with Store(snapshot_path(db), read_only=True, wait=1) as snap:
            assert snap.table_count("orders") == orders
            with pytest.raises(Exception, match="取込中"):  # the snapshot refuses writes, in Japanese
                snap.execute("DELETE FROM orders")
        monkeypatch.setenv("CRM_DB", str(db))
        monkeypatch.setenv("CRM_NO_SAMPLE", "1")
        t0 = time.monotonic()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.run()
        assert time.monotonic() - t0 < 30  # answered without waiting for the writer
        assert not at.exception
        assert any("取込を始める前の内容を表示しています" in i.value for i in at.info)
        assert any(f"注文 {orders:,}件" in c.value for c in at.sidebar.caption)
    finally:
        holder.release()
    assert not snapshot_path(db).exists()  # removed when the writer closed
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not any("取込を始める前" in i.value for i in at.info)


def test_a_page_run_that_starts_before_the_snapshot_is_published_reads_it_once_it_is(tmp_path, monkeypatch):
    """CI found it: a page run that met an import between taking its turn and publishing its snapshot (checkpoint and
    copy) waited for the whole import instead of reading the snapshot a moment later."""
    from streamlit.testing.v1 import AppTest

    from crm_core.db import snapshot_path

    db = tmp_path / "crm.duckdb"
    csv = tmp_path / "orders.csv"
    orders = write_orders(csv, 3_000)
    assert subprocess.run(import_cmd(db, csv), cwd=ROOT, env=env(db), capture_output=True, timeout=120).returncode == 0
    ready = tmp_path / "ready.duckdb"
    shutil.copyfile(db, ready)  # the copy the writer is about to publish
    monkeypatch.setenv("CRM_DB", str(db))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    monkeypatch.setenv("CRM_WAIT", "15")  # the console's limit: waiting for the whole writer fails the page after 15 s
    holder = Holder(db)  # an import that has taken its turn and not yet published its snapshot
    released = threading.Event()
    try:
        publish = threading.Timer(2.0, lambda: os.replace(ready, snapshot_path(db)))
        publish.start()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.run()  # starts while there is no snapshot yet
        publish.join()
        answered_while_held = not released.is_set()
        assert not at.exception
        assert any("取込を始める前の内容を表示しています" in i.value for i in at.info)
        assert any(f"注文 {orders:,}件" in c.value for c in at.sidebar.caption)
        assert answered_while_held
    finally:
        released.set()
        holder.release()
        snapshot_path(db).unlink(missing_ok=True)


def test_the_console_leaves_a_refresh_another_process_is_doing_to_that_process(tmp_path, monkeypatch):
    """The worker committed an import and is refreshing (its snapshot says the refresh is due): the console shows the
    data read-only as usual instead of trying to finish the refresh itself and stopping with an error."""
    from streamlit.testing.v1 import AppTest

    from crm_core.db import REFRESH_DUE

    db = tmp_path / "crm.duckdb"
    csv = tmp_path / "orders.csv"
    orders = write_orders(csv, 3_000)
    assert subprocess.run(import_cmd(db, csv), cwd=ROOT, env=env(db), capture_output=True, timeout=120).returncode == 0
    with Store(db) as s:
        s.set_setting(REFRESH_DUE, True)
    holder = Holder(db, snapshot=True)  # stands for the worker in its refresh
    try:
        monkeypatch.setenv("CRM_DB", str(db))
        monkeypatch.setenv("CRM_NO_SAMPLE", "1")
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        at.run()
        assert not at.exception
        assert not at.error, [e.value for e in at.error]
        assert any(f"注文 {orders:,}件" in c.value for c in at.sidebar.caption)
    finally:
        holder.release()
