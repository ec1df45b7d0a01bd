"""A page run and a fragment's own run each give back the stores they took; a fragment drawn by its page run leaves
them to the page run (pages/ui.store_session, ui.fragment).  The console keeps a store open between runs only while
no other process waits for it: a writer that waits gets the turn within moments, a run never shares it with one."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from crm_core.db import WAIT_MESSAGE, WANT_FRESH, Store, someone_waits
from pages import ui

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
import sys, time
from crm_core.db import Store, StoreBusy
t = time.monotonic()
try:
    store = Store(sys.argv[1], wait=float(sys.argv[2]), on_wait=lambda: print("waiting", flush=True))
except StoreBusy:
    sys.exit(3)
print(f"in after {time.monotonic() - t:.3f}", flush=True)
store.execute("CREATE TABLE IF NOT EXISTS writer_was_here (x INTEGER)")
store.close()
"""


@pytest.fixture(autouse=True)
def _no_store_kept_from_another_test():
    ui.release_kept_stores()
    yield
    ui.release_kept_stores()


def _writer(path, wait: float) -> subprocess.Popen:
    """Another process (the worker, a command-line import) asking for the writers' turn, waiting up to ``wait`` s."""
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(wait)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _writer_result(proc: subprocess.Popen) -> tuple[bool, str]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 3), err[-2000:]
    return proc.returncode == 0, out


def _writer_can_start(path, wait: float = 0) -> bool:
    return _writer_result(_writer(path, wait))[0]


def _new_store(tmp_path) -> Path:
    path = tmp_path / "crm.duckdb"
    Store(path).close()
    return path


def test_a_session_gives_back_what_it_took_and_an_inner_one_leaves_it_to_the_outer(tmp_path):
    path = _new_store(tmp_path)
    with ui.store_session():
        outer = ui._run_store(str(path))
        outer.scalar("SELECT 1")
        with ui.store_session():  # a fragment drawn by the page run
            assert ui._run_store(str(path)) is outer
        assert outer.is_open  # the page goes on using it after the fragment
        assert outer.scalar("SELECT 1") == 1
        assert not _writer_can_start(path)  # never during a run
    # kept for the next run while nobody waits: the next run reads it without opening the file
    with ui.store_session():
        assert ui._run_store(str(path)) is outer
    assert outer.is_open
    t = time.monotonic()
    assert _writer_can_start(path, wait=10)  # the worker's turn as soon as it asks
    assert time.monotonic() - t < 5
    assert not outer.is_open

    with ui.store_session():  # a fragment's own run, outside any page run: a store of its own again
        own = ui._run_store(str(path))
        own.scalar("SELECT 1")
        assert own is not outer
    assert _writer_can_start(path, wait=10) and not own.is_open


def test_a_session_gives_its_stores_back_when_the_run_fails(tmp_path):
    path = _new_store(tmp_path)
    with pytest.raises(RuntimeError), ui.store_session():
        ui._run_store(str(path)).scalar("SELECT 1")
        raise RuntimeError("the page stopped")
    assert _writer_can_start(path, wait=10)
    with ui.store_session():  # and the next run is a session of its own again
        s = ui._run_store(str(path))
        s.scalar("SELECT 1")
    assert s.scalar("SELECT count(*) FROM writer_was_here") == 0  # it sees what the writer did


def test_a_writer_waiting_during_a_run_gets_the_turn_when_the_run_ends_and_says_nothing(tmp_path):
    """The run keeps the store to its end; then the store is given back at once (not kept for the next run), and a
    wait this short prints no 「待っています」 (a command-line import would otherwise say so on every command)."""
    path = _new_store(tmp_path)
    with ui.store_session():
        s = ui._run_store(str(path))
        writer = _writer(path, wait=20)
        time.sleep(1.5)  # the rest of the page run
        assert writer.poll() is None  # still waiting: the run holds the store
        s.scalar("SELECT 1")
        ended = time.monotonic()
    got_in, out = _writer_result(writer)
    assert got_in, out
    assert not s.is_open  # given back at the end of the run, not kept
    assert time.monotonic() - ended < 10
    assert "waiting" in out  # it waited 1.5 s: long enough to say so

    with ui.store_session():
        kept = ui._run_store(str(path))
        kept.scalar("SELECT 1")
    quick = _writer(path, wait=20)
    got_in, out = _writer_result(quick)
    assert got_in and "waiting" not in out, out  # a store only kept between runs is given back without a message
    waited = float(out.split("in after ")[1])
    assert waited < 1.0, out


