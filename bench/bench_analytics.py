"""Benchmark the analyses behind the 顧客分析 page and the post-import recommendations at scale.

On the generated shop of :mod:`bench_customers` (2 M customers, 4.76 M orders,
9.16 M lines by default) prints, for every analysis the page computes on the
first view of a tab, the median wall time of a few runs and the ratio to a
plain DuckDB floor measured in the same run: joining every order line to its
order and counting lines per product (the scan every product analysis needs).
Also times :func:`crm_core.analytics.basket.build_recommendations`, which runs after
every import.  Analyses that fail (e.g. out of DuckDB's memory limit) are
reported, not hidden.  Usage::

    python bench/bench_analytics.py [--customers 2000000] [--runs 3] [--keep FILE]
        [--memory-limit 1536MB]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_customers import generate  # noqa: E402

from crm_core import model
from crm_core.analytics import basket, cohorts, cycles, repeat, subscription
from crm_core.analytics import value as analytics  # noqa: E402
from crm_core.db import Store  # noqa: E402

PLAIN_FLOOR = """
SELECT l.product_id, count(*) AS n
FROM order_lines l JOIN orders o ON o.source = l.source AND o.order_id = l.order_id
WHERE NOT coalesce(o.cancelled, FALSE)
GROUP BY l.product_id
"""


def analyses(as_of):
    """(name, function, keyword arguments) as the analytics page calls them."""
    return [
        ("rfm_segment_summary", analytics.rfm_segment_summary, {}),
        ("rf_heatmap", analytics.rf_heatmap, {}),
        ("rank_movement", analytics.rank_movement, {"date_from": as_of - timedelta(days=90), "date_to": as_of}),
        ("repeat_conversion", repeat.repeat_conversion, {"as_of": as_of, "windows": (30, 60, 90), "cohorts": 12}),
        ("second_purchase_stats", repeat.second_purchase_stats, {"as_of": as_of}),
        ("days_to_second_purchase", repeat.days_to_second_purchase, {"as_of": as_of}),
        ("revenue_new_vs_repeat", repeat.revenue_new_vs_repeat, {"as_of": as_of, "months": 24}),
        ("cohort_retention", cohorts.cohort_retention, {"as_of": as_of, "unit": "month", "cohorts": 12, "max_months": 12}),
        ("event_cohort_retention", cohorts.event_cohort_retention, {"as_of": as_of, "max_months": 12, "lookback_months": 24}),
        ("continuation_by_delivery", subscription.continuation_by_delivery,
         {"as_of": as_of, "max_deliveries": 12, "grace_days": 45}),
        ("continuation_by_month", subscription.continuation_by_month, {"as_of": as_of, "months": 12, "grace_days": 45}),
        ("ltv_curves", cohorts.ltv_curves, {"as_of": as_of, "unit": "quarter", "cohorts": 8, "max_months": 24}),
        ("clv_distribution", analytics.clv_distribution, {}),
        ("churn_risk_summary", analytics.churn_risk_summary, {}),
        ("repurchase_cycles", cycles.repurchase_cycles, {"as_of": as_of, "level": "product", "min_intervals": 3, "within_days": 14}),
        ("due_customers", cycles.due_customers, {"as_of": as_of, "level": "product", "within_days": 14, "min_intervals": 3}),
        ("bought_together", basket.bought_together, {"as_of": as_of, "level": "product", "min_support": 0.001, "min_orders": 2}),
        ("bought_next", basket.bought_next, {"as_of": as_of, "level": "product", "min_customers": 2}),
    ]


def _time(fn, *args, **kwargs) -> tuple[float, str | None]:
    start = time.perf_counter()
    try:
        fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a failing analysis is a result to print
        return time.perf_counter() - start, f"{type(exc).__name__}: {str(exc).splitlines()[0][:90]}"
    return time.perf_counter() - start, None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", default=None, help="DuckDB file to create or reuse (kept afterwards)")
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory limit (default: the console's)")
    args = parser.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="bench_analytics_")
    path = Path(args.keep) if args.keep else Path(tmp.name) / "shop.duckdb"
    reuse = path.exists()
    if args.memory_limit:
        os.environ["CRM_DB_MEMORY_LIMIT"] = args.memory_limit
    store = Store(path)
    if not reuse:
        print(f"generated: {generate(store, args.customers)}")
    if not reuse or model.stored_as_of(store) is None:
        model.rebuild(store)
    as_of = model.stored_as_of(store)
    limit = store.scalar("SELECT current_setting('memory_limit')")
    print(f"{store.scalar('SELECT count(*) FROM customer_model'):,} customers, {store.table_count('order_lines'):,} lines; "
          f"as_of {as_of}; memory limit {limit}; median of {args.runs} runs; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    floor = statistics.median(_time(store.fetchall, PLAIN_FLOOR)[0] for _ in range(args.runs))
    print(f"{'plain DuckDB: lines joined to orders':42s} {floor:7.2f} s    1.00x")
    for name, fn, kwargs in [*analyses(as_of), ("build_recommendations", basket.build_recommendations, {})]:
        times, error = [], None
        for _ in range(args.runs):
            seconds, error = _time(fn, store, **kwargs)
            if error:
                break
            times.append(seconds)
        if error:
            print(f"{name:42s} FAILED after {seconds:.2f} s: {error}")
            continue
        median = statistics.median(times)
        print(f"{name:42s} {median:7.2f} s   {median / floor:5.2f}x")
    store.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
