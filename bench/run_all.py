"""Reproduce issue 16's table in one command: import, re-import, refresh, delta import, exports, recommendations, pages.

Against plain DuckDB doing the same work in the same run, with the load
average next to each figure (the machine is shared).  Data is generated
(seeded) into the system temp folder, never into the repository:

- a narrow generic order file shaped like the CDNOW log ×100 (order id,
  customer id, day, amount; 7 M lines, 2.36 M customers at ``--scale full``,
  a tenth at ``small``), imported with a mapping as a marketer would;
- the Rakuten cp932 file of ``bench_import.py`` (``--wide``; slow).

Usage::

    python bench/run_all.py --scale small|full [--runs 3] [--wide] [--pages] [--send 100000 [--send-only]]
        [--recs-customers 2300000 [--recs-only]] [--lifetimes-python /tmp/lt-venv/bin/python]

The narrow file has no product lines, so its ``recommendations`` row shows the build's quick exit;
``--recs-customers N`` times the recommendations on a store with product lines (the generated shop
of ``bench_customers.py``: N customers, about 4.6 lines each), against plain DuckDB joining every
line to its order, interleaved.

``lifetimes.utils.summary_data_from_transaction_data`` runs in the Python
given (a throwaway venv: lifetimes is not a dependency of the console);
without it that row is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

SCALES = {"small": (700_000, 236_000), "full": (7_000_000, 2_360_000)}
MAPPING = {"order_id": "order_id", "customer_id": "customer_key", "date": "ordered_at", "amount": "total_amount"}
SEED = 19970101


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def generate_narrow(path: Path, lines: int, customers: int, seed: int = SEED, start_order: int = 0,
                    first_day: str = "1997-01-01", days: int = 546) -> None:
    """A seeded CDNOW-like log: a few orders per customer over 18 months, amounts like CD purchases.

    The first ``customers`` lines of the full file give every customer one order, so the store really has
    ``customers`` customers (CDNOW ×100 has 2.36 M); the rest are spread with a skew (a few buy often).
    """
    import duckdb

    con = duckdb.connect()
    con.execute(
        """
        COPY (
            SELECT 'O' || (i + $start) AS order_id,
                   'C' || lpad(CAST(CASE WHEN $start = 0 AND i < $customers THEN i  -- every customer orders at least once
                                         ELSE CAST(floor(pow((hash(i, 1, $seed) % 1000003) / 1000003.0, 1.6) * $customers) AS BIGINT)
                                    END AS VARCHAR), 7, '0') AS customer_id,
                   strftime(DATE '""" + first_day + """' + CAST(floor((hash(i, 2, $seed) % 1000003) / 1000003.0 * $days) AS INTEGER),
                            '%Y-%m-%d') AS date,
                   round(5 + 60 * pow((hash(i, 3, $seed) % 1000003) / 1000003.0, 2), 2) AS amount
            FROM range($lines) t(i)
        ) TO '""" + str(path) + "' (HEADER)",
        {"start": start_order, "seed": seed, "customers": customers, "days": days, "lines": lines},
    )
    con.close()


