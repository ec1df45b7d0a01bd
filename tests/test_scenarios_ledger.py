"""Scenarios and live campaigns share the ledger writer and one campaign-id allocator (issue 15, items 1 and 6)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

from crm_core import opsdb
from crm_core.db import Store
from crm_core.results import live
from crm_core.scenarios import definitions as D
from crm_core.scenarios import engine
from tests.procs import ROOT
from tests.sample_store import sample_db
from tests.test_scenarios import at, busy_day

ALLOCATE = textwrap.dedent("""
    import sys, time
    from crm_core import opsdb
    from crm_core.messaging import ledger as L
    path, kind, n, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    con = opsdb.connect(path)
    while time.time() < start:
        time.sleep(0.001)
    ids = [L.next_campaign_id(con, kind, floor=5) for _ in range(n)]
    print(" ".join(map(str, ids)))
""")


def test_two_processes_allocating_campaign_ids_at_once_never_share_one(tmp_path: Path):
    import time

    path = tmp_path / "ops.sqlite"
    with closing(opsdb.connect(path)):
        pass  # migrated once, so both processes start on the same schema
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", ALLOCATE, str(path), kind, "60", str(start)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for kind in ("live", "scenario")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    ids = [int(x) for out, _ in outs for x in out.split()]
    assert len(ids) == 120 and len(set(ids)) == 120
    assert min(ids) == 6  # above the floor (the recorded campaigns of the DuckDB store)
    with closing(opsdb.connect(path)) as con:
        kinds = dict(con.execute("SELECT kind, count(*) FROM campaign_ids GROUP BY kind").fetchall())
    assert kinds == {"live": 60, "scenario": 60}


def test_live_campaigns_and_scenarios_take_their_ids_from_the_one_allocator(tmp_path: Path):
    store = Store(sample_db(tmp_path / "shop.duckdb"))
    ops = opsdb.connect(tmp_path / "shop.ops.sqlite")
    try:
        engine.enable(store, ops, "thanks")
        day = busy_day(store, ops, "thanks")
        engine.record(store, ops, day, now=at(day))
        scenario_ids = [r[0] for r in ops.execute("SELECT campaign_id FROM scenario_batches ORDER BY campaign_id")]
        assert scenario_ids
        duck_max = int(store.scalar("SELECT coalesce(max(campaign_id), 0) FROM campaigns"))
        assert min(scenario_ids) == duck_max + 1  # the next id after every recorded campaign, no separate number range
        got = live.next_campaign_id(store, ops, "live")
        assert got == max(scenario_ids) + 1
        # a send recorded on 施策の効果 (frozen in DuckDB only) never takes a scenario batch's or a live campaign's id
        from crm_core.results import campaigns as C

        ids = [r[0] for r in store.fetchall("SELECT customer_id FROM customer_model ORDER BY customer_id LIMIT 20")]
        recorded = C.freeze_campaign(store, "手動の記録", "line", dt.datetime.combine(day, dt.time(12)), customer_ids=ids)
        assert recorded == got + 1
        kinds = dict(ops.execute("SELECT campaign_id, kind FROM campaign_ids").fetchall())
        assert all(kinds[i] == "scenario" for i in scenario_ids) and kinds[got] == "live" and kinds[recorded] == "recorded"
    finally:
        ops.close()
        store.close()


def test_scenario_rows_are_written_by_the_ledger_writer_of_live_campaigns(tmp_path: Path):
    """Same columns filled the same way: Message-ID for e-mail, a LINE batch with a retry key, seq in order."""
    store = Store(sample_db(tmp_path / "shop.duckdb"))
    ops = opsdb.connect(tmp_path / "shop.ops.sqlite")
    try:
        engine.enable(store, ops, "thanks")
        D.save(ops, D.parse({"name": "thanks_mail", "title": "購入お礼（メール）", "trigger": {"type": "any_order"},
                             "steps": [{"day": 0, "template": "thanks_first", "channel": "email"}]}))
        engine.enable(store, ops, "thanks_mail")
        D.set_setting(ops, "daily_cap", 2)
        last = busy_day(store, ops, "thanks")
        for back in range(6, -1, -1):
            day = last - dt.timedelta(days=back)
            engine.record(store, ops, day, now=at(day), from_addr="shop@example.jp")
        rows = [dict(r) for r in ops.execute("SELECT l.* FROM send_ledger l JOIN scenario_batches USING (campaign_id)")]
        assert {r["channel"] for r in rows} == {"line", "email"}
        for r in rows:
            assert r["state"] == "queued" and r["content_id"] is not None and r["variant"] == "A"
            if r["channel"] == "email":
                assert r["message_id"].endswith("@example.jp>") and r["batch_id"] is None
            else:
                assert r["message_id"] is None and r["batch_id"] is not None
        keys = [r[0] for r in ops.execute("SELECT retry_key FROM send_batches")]
        assert keys and len(keys) == len(set(keys))
        for cid in {r["campaign_id"] for r in rows}:
            seqs = sorted(r["seq"] for r in rows if r["campaign_id"] == cid)
            assert seqs == list(range(len(seqs)))
    finally:
        ops.close()
        store.close()


def test_write_rows_is_the_ledgers_own_function():
    """No second INSERT INTO send_ledger in the live-campaign or scenario code: both go through the ledger."""
    import inspect

    assert "INSERT INTO send_ledger" not in inspect.getsource(engine)
    assert "INSERT INTO send_ledger" not in inspect.getsource(live)
