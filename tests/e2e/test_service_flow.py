"""The console as one of several processes (issue 13), in a real browser.

* The console keeps answering page requests while a command-line import of a
  two-million-line file runs next to it; both succeed and the page shows the new
  data once the import has landed.
* A file dropped into the inbox is imported by the worker and appears on the
  ジョブ履歴 page.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.e2e.browser import Server, goto, shot, wait_idle
from tests.procs import ROOT, env, import_cmd, sample_files, write_orders


def _sidebar_orders(page) -> int:
    text = page.locator("[data-testid='stSidebar']").get_by_text(re.compile("注文 [0-9,]+件")).first.inner_text()
    return int(re.search(r"注文 ([0-9,]+)件", text).group(1).replace(",", ""))


@pytest.mark.slow
def test_console_answers_pages_while_a_two_million_line_import_runs(tmp_path, page):
    srv = Server(tmp_path)
    try:
        small = tmp_path / "small.csv"
        n_small = write_orders(small, 2_000, seed=5)
        first = subprocess.run(import_cmd(srv.db, small), cwd=ROOT, env=env(srv.db), capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        big = tmp_path / "big.csv"
        # long enough that the import transaction (the snapshot window) outlasts several page loads on a quiet machine
        n_big = write_orders(big, 2_000_000, seed=6, customers=400_000)

        goto(page, srv, "/")
        assert _sidebar_orders(page) == n_small
        t0 = time.monotonic()
        proc = subprocess.Popen(import_cmd(srv.db, big), cwd=ROOT, env=env(srv.db),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        renders, seen, from_snapshot = 0, set(), 0
        while proc.poll() is None:
            page.reload()
            wait_idle(page)
            seen.add(_sidebar_orders(page))  # a consistent state: before or after, never in between
            from_snapshot += page.get_by_text("取込を始める前の内容を表示しています").count() > 0
            renders += 1
        out, err = proc.communicate()
        took = time.monotonic() - t0
        assert proc.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["orders_added"] == n_big
        # the console kept answering (from the snapshot the import published) instead of waiting for it
        assert renders >= 5 and from_snapshot >= 3, (renders, from_snapshot, took)
        assert seen <= {n_small, n_small + n_big}
        page.reload()
        wait_idle(page)
        assert _sidebar_orders(page) == n_small + n_big  # the page refreshed once the import landed
        shot(page, "console_after_concurrent_import")
        print(f"2M-line import next to the console: {took:.1f} s, {renders} page renders meanwhile ({from_snapshot} from the snapshot)")
    finally:
        srv.stop()


def test_an_inbox_file_imported_by_the_worker_shows_on_the_job_history_page(tmp_path, page):
    srv = Server(tmp_path)
    inbox = tmp_path / "inbox"
    worker = subprocess.Popen([sys.executable, "-m", "crm_core", "worker", "--db", str(srv.db), "--inbox", str(inbox),
                               "--poll", "0.3"], cwd=ROOT, env=env(srv.db), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        files = sample_files(tmp_path / "sample", customers=150)
        inbox.mkdir(exist_ok=True)
        part = inbox / "shopify_orders.csv.part"
        shutil.copyfile(files["shopify_orders"], part)
        os.utime(part, (time.time() - 10, time.time() - 10))
        part.rename(inbox / "shopify_orders.csv")
        deadline = time.time() + 120
        while not (inbox / "done" / "shopify_orders.csv.report.json").exists():
            assert time.time() < deadline, "the worker did not import the inbox file"
            time.sleep(0.3)
        goto(page, srv, "/history")
        page.get_by_role("heading", name="🗂️ ジョブ履歴").wait_for()
        grid = page.locator("[data-testid='stDataFrame']").first
        grid.get_by_text("受信フォルダの取込").first.wait_for(state="attached")
        grid.get_by_text("shopify_orders.csv").first.wait_for(state="attached")
        grid.get_by_text("完了").first.wait_for(state="attached")
        wait_idle(page)
        shot(page, "job_history")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        srv.stop()


@pytest.mark.slow
def test_kill_9_of_the_console_during_its_write_blocks_nobody_and_loses_nothing(tmp_path, page):
    from crm_core.db import Store, store_is_busy

    # a fresh console loads the sample shop on its first page run: kill it in the middle of that write
    srv = Server(tmp_path, env={"CRM_NO_SAMPLE": "0"})
    try:
        page.goto(srv.url + "/")
        deadline = time.time() + 120
        while not store_is_busy(srv.db):
            assert time.time() < deadline, "the console never started writing"
            time.sleep(0.05)
        time.sleep(2.0)
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait()
    finally:
        srv.log.close()
    assert not store_is_busy(srv.db)
    with Store(srv.db, wait=5) as store:  # opens at once; every committed import is whole
        for import_id, lines in store.fetchall("SELECT import_id, lines FROM imports WHERE lines > 0"):
            assert store.scalar("SELECT count(*) FROM order_lines l JOIN orders o USING (source, order_id) "
                                "WHERE o.import_id = ?", [import_id]) <= lines
        orphans = store.scalar("SELECT count(*) FROM orders o WHERE NOT EXISTS "
                               "(SELECT 1 FROM imports i WHERE i.import_id = o.import_id)")
        assert orphans == 0
    small = tmp_path / "after.csv"
    n = write_orders(small, 500, seed=9)
    done = subprocess.run(import_cmd(srv.db, small, "--wait", "10"), cwd=ROOT, env=env(srv.db),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["orders_added"] == n
    # and a restarted console works on the same store
    again = Server(tmp_path)
    try:
        goto(page, again, "/")
        assert _sidebar_orders(page) >= n
    finally:
        again.stop()