def _in_process(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh process (peak memory per step); it prints one JSON line."""
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=HERE.parent,
                         env={**os.environ, "CRM_NO_SAMPLE": "1"})
    if res.returncode != 0:
        return {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit {res.returncode}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


PLAIN_READ = """
import json, resource, sys, time, duckdb
con = duckdb.connect(sys.argv[2], config={"memory_limit": "1536MB"})
t = time.perf_counter()
con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?, all_varchar=true)", [sys.argv[1]])
print(json.dumps({"seconds": time.perf_counter() - t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

OUR_IMPORT = """
import json, resource, sys, time
from crm_core.db import Store
from crm_core.ingest import importer
from crm_core import pipeline
mapping = json.loads(sys.argv[3])
spent = [0.0]
rebuild = importer.rebuild_customers
def timed_rebuild(*a, **k):  # the customers table is the refresh's work: timed apart
    t0 = time.perf_counter()
    try:
        return rebuild(*a, **k)
    finally:
        spent[0] += time.perf_counter() - t0
importer.rebuild_customers = timed_rebuild
store = Store(sys.argv[2], snapshot=True)  # as the console and the command line open it for an import
phases = []
t = time.perf_counter()
report = importer.import_files(store, [sys.argv[1]], fmt="generic", mapping=mapping, kind="orders",
                               progress=lambda f, text: phases.append((text[:10], time.perf_counter())))
imported = time.perf_counter() - t
pm = [*[m for _, m in phases], t + imported]
by_phase = {}
for i, (name, m) in enumerate(phases):
    by_phase[name] = round(by_phase.get(name, 0) + pm[i + 1] - m, 2)
due = pipeline.refresh_due(store) or not store.has_table("customer_model")
steps = []
t = time.perf_counter()
if due and sys.argv[4] == "refresh":
    pipeline.refresh(store, lambda f, text: steps.append((text[:12], time.perf_counter())))
refresh = time.perf_counter() - t if due and sys.argv[4] == "refresh" else None
marks = [*[m for _, m in steps], t + (refresh or 0)]
split = {name: round(marks[i + 1] - m, 2) for i, (name, m) in enumerate(steps)}
print(json.dumps({"seconds": imported, "rebuild_customers": spent[0], "refresh": refresh, "refreshed": bool(due), "steps": split, "phases": by_phase,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "outcome": report.outcome()[0] if hasattr(report, "outcome") else None}))
"""

# The refresh's floor: plain DuckDB computing the customer model's per-customer aggregates from the
# store's orders and writing them to a table (in a scratch file; the store is only read).
PLAIN_REFRESH = """
import json, sys, time, duckdb
con = duckdb.connect(sys.argv[2], config={"memory_limit": "1536MB"})
con.execute("ATTACH '" + sys.argv[1].replace("'", "''") + "' AS s (READ_ONLY)")
t = time.perf_counter()
con.execute(
    "CREATE OR REPLACE TABLE plain_customers AS "
    "WITH o AS (SELECT customer_id, ordered_at, CAST(ordered_at AS DATE) AS d, coalesce(total_amount, item_amount, 0) AS amt, "
    "                  coupon_code, discount_amount "
    "           FROM s.orders WHERE customer_id IS NOT NULL AND ordered_at IS NOT NULL AND NOT coalesce(cancelled, FALSE)), "
    "e AS (SELECT max(d) AS as_of FROM o) "
    "SELECT customer_id, count(*) AS orders, sum(amt) AS revenue, min(ordered_at) AS first_at, max(ordered_at) AS last_at, "
    "       count(DISTINCT d) AS days, count(*) FILTER (WHERE d > (SELECT as_of FROM e) - 365) AS orders_12m, "
    "       sum(amt) FILTER (WHERE d > (SELECT as_of FROM e) - 365) AS revenue_12m, "
    "       bool_or(coalesce(coupon_code, '') <> '' OR coalesce(discount_amount, 0) > 0) AS coupon, "
    "       (SELECT as_of FROM e) - max(d) AS recency_days "
    "FROM o GROUP BY customer_id")
print(json.dumps({"seconds": time.perf_counter() - t,
                  "customers": con.execute("SELECT count(*) FROM plain_customers").fetchone()[0]}))
"""

PANDAS_RFM = """
import json, sys, time
import pandas as pd
t = time.perf_counter()
df = pd.read_csv(sys.argv[1], dtype={"order_id": str, "customer_id": str}, parse_dates=["date"])
end = df["date"].max()
rfm = df.groupby("customer_id").agg(last=("date", "max"), frequency=("order_id", "nunique"), monetary=("amount", "sum"))
rfm["recency"] = (end - rfm["last"]).dt.days
for col, asc in (("recency", False), ("frequency", True), ("monetary", True)):
    rfm[col[0] + "_score"] = pd.qcut(rfm[col].rank(method="first", ascending=asc), 5, labels=False) + 1
print(json.dumps({"seconds": time.perf_counter() - t, "customers": len(rfm)}))
"""

LIFETIMES = """
import json, sys, time
import pandas as pd
from lifetimes.utils import summary_data_from_transaction_data
t = time.perf_counter()
df = pd.read_csv(sys.argv[1], dtype={"order_id": str, "customer_id": str}, parse_dates=["date"])
s = summary_data_from_transaction_data(df, "customer_id", "date", monetary_value_col="amount")
print(json.dumps({"seconds": time.perf_counter() - t, "customers": len(s)}))
"""


def row(step: str, ours: float | None, plain: float | None = None, note: str = "") -> dict:
    ratio = f"{ours / plain:5.2f}x" if ours is not None and plain else "      "
    o = f"{ours:8.2f} s" if ours is not None else "       —  "
    p = f"{plain:8.2f} s" if plain else "          "
    print(f"{step:52s} {o} {p} {ratio}  {note}", flush=True)
    return {"step": step, "ours": ours, "plain": plain, "note": note}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs of the export pairs")
    parser.add_argument("--wide", action="store_true", help="also the Rakuten cp932 import (bench_import.py)")
    parser.add_argument("--wide-runs", type=int, default=1, help="runs of each Rakuten step (medians)")
    parser.add_argument("--pages", action="store_true", help="also AppTest first render and rerun of every page")
    parser.add_argument("--lifetimes-python", default=None)
    parser.add_argument("--workdir", default=None, help="folder for the generated data (default: a temp folder)")
    parser.add_argument("--send", type=int, default=0, metavar="N",
                        help="also live sends (bench_send.py): N e-mails and N LINE recipients, ledger vs bare loop, resume after kill -9"
                             " (the issue's size is 100000)")
    parser.add_argument("--send-only", action="store_true", help="only the live-send rows (with --send)")
    parser.add_argument("--recs-customers", type=int, default=0, metavar="N",
                        help="also recommendations on a generated shop with product lines (bench_customers.py; "
                             "the issue's size is 2300000)")
    parser.add_argument("--recs-only", action="store_true", help="only the recommendations rows (with --recs-customers)")
    args = parser.parse_args(argv)
    lines, customers = SCALES[args.scale]
    tmp = tempfile.TemporaryDirectory(prefix="crm_bench_")
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    narrow, delta = work / "narrow.csv", work / "delta.csv"
    if args.recs_customers and args.recs_only:
        print(f"recommendations only: {args.recs_customers:,} customers; {os.cpu_count()} cores; {load()}", flush=True)
        (work / "table.json").write_text(json.dumps(_recommendations(args.recs_customers, args.runs, work), indent=1))
        return
    if args.send and args.send_only:
        print(f"live sends only: {args.send:,} recipients per channel; {os.cpu_count()} cores; {load()}", flush=True)
        (work / "table.json").write_text(json.dumps(_send(args.send, args.runs, work), indent=1))
        return
    print(f"scale {args.scale}: {lines:,} lines; {os.cpu_count()} cores; {load()}", flush=True)
    if not narrow.exists():
        generate_narrow(narrow, lines, customers)
    generate_narrow(delta, 10_000, customers, seed=SEED + 1, start_order=lines, first_day="1998-06-29", days=1)
    mapping = json.dumps(MAPPING)
    print(f"{'step':52s} {'ours':>10s} {'plain':>10s} ratio", flush=True)
    table = []
    if args.send:
        table.extend(_send(args.send, args.runs, work))

    store_path = work / "crm.duckdb"
    for p in work.glob("crm.duckdb*"):
        p.unlink()
    plain = _in_process(PLAIN_READ, str(narrow), str(work / "plain.duckdb"))
    (work / "plain.duckdb").unlink(missing_ok=True)
    first = _in_process(OUR_IMPORT, str(narrow), str(store_path), mapping, "refresh")
    if "error" in first:
        print("import failed:", first["error"])
        return
    plain2 = _in_process(PLAIN_READ, str(narrow), str(work / "plain.duckdb"))  # interleaved: plain, ours, plain
    (work / "plain.duckdb").unlink(missing_ok=True)
    plain_s = (plain["seconds"] + plain2["seconds"]) / 2
    first_tx = first["seconds"] - first["rebuild_customers"]
    table.append(row("import transaction, narrow file (no rebuild_customers)", first_tx, plain_s,
                     f"peak {first['rss_mb']:,.0f} MB vs {plain['rss_mb']:,.0f} MB; plain runs {plain['seconds']:.2f}/"
                     f"{plain2['seconds']:.2f} s; {load()}"))
    table.append(row("  with rebuild_customers (inside the transaction)", first["seconds"], plain_s,
                     f"rebuild_customers {first['rebuild_customers']:.2f} s; {first.get('phases')}"))
    plain_refresh = _in_process(PLAIN_REFRESH, str(store_path), str(work / "plain_refresh.duckdb"))
    (work / "plain_refresh.duckdb").unlink(missing_ok=True)
    table.append(row("refresh after import (model, recommendations, sizes)", first["refresh"], plain_refresh.get("seconds"),
                     f"target ≤ 3× plain DuckDB per-customer aggregates written to a table; {first.get('steps')}; {load()}"))
    again = _in_process(OUR_IMPORT, str(narrow), str(store_path), mapping, "refresh")
    table.append(row("re-import of the same file (nothing changed)", again["seconds"] - again["rebuild_customers"], first_tx,
                     f"ratio against the first import's transaction; with rebuild_customers {again['seconds']:.2f} s "
                     f"vs {first['seconds']:.2f} s; refresh ran: {again['refreshed']}; {load()}"))
    d = _in_process(OUR_IMPORT, str(delta), str(store_path), mapping, "refresh")
    total = d["seconds"] + (d["refresh"] or 0)
    table.append(row("daily delta: 10,000 lines + refresh", total, None,
                     f"target ≤ 15 s: {'met' if total <= 15 else 'NOT met'}; import {d['seconds']:.2f} s + "
                     f"refresh {d['refresh'] or 0:.2f} s {d.get('steps')}; {load()}"))

    import bench_export

    from crm_core.db import Store

    store = Store(store_path)
    for r in bench_export.run(store, args.runs, work):
        if r.get("plain"):
            table.append(row(r["step"], r["ours"], r["plain"], f"load {r['load']:.1f}"))
    from crm_core.analytics import basket

    t = time.perf_counter()
    store.fetchall("SELECT count(*) FROM order_lines l JOIN orders o ON o.source = l.source AND o.order_id = l.order_id")
    floor = time.perf_counter() - t
    t = time.perf_counter()
    basket.build_recommendations(store)
    rec = time.perf_counter() - t
    table.append(row("recommendations (narrow file: no product lines)", rec, floor,
                     f"plain = lines joined to orders; {load()}"))
    store.close()
    if args.recs_customers:
        table.extend(_recommendations(args.recs_customers, args.runs, work))

    rfm = _in_process(PANDAS_RFM, str(narrow))
    table.append(row("pandas read_csv + groupby RFM (analyst by hand)", rfm.get("seconds"), plain["seconds"], load()))
    if args.lifetimes_python:
        res = subprocess.run([args.lifetimes_python, "-c", LIFETIMES, str(narrow)], capture_output=True, text=True)
        lt = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else {}
        table.append(row("lifetimes summary_data_from_transaction_data", lt.get("seconds"), plain["seconds"],
                         load() if lt else "failed: " + (res.stderr.strip().splitlines() or ["?"])[-1]))
    if args.pages:
        table.extend(_pages(store_path, args.runs))
    if args.wide:
        wide = 500_000 if args.scale == "small" else 5_000_000
        subprocess.run([sys.executable, str(HERE / "bench_import.py"), "--lines", str(wide), "--repeat", str(args.wide_runs),
                        "--no-pandas", "--workdir", str(work / "rakuten")])
    _targets(table)
    (work / "table.json").write_text(json.dumps(table, indent=1))
    print(f"table written to {work / 'table.json'}", flush=True)


RECS = """
import json, resource, sys, time
from crm_core.analytics import basket
from crm_core.db import Store
store = Store(sys.argv[1])
t = time.perf_counter()
n = basket.build_recommendations(store)
print(json.dumps({"seconds": time.perf_counter() - t, "rows": n,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PLAIN_LINES = """
import json, resource, sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True, config={"memory_limit": "1536MB"})
t = time.perf_counter()
con.execute("SELECT count(*) FROM order_lines l JOIN orders o ON o.source = l.source AND o.order_id = l.order_id").fetchall()
print(json.dumps({"seconds": time.perf_counter() - t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _recommendations(customers: int, runs: int, work: Path) -> list[dict]:
    """build_recommendations on a generated shop with product lines, each run in a fresh process, against plain DuckDB.

    The shop (``bench_customers.generate``, seeded) is kept in the work folder and reused.
    """
    import statistics

    path = work / f"recs_{customers}.duckdb"
    if not path.exists():
        import bench_customers

        from crm_core.db import Store

        t = time.perf_counter()
        store = Store(path)
        sizes = bench_customers.generate(store, customers)
        store.close()
        print(f"generated {sizes} in {time.perf_counter() - t:.1f} s; {load()}", flush=True)
    ours, plain, loads = [], [], []
    for _ in range(max(1, runs)):  # interleaved: plain, ours
        p = _in_process(PLAIN_LINES, str(path))
        o = _in_process(RECS, str(path))
        if "error" in o or "error" in p:
            return [row(f"recommendations, {customers:,} customers", None, None, f"failed: {o.get('error') or p.get('error')}")]
        plain.append(p["seconds"])
        ours.append(o)
        loads.append(load())
    rec = statistics.median(o["seconds"] for o in ours)
    each = ", ".join(f"{o['seconds']:.1f}" for o in ours)
    return [row(f"recommendations, {customers:,} customers with product lines", rec, statistics.median(plain),
                f"target ≤ 10 s: {'met' if rec <= 10 else 'NOT met'}; median of {len(ours)} "
                f"({each} s); {ours[0]['rows']:,} customers recommended; "
                f"peak {max(o['rss_mb'] for o in ours):,.0f} MB; plain = lines joined to orders; {', '.join(loads)}")]


def _send(recipients: int, runs: int, work: Path) -> list[dict]:
    """Live sends through the ledger vs a bare loop of the same requests (``bench_send.py`` in its own process)."""
    out = work / "send.json"
    subprocess.run([sys.executable, str(HERE / "bench_send.py"), "--recipients", str(recipients), "--runs", str(runs), "--json", str(out)],
                   cwd=HERE.parent)
    if not out.exists():
        return [row("live send benchmark", None, None, "failed (see its output above)")]
    r = json.loads(out.read_text())
    rows = []
    for channel, label in (("email", "e-mails, one SMTP connection"), ("line", "LINE multicasts of 500")):
        res = r.get(channel)
        if not res:
            continue
        parts = res.get("rounds") or res.get("runs")
        ledger, bare = sum(p["ledger_s"] for p in parts), sum(p["bare_s"] for p in parts)
        loads = sorted({x for p in parts for x in p["load"]})
        rows.append(row(f"live send: {res['recipients']:,} {label} (ledger vs bare)", ledger, bare,
                        f"median overhead {res['overhead_median']:+.1%} over {len(parts)} interleaved rounds; "
                        f"{res['ledger_per_s']:,}/s vs {res['bare_per_s']:,}/s; load {loads[0]}–{loads[-1]}"))
        resume = r.get(f"{channel}_resume")
        if resume:
            rows.append(row(f"live send: {channel} resume after kill -9 (to first send)", resume["restart_to_first_send_s"], None,
                            f"to the end {resume['restart_to_done_s']} s; {resume['sent_at_kill']:,} of {resume['recipients']:,} sent at the kill;"
                            f" {resume['left']} left; load {resume['load'][0]}"))
    return rows


TARGETS = {  # issue 16's targets this run checks: step prefix → (limit, what the ratio is against)
    "import transaction, narrow file": (2.0, "plain read_csv into a table"),
    "re-import of the same file": (0.5, "the first import"),
    "refresh after import": (3.0, "plain per-customer aggregates"),
    "customers --out": (2.0, "plain COPY"),
    "segment export": (2.0, "plain COPY"),
    "coupon codes": (2.0, "plain COPY"),
}


def _targets(table: list[dict]) -> None:
    """The final ratios for the targets, one line each (the Rakuten cp932 import prints its own, --wide)."""
    print("\nTARGETS (ratio ≤ limit)", flush=True)
    for r in table:
        for prefix, (limit, against) in TARGETS.items():
            if r["step"].startswith(prefix) and r.get("ours") is not None and r.get("plain"):
                ratio = r["ours"] / r["plain"]
                print(f"  {r['step']:52s} {ratio:5.2f}x {against:28s} {'met' if ratio <= limit else 'NOT met'} (≤ {limit})",
                      flush=True)


def _pages(store_path: Path, runs: int) -> list[dict]:
    """AppTest first render and rerun after a widget change of every page (bench_pages.py; not a browser)."""
    res = subprocess.run([sys.executable, str(HERE / "bench_pages.py"), "--db", str(store_path), "--runs", str(runs)],
                         capture_output=True, text=True, cwd=HERE.parent, env={**os.environ, "CRM_NO_SAMPLE": "1"})
    rows = []
    for line in res.stdout.splitlines():
        print(line, flush=True)
        rows.append({"step": "pages", "line": line})
    if res.returncode != 0:
        print("bench_pages.py failed:", (res.stderr.strip().splitlines() or ["?"])[-1], flush=True)
    return rows


if __name__ == "__main__":
    main()
