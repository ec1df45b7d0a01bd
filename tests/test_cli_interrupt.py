"""Ctrl-C on the command line (and on a worker in a terminal): a clean stop, a Japanese message, nothing half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from crm_core.db import store_is_busy
from tests.procs import ROOT, counts, env, like_a_terminal, sample_files, stop_with, wait_until, write_shopify


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return sample_files(tmp_path_factory.mktemp("sample"))


@pytest.mark.slow
def test_ctrl_c_during_an_import_stops_with_a_message_and_imports_nothing(tmp_path, sample):
    # DuckDB turns Ctrl-C during a statement into RuntimeError("Query interrupted"): the command line printed a
    # traceback and exit status 1
    db = tmp_path / "crm.duckdb"
    first = subprocess.run([sys.executable, "-m", "crm_core", "import", str(sample["shopify_orders"]), "--db", str(db)],
                           cwd=ROOT, env=env(db), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    before = counts(db)
    write_shopify(tmp_path / "big.csv", sample["shopify_orders"], 1000, tag="big")
    proc = subprocess.Popen([sys.executable, "-m", "crm_core", "import", str(tmp_path / "big.csv"), "--db", str(db)],
                            cwd=ROOT, env=env(db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=like_a_terminal)
    wait_until(lambda: store_is_busy(db), timeout=60)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "中断しました" in err and "Traceback" not in err, err
    assert not store_is_busy(db)
    assert counts(db) == before  # the import's transaction was rolled back


@pytest.mark.slow
def test_ctrl_c_stops_a_worker_in_a_terminal_and_its_import_runs_again(tmp_path, sample):
    db, inbox = tmp_path / "crm.duckdb", tmp_path / "inbox"
    inbox.mkdir()
    write_shopify(tmp_path / "big.csv", sample["shopify_orders"], 1000, tag="big")
    os.utime(tmp_path / "big.csv", (time.time() - 10, time.time() - 10))  # settled already
    (tmp_path / "big.csv").rename(inbox / "big.csv")
    proc = subprocess.Popen([sys.executable, "-m", "crm_core", "worker", "--db", str(db), "--inbox", str(inbox),
                             "--poll", "0.2"], cwd=ROOT, env=env(db),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=like_a_terminal)
    wait_until(lambda: (inbox / "processing" / "big.csv").exists() and store_is_busy(db), timeout=120)
    time.sleep(0.3)
    out = stop_with(proc, signal.SIGINT)
    assert proc.returncode == 0 and "worker stopped" in out and "Traceback" not in out, out
    from crm_core import jobs, opsdb

    (run,) = [r for r in jobs.history(opsdb.ops_path(db)) if r["kind"] == "inbox_import"]
    assert run["error"] == "ワーカーが停止したため中断しました。", run
