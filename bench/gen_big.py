"""Time the sample generator at scale: rows, lines per second and peak memory.

Usage::

    .venv/bin/python bench/gen_big.py --customers 200000 --out /tmp/crm-big

Writes the four sample files into ``--out`` (never into the repository) and
prints one JSON line with the row counts, wall time, order lines per second and
the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crm_core.sample.generate import generate_sample  # noqa: E402


def _count_rows(path: Path, encoding: str) -> int:
    """Records in a CSV (quoted newlines handled), header excluded."""
    import csv

    with open(path, encoding=encoding, newline="") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "crm-sample-big"))
    parser.add_argument("--no-count", action="store_true", help="skip re-reading the files to count rows")
    args = parser.parse_args(argv)

    marks: list[float] = []
    t0 = time.perf_counter()
    paths = generate_sample(args.out, customers=args.customers, seed=args.seed, progress=marks.append)
    secs = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result: dict[str, object] = {
        "customers": args.customers,
        "seconds": round(secs, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "progress_calls": len(marks),
        "bytes": {k: p.stat().st_size for k, p in paths.items()},
    }
    if not args.no_count:
        rak = _count_rows(paths["rakuten_orders"], "cp932")
        shp = _count_rows(paths["shopify_orders"], "utf-8-sig")
        result.update(rakuten_lines=rak, shopify_lines=shp, lines_per_second=round((rak + shp) / secs))
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
