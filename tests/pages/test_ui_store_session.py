"""A page run and a fragment's own run each close the stores they opened; a fragment drawn by its page run leaves
them to the page run (pages/ui.store_session, ui.fragment)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crm_core.db import Store
from pages import ui

ROOT = Path(__file__).resolve().parents[2]


def _writer_can_start(path) -> bool:
    """Whether another process (the worker, a command-line import) gets the writers' turn right now."""
    code = ("import sys\nfrom crm_core.db import Store, StoreBusy\n"
            "try:\n    Store(sys.argv[1], wait=0).close()\nexcept StoreBusy:\n    sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 3), done.stderr[-2000:]
    return done.returncode == 0


def test_a_session_closes_what_it_opened_and_an_inner_one_leaves_it_to_the_outer(tmp_path):
    path = tmp_path / "crm.duckdb"
    Store(path).close()
    with ui.store_session():
        outer = ui._run_store(str(path))
        outer.scalar("SELECT 1")
        with ui.store_session():  # a fragment drawn by the page run
            assert ui._run_store(str(path)) is outer
        assert outer.is_open  # the page goes on using it after the fragment
        assert outer.scalar("SELECT 1") == 1
        assert not _writer_can_start(path)
    assert not outer.is_open
    assert _writer_can_start(path)  # the worker's turn once the run ended

    with ui.store_session():  # a fragment's own run, outside any page run
        own = ui._run_store(str(path))
        own.scalar("SELECT 1")
        assert own is not outer
    assert not own.is_open and _writer_can_start(path)


def test_a_session_closes_its_stores_when_the_run_fails(tmp_path):
    path = tmp_path / "crm.duckdb"
    Store(path).close()
    with pytest.raises(RuntimeError), ui.store_session():
        ui._run_store(str(path)).scalar("SELECT 1")
        raise RuntimeError("the page stopped")
    assert _writer_can_start(path)
    with ui.store_session():  # and the next run is a session of its own again
        s = ui._run_store(str(path))
        s.scalar("SELECT 1")
    assert not s.is_open
