"""Failures the machine causes, met for real: a store locked by another process, a read-only
store, a full disk, a too-deep rule.  Each must end in clear Japanese, never a traceback.

The lock is held by a real second process.  The read-only store and the full disk need a
mount (a read-only bind mount, a tiny tmpfs); as root they are made for real, otherwise the
read-only store is made with file permissions and the full-disk test is skipped.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from crm_core.db import Store
from crm_core.errors import StorageError
from crm_core.failures import translate
from tests import fixtures as fx
from tests.sample_store import sample_db

pytestmark = pytest.mark.slow  # the sample shop, subprocesses and AppTest pages

ROOT = Path(__file__).resolve().parents[1]
RULE = {"all": [{"field": "recency_days", "op": ">=", "value": 90}, {"field": "orders", "op": "gte", "value": 2}]}


def cli(*args: str, db: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crm_core", *args, "--db", str(db)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={"PATH": "/usr/bin:/bin", "CRM_NO_SAMPLE": "1"})


def _rule(tmp_path: Path) -> Path:
    path = tmp_path / "rule.json"
    path.write_text(json.dumps(RULE, ensure_ascii=False), encoding="utf-8")
    return path


# -- a store locked by another process ---------------------------------------------------------------------
@pytest.fixture
def holder(tmp_path):
    """A program outside the console (a DuckDB shell, an older version) that opens the store and keeps it open.

    The console's own processes take turns through the writer lock (see tests/test_store_processes.py);
    a program that does not take it holds the file until it ends, and the console says who.
    """
    db = tmp_path / "locked.duckdb"
    Store(db).close()
    code = textwrap.dedent(f"""
        import sys, time
        import duckdb
        s = duckdb.connect({str(db)!r})
        print("ready", flush=True)
        sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield db, proc
    proc.stdin.close()
    proc.wait(timeout=30)


def test_cli_on_a_store_another_process_holds_says_so(holder, tmp_path):
    db, proc = holder
    res = cli("segment", "count", "--rule", str(_rule(tmp_path)), db=db)
    assert res.returncode == 3
    assert "Traceback" not in res.stderr
    assert "別のプログラム" in res.stderr and f"PID {proc.pid}" in res.stderr and "使用中" in res.stderr
    assert json.loads(res.stdout)["errors"]
    res = cli("import", str(fx.rakuten_current(tmp_path / "r.csv")), db=db)
    assert res.returncode == 3 and "使用中" in res.stderr


def test_opening_a_held_store_raises_storage_error(holder):
    db, proc = holder
    with pytest.raises(StorageError) as err:
        Store(db)
    assert err.value.kind == "locked"
    assert f"PID {proc.pid}" in err.value.message


# -- a read-only store --------------------------------------------------------------------------------------
@pytest.fixture
def read_only_store(tmp_path):
    """The sample shop in a folder that cannot be written (a read-only bind mount as root)."""
    src = tmp_path / "rw"
    src.mkdir()
    sample_db(src / "crm.duckdb")
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = False
    if os.geteuid() == 0:
        bind = subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True)
        if bind.returncode != 0:
            pytest.skip("as root but cannot bind-mount: " + bind.stderr.decode(errors="replace"))
        mounted = True
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], capture_output=True)
        if remount.returncode != 0:
            subprocess.run(["umount", str(ro)])
            pytest.skip("cannot remount read-only: " + remount.stderr.decode(errors="replace"))
    else:
        ro.rmdir()
        src.rename(ro)
        (ro / "crm.duckdb").chmod(0o444)
        ro.chmod(0o555)
    try:
        yield ro / "crm.duckdb"
    finally:
        if mounted and subprocess.run(["umount", str(ro)]).returncode != 0:
            subprocess.run(["umount", "-l", str(ro)], check=True)
        else:
            ro.chmod(0o755)


def test_cli_reads_a_read_only_store(read_only_store, tmp_path):
    before = (read_only_store).read_bytes()
    res = cli("segment", "count", "--rule", str(_rule(tmp_path)), db=read_only_store)
    assert res.returncode == 0, res.stderr
    count = json.loads(res.stdout)["count"]
    assert count > 0
    out = tmp_path / "seg.csv"
    res = cli("segment", "export", "--rule", str(_rule(tmp_path)), "--out", str(out), db=read_only_store)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["rows"] == count
    res = cli("results", "--campaign", "1", "--json", db=read_only_store)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["groups"]
    assert read_only_store.read_bytes() == before


