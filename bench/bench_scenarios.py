"""Benchmark the first day of a segment-trigger scenario with everyone already in the segment (issue 15, item 5).

A scenario "entering a segment" whose segment holds every customer who ordered (about 4,000 of the
5,000-customer sample shop) is switched on and recorded for one day: everyone enters at once (the
explicit 「いまセグメントにいるお客様にも送る」 option; by default they are recorded as already there and
nobody enters).  ``record`` decides, renders and writes every occurrence and ledger row.

Compare two checkouts with ``--root`` (the code imported), interleaved by the caller::

    python bench/bench_scenarios.py --customers 5000 [--root /path/to/other/checkout] [--repeat 3]

Prints one JSON line: seconds per run, the median, and what was recorded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--root", default=str(ROOT), help="the checkout whose crm_core is measured")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "crm-bench-scenarios"))
    args = ap.parse_args()
    sys.path.insert(0, args.root)
    from crm_core import opsdb
    from crm_core.db import Store
    from crm_core.sample.load import load_sample
    from crm_core.scenarios import definitions as D
    from crm_core.scenarios import engine

    cache = Path(args.cache) / f"{hashlib.sha256(args.root.encode()).hexdigest()[:10]}-{args.customers}"
    cache.mkdir(parents=True, exist_ok=True)
    sample = cache / "sample.duckdb"
    if not sample.exists():
        s = Store(sample)
        load_sample(s, customers=args.customers)
        s.execute("CHECKPOINT")
        s.close()
    day = dt.date(2026, 10, 20)
    now = dt.datetime.combine(day, dt.time(20), tzinfo=dt.timezone(dt.timedelta(hours=9)))
    times, recorded = [], {}
    for n in range(args.repeat):
        work = Path(tempfile.mkdtemp(prefix="crm-bench-scen-"))
        try:
            shutil.copyfile(sample, work / "crm.duckdb")
            store = Store(work / "crm.duckdb")
            ops = opsdb.connect(work / "crm.ops.sqlite")
            D.save(ops, D.parse({"name": "buyers", "title": "購入者", "holdout": 0.1,
                                 "trigger": {"type": "segment", "rule": {"all": [{"field": "orders", "op": ">=", "value": 1}]}},
                                 "steps": [{"day": 0, "template": "rank_up", "channel": "line_or_email"}]}))
            D.set_enabled(ops, "buyers", True)  # everyone in the segment enters on this first run
            t = time.perf_counter()
            recorded = engine.record(store, ops, day, now=now)
            times.append(time.perf_counter() - t)
            ops.close()
            store.close()
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"run {n + 1}: {times[-1]:.2f} s", file=sys.stderr)
    print(json.dumps({"root": args.root, "customers": args.customers, "seconds": [round(x, 2) for x in times],
                      "median": round(statistics.median(times), 2), "recorded": recorded}, ensure_ascii=False))


if __name__ == "__main__":
    main()
