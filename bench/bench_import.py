"""Import benchmark: a generated Rakuten cp932 export of >= 5 million order lines.

Prints medians of wall time and peak memory (each run in a fresh process) for

* plain DuckDB ``read_csv`` of the same file (its UTF-8 copy: DuckDB cannot read cp932)
  into a table -- the floor for the UTF-8 file;
* the plain reference for the cp932 file: Python's codec decoding it to UTF-8 (one process,
  streaming, what a script would do) and then the same ``read_csv`` -- DuckDB itself cannot
  decode cp932 without its ``encodings`` extension, which is downloaded at run time;
* our import of the cp932 file (transcode + read + normalise + validate + upsert + customers);
* our import of the UTF-8 copy (no transcoding);
* pandas ``read_csv(encoding="cp932")`` of the file -- what an analyst would otherwise reach for;
* a re-import of the same file into the filled store (idempotent path).

Usage::

    .venv/bin/python bench/bench_import.py                # 5M lines, 3 runs each
    .venv/bin/python bench/bench_import.py --lines 500000 --repeat 1

Generated files live in ``--workdir`` (default /tmp/crm-bench), never in the repository.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, {root!r})
    task, path, db = sys.argv[1], sys.argv[2], sys.argv[3]
    t0 = time.perf_counter()
    extra = {{}}
    if task in ("duckdb", "duckdb_cp932"):
        import codecs, duckdb
        if task == "duckdb_cp932":  # decode first: Python's codec, streaming, into a UTF-8 file
            utf8 = db + ".utf8.csv"
            dec = codecs.getincrementaldecoder("cp932")()
            with open(path, "rb") as fin, open(utf8, "w", encoding="utf-8", newline="") as fout:
                while chunk := fin.read(8 << 20):
                    fout.write(dec.decode(chunk))
            path = utf8
        con = duckdb.connect(db, config={{"memory_limit": "1536MB"}})
        con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?, all_varchar = true)", [path])
        extra["rows"] = con.execute("SELECT count(*) FROM t").fetchone()[0]
    elif task == "pandas":
        import pandas as pd
        df = pd.read_csv(path, encoding="cp932", dtype=str)
        extra["rows"] = len(df)
    elif task in ("ours", "reimport"):
        from crm_core.db import Store
        from crm_core.ingest import importer
        from crm_core.pipeline import import_files
        spent = [0.0]
        rebuild = importer.rebuild_customers
        def timed_rebuild(*a, **k):  # the customers table is the refresh's work: timed apart
            t = time.perf_counter()
            try:
                return rebuild(*a, **k)
            finally:
                spent[0] += time.perf_counter() - t
        importer.rebuild_customers = timed_rebuild
        store = Store(db)
        if task == "reimport":
            import_files(store, [path], rebuild_model=False)
            spent[0] = 0.0
            t0 = time.perf_counter()
        report = import_files(store, [path], rebuild_model=False).to_dict()
        extra = {{k: report[k] for k in ("orders_added", "orders_unchanged", "lines", "customers", "rows_rejected")}}
        extra["rebuild_customers"] = round(spent[0], 2)
    seconds = time.perf_counter() - t0 - extra.get("rebuild_customers", 0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({{"seconds": seconds, "peak_mb": peak_mb, **extra}}))
    """
)


