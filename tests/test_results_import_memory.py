"""Issue 11, item 26: a big per-recipient result file is streamed, not held in memory several times over."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from crm_core.db import Store
from crm_core.results import campaigns as C
from crm_core.sample.load import load_sample

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, pathlib, resource, sys
sys.path.insert(0, {root!r})
from crm_core.db import Store
from crm_core.results import campaigns as C
store = Store({db!r})
store.fetchall("SELECT * FROM campaign_recipients")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = C.import_results(store, {cid}, pathlib.Path({path!r}),
                       {{"顧客ID": "customer_id", "配信": "delivered", "開封": "opened", "クリック": "clicked"}})
out["grown_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps(out))
"""


def test_result_file_import_memory_stays_below_the_file_size(tmp_path):
    db = tmp_path / "crm.duckdb"
    store = Store(db)
    load_sample(store, customers=200)
    ids = [r[0] for r in store.fetchall("SELECT customer_id FROM customers ORDER BY 1")]
    cid = C.freeze_campaign(store, "秋のセール", "email", "2026-10-01 12:00", customer_ids=ids, holdout_share=0.1)
    store.close()
    path = tmp_path / "配信結果.csv"
    with open(path, "w", encoding="cp932", newline="") as fh:  # cp932 as Japanese mail tools export it
        fh.write("顧客ID,メールアドレス,配信日時,配信,開封,クリック,件名,配信ID\r\n")
        i = 0
        while fh.tell() < 60 * 1024 * 1024:
            cust = ids[i] if i < len(ids) else f"Z{i:012d}"
            fh.write(f"{cust},user{i}@example.jp,2026-10-01 12:00:00,1,{i % 3 == 0:d},{i % 7 == 0:d},秋の感謝セールのお知らせ,{i:010d}\r\n")
            i += 1
    size_mb = path.stat().st_size / 1024 / 1024
    res = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(ROOT), db=str(db), cid=cid, path=str(path))],
        capture_output=True, text=True, timeout=600, check=True,
    )
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["rows"] == i and out["matched"] == len(ids) and out["unmatched"] == i - len(ids)
    # the whole file decoded into Python strings and a DataFrame took about 9x its size
    print(f"{size_mb:.0f} MB file: peak memory grew {out['grown_mb']:.0f} MB")
    assert out["grown_mb"] < size_mb, out
    s = Store(db)
    assert s.scalar("SELECT count(*) FROM campaign_events WHERE campaign_id = ?", [cid]) == len(ids)
    assert s.scalar("SELECT count(*) FILTER (WHERE clicked) FROM campaign_events WHERE campaign_id = ?", [cid]) == sum(1 for k in range(len(ids)) if k % 7 == 0)
    s.close()