def test_the_store_is_closed_after_the_idle_time_and_never_kept_with_zero(tmp_path, monkeypatch):
    path = _new_store(tmp_path)
    monkeypatch.setenv(ui.KEEP_OPEN_ENV, "0.3")
    with ui.store_session():
        s = ui._run_store(str(path))
        s.scalar("SELECT 1")
    assert s.is_open
    deadline = time.monotonic() + 10
    while s.is_open and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not s.is_open  # nobody asked: closed after its idle time (a DuckDB shell may open the file then)
    assert _writer_can_start(path)

    monkeypatch.setenv(ui.KEEP_OPEN_ENV, "0")  # as before: closed at the end of every run
    with ui.store_session():
        s = ui._run_store(str(path))
        s.scalar("SELECT 1")
    assert not s.is_open and _writer_can_start(path)


def test_concurrent_runs_share_the_kept_store_and_give_it_back_only_when_both_ended(tmp_path):
    path = _new_store(tmp_path)
    with ui.store_session():
        first = ui._run_store(str(path))
        first.scalar("SELECT 1")
    inside, release = threading.Event(), threading.Event()
    seen: list[Store] = []

    def other_session() -> None:  # another browser tab's run, on its own thread
        with ui.store_session():
            s = ui._run_store(str(path))
            seen.append(s)
            assert s.scalar("SELECT 2") == 2
            inside.set()
            release.wait(30)

    t = threading.Thread(target=other_session)
    t.start()
    assert inside.wait(30)
    with ui.store_session():
        mine = ui._run_store(str(path))
        assert mine is first and seen == [first]
        assert mine.scalar("SELECT 3") == 3
    writer = _writer(path, wait=20)
    time.sleep(1.0)
    assert writer.poll() is None and first.is_open  # the other tab's run still uses it
    release.set()
    t.join(30)
    assert _writer_result(writer)[0]
    assert not first.is_open


def test_the_command_line_says_nothing_about_waiting_for_a_store_the_console_only_keeps(tmp_path):
    path = _new_store(tmp_path)
    with ui.store_session():
        ui._run_store(str(path)).scalar("SELECT 1")
    done = subprocess.run([sys.executable, "-m", "crm_core", "templates", "--db", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert WAIT_MESSAGE not in done.stdout + done.stderr


def test_a_run_that_opened_meanwhile_never_replaces_the_kept_store(tmp_path):
    """Two runs that both found nothing kept open two stores: the first is kept, the second is closed at its end.
    (Replacing the kept entry lost the first store, still open: the worker and command-line imports waited for good.)"""
    path = _new_store(tmp_path)
    first = Store(path)
    ui._keep(str(path), first)
    second = Store(path)  # the other run, opened before the first was kept
    ui._keep(str(path), second)
    assert ui._put_back(first)  # kept, idle
    assert not ui._put_back(second)  # not kept: store_session closes it
    second.close()
    assert first.is_open
    assert _writer_can_start(path, wait=10)
    assert not first.is_open


def test_a_store_reached_through_a_symbolic_link_is_given_back_too(tmp_path):
    """The locks are those of the real file; so is the signal of a process that waits (one signal per store)."""
    real = _new_store(tmp_path)
    (tmp_path / "link").mkdir()
    link = tmp_path / "link" / "crm.duckdb"
    link.symlink_to(real)
    with ui.store_session():
        kept = ui._run_store(str(link))
        kept.scalar("SELECT 1")
    assert kept.is_open
    got_in, out = _writer_result(_writer(link, wait=10))
    assert got_in and float(out.split("in after ")[1]) < 2.0, out
    assert not kept.is_open


def test_a_run_starting_while_a_writer_waits_lets_it_go_first(tmp_path):
    """The kept store is given back to a writer that asks; a page run starting in that moment must not take the file
    before the writer (which polls every 50 ms) and make it wait for the whole run."""
    path = _new_store(tmp_path)
    for _ in range(3):
        with ui.store_session():
            ui._run_store(str(path)).scalar("SELECT 1")  # kept, idle
        writer = _writer(path, wait=30)
        deadline = time.monotonic() + 30
        while not someone_waits(path) and time.monotonic() < deadline:
            time.sleep(0.002)
        with ui.store_session():  # a click in that moment
            s = ui._run_store(str(path))
            assert s.scalar("SELECT count(*) FROM writer_was_here") == 0  # it sees what the writer did
            time.sleep(1.5)  # the rest of the page run
            assert writer.poll() == 0  # the writer was in and out before
        got_in, out = _writer_result(writer)
        assert got_in and "waiting" not in out, out
        time.sleep(WANT_FRESH + 0.1)  # the writer's signal goes stale