def run_child(task: str, path: Path, workdir: Path) -> dict:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        db = str(Path(tmp) / "bench.duckdb")
        out = subprocess.run(
            [sys.executable, "-c", CHILD.format(root=str(ROOT)), task, str(path), db],
            capture_output=True, text=True, check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def count_lines(path: Path) -> int:
    import duckdb

    return duckdb.connect().execute(
        "SELECT count(*) FROM read_csv(?, all_varchar = true)", [str(path)]
    ).fetchone()[0]


def ensure_files(workdir: Path, lines: int, seed: int) -> tuple[Path, Path, int]:
    """Generate (once) a Rakuten export with at least ``lines`` rows and its UTF-8 copy."""
    from crm_core.sample.generate import generate_sample

    calib_dir = workdir / "calibration"
    if not (calib_dir / "rakuten_orders.csv").exists():
        generate_sample(calib_dir, customers=5000, seed=seed)
    calib = count_lines(_utf8_copy(calib_dir / "rakuten_orders.csv"))
    customers = int(lines / calib * 5000 * 1.05) + 1
    data_dir = workdir / f"shop-{customers}-{seed}"
    src = data_dir / "rakuten_orders.csv"
    if not src.exists():
        print(f"generating a shop of {customers:,} customers …", flush=True)
        t0 = time.perf_counter()
        generate_sample(data_dir, customers=customers, seed=seed)
        print(f"  generated in {time.perf_counter() - t0:,.0f} s", flush=True)
    utf8 = _utf8_copy(src)
    return src, utf8, count_lines(utf8)


def _utf8_copy(src: Path) -> Path:
    dst = src.with_suffix(".utf8.csv")
    if not dst.exists():
        with open(src, encoding="cp932", newline="") as fin, open(dst, "w", encoding="utf-8", newline="") as fout:
            while chunk := fin.read(1 << 22):
                fout.write(chunk)
    return dst


def main() -> int:
    parser = argparse.ArgumentParser(description="import benchmark")
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "crm-bench")
    parser.add_argument("--no-pandas", action="store_true")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    src, utf8, n = ensure_files(args.workdir, args.lines, args.seed)
    size_mb = src.stat().st_size / 1e6
    print(f"file: {src} ({size_mb:,.0f} MB cp932, {n:,} order lines)")
    tasks = [("duckdb", utf8), ("duckdb_cp932", src), ("ours", src), ("ours", utf8), ("reimport", src)]
    if not args.no_pandas:
        tasks.append(("pandas", src))
    labels = {
        ("duckdb", utf8): "plain DuckDB read_csv (UTF-8 copy)",
        ("duckdb_cp932", src): "plain: cp932 decode + read_csv",
        ("ours", src): "our import, cp932 file",
        ("ours", utf8): "our import, UTF-8 file",
        ("reimport", src): "re-import same file (no change)",
        ("pandas", src): "pandas read_csv(cp932)",
    }
    results: dict[str, dict] = {}
    for task, path in tasks:
        runs = [run_child(task, path, args.workdir) for _ in range(args.repeat)]
        label = labels[(task, path)]
        results[label] = {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "peak_mb": statistics.median(r["peak_mb"] for r in runs),
            "last": runs[-1],
        }
        print(f"  {label:38s} {results[label]['seconds']:8.2f} s  peak {results[label]['peak_mb']:8.0f} MB  {runs[-1]}", flush=True)

    floor = results[labels[("duckdb", utf8)]]["seconds"]
    floor_cp932 = results[labels[("duckdb_cp932", src)]]["seconds"]
    print()
    print("seconds exclude rebuild_customers (the refresh's work, timed apart in 'last')")
    print(f"{'step':40s} {'median s':>9s} {'peak MB':>9s} {'× DuckDB':>9s}")
    for label, r in results.items():
        print(f"{label:40s} {r['seconds']:9.2f} {r['peak_mb']:9.0f} {r['seconds'] / floor:9.2f}")
    ours_cp932 = results[labels[("ours", src)]]["seconds"]
    print(f"TARGET Rakuten cp932 import / (cp932 decode + read_csv): {ours_cp932 / floor_cp932:.2f}x (target <= 2)")
    print(f"TARGET Rakuten UTF-8 import / read_csv: {results[labels[('ours', utf8)]]['seconds'] / floor:.2f}x")
    print(f"TARGET re-import / first import (cp932): {results[labels[('reimport', src)]]['seconds'] / ours_cp932:.2f}x (target <= 0.5)")
    print(json.dumps({"lines": n, "file_mb": size_mb, "results": {k: {kk: v[kk] for kk in ('seconds', 'peak_mb')} for k, v in results.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
