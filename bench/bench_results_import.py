"""Peak memory of importing a per-recipient result file (issue 11: 150 MB peaked at 1.6 GB).

    .venv/bin/python bench/bench_results_import.py --mb 150

Builds a small store with one frozen campaign, writes a result CSV of about
``--mb`` megabytes (the campaign's recipients plus rows of other ids, with
extra columns as e-mail tools export them), then imports it in a fresh
process and prints that process's peak resident memory next to the file size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(tmp: Path, mb: int) -> tuple[Path, Path, int]:
    from crm_core.db import Store
    from crm_core.results import campaigns as C
    from crm_core.sample.load import load_sample

    db = tmp / "crm.duckdb"
    store = Store(db)
    load_sample(store, customers=300)
    ids = [r[0] for r in store.fetchall("SELECT customer_id FROM customers ORDER BY 1")]
    cid = C.freeze_campaign(store, "bench", "email", "2026-10-01 12:00", customer_ids=ids, holdout_share=0.1)
    store.close()
    path = tmp / "results.csv"
    target = mb * 1024 * 1024
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("顧客ID,メールアドレス,配信日時,配信,開封,クリック,件名,配信ID\r\n")
        i = 0
        while fh.tell() < target:
            cust = ids[i % len(ids)] if i < len(ids) else f"Z{i:012d}"
            fh.write(f"{cust},user{i}@example.jp,2026-10-01 12:00:00,1,{i % 3 == 0:d},{i % 7 == 0:d},"
                     f"秋の感謝セールのお知らせ,{i:010d}\r\n")
            i += 1
    return db, path, cid


CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from crm_core.db import Store
from crm_core.results import campaigns as C
store = Store({db!r})
t = time.perf_counter()
out = C.import_results(store, {cid}, __import__('pathlib').Path({path!r}),
                       {{"顧客ID": "customer_id", "配信": "delivered", "開封": "opened", "クリック": "clicked"}})
out["seconds"] = round(time.perf_counter() - t, 2)
out["peak_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(out))
"""


def measure(db: Path, path: Path, cid: int) -> dict:
    code = CHILD.format(root=str(ROOT), db=str(db), cid=cid, path=str(path))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        db, path, cid = build(Path(tmp), args.mb)
        size = path.stat().st_size / 1024 / 1024
        print(f"file {size:,.0f} MB written in {time.perf_counter() - t:.1f} s")
        print(json.dumps(measure(db, path, cid)))
    _ = resource  # the child reports its own peak


if __name__ == "__main__":
    main()