def test_writing_to_a_read_only_store_is_explained(read_only_store, tmp_path):
    res = cli("import", str(fx.rakuten_current(tmp_path / "r.csv")), db=read_only_store)
    assert res.returncode == 3
    assert "読み取り専用" in res.stderr and "Traceback" not in res.stderr
    store = Store(read_only_store)  # opened for reading, since the file cannot be written
    assert store.read_only
    assert store.scalar("SELECT count(*) FROM orders") > 0
    with pytest.raises(StorageError) as err:
        store.set_setting("identity_key", "phone")
    assert err.value.kind == "read_only"
    store.close()


# -- a full disk ---------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_disk(tmp_path):
    """A 600 KiB tmpfs (root only)."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a real full disk needs a tmpfs mount (root)")
    where = tmp_path / "tiny"
    where.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(where)], capture_output=True)
    if res.returncode != 0:
        pytest.skip("cannot mount tmpfs: " + res.stderr.decode(errors="replace"))
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)]).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)


def test_import_on_a_full_disk_says_so_and_keeps_the_store(tiny_disk, tmp_path):
    db = tiny_disk / "crm.duckdb"
    first = cli("import", str(fx.rakuten_current(tmp_path / "r.csv")), db=db)
    assert first.returncode == 0, first.stderr
    from crm_core.sample.generate import generate_sample

    paths = generate_sample(tmp_path / "sample", customers=600)
    res = cli("import", str(paths["rakuten_orders"]), db=db)
    assert res.returncode == 3, res.stderr
    assert "ディスクの空き容量が足りない" in res.stderr
    assert "rollback" not in res.stderr.lower() and "Traceback" not in res.stderr
    store = Store(db)
    assert store.scalar("SELECT count(*) FROM orders") == 3  # the first import, nothing of the failed one
    store.close()


def test_translate_finds_the_cause_behind_a_failed_rollback():
    # What DuckDB raises when a commit cannot be written, then the rollback that follows.
    try:
        try:
            raise duckdb.TransactionException('Failed to commit: Could not write file "x.duckdb": No space left on device')
        except duckdb.Error:
            raise duckdb.TransactionException("cannot rollback - no transaction is active") from None
    except duckdb.Error as exc:
        problem = translate(exc, "x.duckdb")
    assert problem is not None and problem.kind == "disk_full"
    assert translate(OSError(errno.ENOSPC, "No space left on device")).kind == "disk_full"
    assert translate(OSError(errno.EROFS, "Read-only file system")).kind == "read_only"
    assert translate(ValueError("something else")) is None


def test_console_page_on_a_held_store_explains_instead_of_failing(holder, monkeypatch):
    from streamlit.testing.v1 import AppTest

    db, proc = holder
    monkeypatch.setenv("CRM_DB", str(db))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    shown = "\n".join(e.value for e in at.error)
    assert "使用中" in shown and f"PID {proc.pid}" in shown


def test_translate_a_real_temp_space_exhaustion(tmp_path):
    """Without root: DuckDB's own limit on its temp folder gives the same failure as a full disk."""
    con = duckdb.connect(str(tmp_path / "x.duckdb"), config={
        "memory_limit": "20MB", "max_temp_directory_size": "1MB", "temp_directory": str(tmp_path / "tmp"), "threads": 1})
    with pytest.raises(duckdb.Error) as err:
        con.execute("CREATE TABLE t AS SELECT i, md5(CAST(i AS VARCHAR)) AS s FROM range(3000000) r(i) ORDER BY s")
    con.close()
    problem = translate(err.value, tmp_path / "x.duckdb")
    assert problem is not None and problem.kind == "disk_full"
    assert "ディスクの空き容量が足りない" in problem.message


PAGES = ("pages/audience/segments.py", "pages/results/results.py", "pages/analysis/analytics.py",
         "pages/messages/messages.py", "pages/plan/calendar.py", "pages/data/import_data.py",
         "pages/settings/settings.py", "pages/settings/model_settings.py", "pages/automation/scenarios.py",
         "pages/send/live_send.py", "pages/jobs/history.py", "pages/shop/shop_info.py")


def test_every_page_opens_on_a_read_only_store(read_only_store, monkeypatch):
    from streamlit.testing.v1 import AppTest

    before = read_only_store.read_bytes()
    monkeypatch.setenv("CRM_DB", str(read_only_store))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert any("読み取り専用" in w.value for w in at.warning)
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        assert not any("予期しないエラー" in e.value for e in at.error), page
        if page in ("pages/automation/scenarios.py", "pages/results/results.py"):  # their records live beside the store
            assert any("読み取り専用" in m.value for m in [*at.error, *at.info]), page
    assert read_only_store.read_bytes() == before
