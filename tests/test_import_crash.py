"""Issue 11, item 24: an import is whole, including its refresh (real processes, SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from crm_core.db import Store
from crm_core.sample.generate import generate_sample

ROOT = Path(__file__).resolve().parents[1]


def _start(args: list[str], db: Path, tmpdir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "crm_core", *args, "--db", str(db)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": "/usr/bin:/bin", "CRM_NO_SAMPLE": "1", "TMPDIR": str(tmpdir)},
    )


def _kill_when(proc: subprocess.Popen, marker: str, timeout: float = 240) -> list[str]:
    """Read the progress lines on stderr; SIGKILL the process as soon as ``marker`` appears."""
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line.strip())
        if marker in line:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return seen
    proc.kill()
    raise AssertionError(f"never saw {marker!r}: {seen}")


def test_killed_import_and_refresh_are_finished_on_the_next_command(tmp_path):
    files = generate_sample(tmp_path / "exports", customers=3000)
    db = tmp_path / "crm.duckdb"
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()

    # 1. killed while writing: the transcoded cp932 copy is left in the temp folder, the store is unchanged
    proc = _start(["import", str(files["rakuten_orders"])], db, tmpdir)
    _kill_when(proc, "を取り込んでいます")
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p for p in tmpdir.iterdir() if p.name.startswith("crm-")]
    assert leftovers, "the killed import should have left its working folder (else this test proves nothing)"

    # 2. killed during the refresh after the import committed
    proc = _start(["import", str(files["rakuten_orders"])], db, tmpdir)
    seen = _kill_when(proc, "顧客分析")
    assert proc.returncode == -signal.SIGKILL, seen
    store = Store(db)
    orders = store.scalar("SELECT count(*) FROM orders")
    assert orders > 1000  # the import itself committed
    assert store.get_setting("refresh_due") is True
    buyers = store.scalar("SELECT count(DISTINCT customer_id) FROM orders WHERE NOT cancelled")
    store.close()

    # 3. the next command finishes the refresh first and sweeps the dead process's temp files
    out = tmp_path / "customers.csv"
    res = subprocess.run(
        [sys.executable, "-m", "crm_core", "customers", "--out", str(out), "--db", str(db)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "CRM_NO_SAMPLE": "1", "TMPDIR": str(tmpdir)},
    )
    assert res.returncode == 0, res.stderr
    assert "中断" in res.stderr  # the marketer is told what is being finished
    assert len(out.read_text(encoding="utf-8-sig").splitlines()) - 1 == buyers
    store = Store(db)
    assert store.get_setting("refresh_due") in (None, False)
    assert store.scalar("SELECT count(*) FROM customer_model") == buyers
    assert store.scalar("SELECT count(*) FROM customer_recommendations") > 0
    store.close()
    assert not [p for p in tmpdir.iterdir() if p.name.startswith("crm-")]
