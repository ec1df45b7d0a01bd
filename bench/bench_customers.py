"""Benchmark the customer model on a synthetic shop of millions of customers.

Generates (seeded, entirely in DuckDB SQL) a shop in the store schema into a
temporary DuckDB file, then prints the median of several runs of

(a) plain DuckDB: a hand-written query computing per-customer aggregates
    (a1: orders, revenue, first/last order, recency; a2: the same set our
    aggregate step computes, incl. purchase days, first-day spend, 12-month
    figures, sale-window labels and the last order),
(b) our aggregate step (:func:`crm_core.model.build.aggregate_orders`),
(c) the full :func:`crm_core.model.build.rebuild` including the BG/NBD and
    Gamma-Gamma fits and predictions,
(e) plain DuckDB storing a copy of the finished table
    (``CREATE TABLE AS SELECT * FROM customer_model``): the floor of the
    rebuild's last step, whatever computes the columns,
(d) ``lifetimes.utils.summary_data_from_transaction_data`` on the same
    transactions (in this venv if lifetimes imports, otherwise in a throwaway
    venv given by ``--lifetimes-python``),

with ratios.  Usage::

    python bench/bench_customers.py [--customers 2000000] [--runs 3]
        [--lifetimes-python /tmp/lt-venv/bin/python] [--keep FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from crm_core.db import Store  # noqa: E402

START = date(2023, 11, 1)
END = date(2026, 10, 31)
SEED = 20261122

_GENERATE = [
    # Uniform (0, 1) pseudo-random numbers from a hash: deterministic for a seed.
    "CREATE OR REPLACE MACRO bench_u(i, k, s) AS ((hash(i, k, s) % 1000003)::DOUBLE + 0.5) / 1000003",
    """
    CREATE OR REPLACE TEMP TABLE bench_cust AS
    WITH p AS (SELECT $seed::BIGINT AS s, $span::INTEGER AS span)
    SELECT i,
           'C' || lpad(CAST(i AS VARCHAR), 9, '0') AS customer_id,
           CAST(floor(bench_u(i, 1, s) * span) AS INTEGER) AS first_off,
           CASE WHEN bench_u(i, 5, s) < 0.03 THEN 60
                ELSE least(40, 1 + CAST(floor(ln(bench_u(i, 2, s)) / ln(0.5)) AS INTEGER)) END AS n_orders,
           CASE WHEN bench_u(i, 5, s) < 0.03 THEN 30.0 ELSE 15 + 120 * bench_u(i, 3, s) END AS gap,
           bench_u(i, 4, s) < 0.2 AS shopify,
           bench_u(i, 5, s) < 0.03 AS subscriber,
           bench_u(i, 6, s) AS u6,
           1000 + 12000 * bench_u(i, 13, s) * bench_u(i, 13, s) AS level
    FROM range($n) t(i), p
    """,
    """
    CREATE OR REPLACE TEMP TABLE bench_orders AS
    WITH p AS (SELECT $seed::BIGINT AS s, $start::TIMESTAMP AS t0, $end_ts::TIMESTAMP AS t1),
    x AS (SELECT c.*, unnest(range(n_orders)) AS k FROM bench_cust c)
    SELECT i * 64 + k AS oi, x.*,
           t0 + to_days(CAST(first_off + round(k * gap * (0.75 + 0.5 * bench_u(i * 64 + k, 7, s))) AS INTEGER))
              + to_seconds(CAST(floor(bench_u(i * 64 + k, 8, s) * 86400) AS BIGINT)) AS ordered_at,
           bench_u(i * 64 + k, 9, s) AS u9,
           bench_u(i * 64 + k, 10, s) AS u10,
           1 + CAST(floor(ln(bench_u(i * 64 + k, 11, s)) / ln(0.48)) AS INTEGER) AS n_lines
    FROM x, p
    WHERE t0 + to_days(CAST(first_off + round(k * gap * (0.75 + 0.5 * bench_u(i * 64 + k, 7, s))) AS INTEGER)) < t1
    """,
    """
    INSERT INTO orders (order_id, source, customer_id, ordered_at, status, cancelled, total_amount,
                        item_amount, shipping_fee, discount_amount, points_used, coupon_code,
                        prefecture, subscription_id, subscription_seq, buyer_name, email)
    SELECT 'O' || oi,
           CASE WHEN shopify THEN 'shopify' ELSE 'rakuten' END,
           customer_id, ordered_at,
           CASE WHEN u9 < 0.03 THEN '900' ELSE '500' END,
           u9 < 0.03,
           CAST(round(level * (0.4 + 1.2 * u10), -1) AS DECIMAL(18, 2)),
           CAST(round(level * (0.4 + 1.2 * u10), -1) AS DECIMAL(18, 2)),
           0,
           CASE WHEN u9 > 0.85 THEN 300 ELSE 0 END,
           0,
           CASE WHEN u9 > 0.85 THEN 'CP300' END,
           '東京都',
           CASE WHEN subscriber THEN 'S' || i END,
           CASE WHEN subscriber THEN k + 1 END,
           '顧客' || i,
           'c' || i || '@example.jp'
    FROM bench_orders
    """,
    """
    INSERT INTO order_lines (source, order_id, line_no, product_id, sku, product_name, category,
                             unit_price, quantity, line_amount)
    WITH p AS (SELECT $seed::BIGINT AS s),
    l AS (SELECT oi, shopify, unnest(range(n_lines)) AS line_no FROM bench_orders)
    SELECT CASE WHEN shopify THEN 'shopify' ELSE 'rakuten' END,
           'O' || oi, line_no + 1,
           'P' || CAST(floor(bench_u(oi * 16 + line_no, 12, s) * 500) AS INTEGER),
           NULL, '商品' || CAST(floor(bench_u(oi * 16 + line_no, 12, s) * 500) AS INTEGER), 'カテゴリ' ||
           CAST(floor(bench_u(oi * 16 + line_no, 12, s) * 20) AS INTEGER),
           1980, 1, 1980
    FROM l, p
    """,
    """
    INSERT INTO customers (customer_id, source, name, email, phone, gender, birthday, prefecture,
                           email_opt_in, line_user_id, orders_merged, first_seen_at)
    SELECT customer_id, CASE WHEN shopify THEN 'shopify' ELSE 'rakuten' END,
           '顧客' || i, 'c' || i || '@example.jp', NULL,
           CASE WHEN u6 < 0.6 THEN '女' WHEN u6 < 0.9 THEN '男' END,
           CASE WHEN u6 < 0.5 THEN DATE '1960-01-01' + CAST(floor(u6 * 2 * 16000) AS INTEGER) END,
           '東京都', u6 < 0.4,
           CASE WHEN u6 < 0.25 THEN 'U' || md5(CAST(i AS VARCHAR)) END,
           n_orders, NULL
    FROM bench_cust
    """,
    "DROP TABLE bench_orders",
    "DROP TABLE bench_cust",
]


def generate(store: Store, customers: int, seed: int = SEED) -> dict[str, int]:
    """Fill an empty store with a synthetic shop; return table sizes."""
    params = {
        "seed": seed,
        "span": (END - START).days,
        "n": customers,
        "start": START,
        "end_ts": END,
    }
    for sql in _GENERATE:
        needed = {k: v for k, v in params.items() if "$" + k in sql}
        store.execute(sql, needed)
    store.execute("CHECKPOINT")
    return {t: store.table_count(t) for t in ("customers", "orders", "order_lines")}


# ---------------------------------------------------------------------------
# Plain DuckDB baselines (hand-written, same store, same run)
# ---------------------------------------------------------------------------

PLAIN_MINIMAL = """
CREATE OR REPLACE TEMP TABLE plain_minimal AS
SELECT customer_id, count(*) AS orders, sum(total_amount) AS revenue,
       min(ordered_at) AS first_order_at, max(ordered_at) AS last_order_at,
       date_diff('day', CAST(max(ordered_at) AS DATE), $as_of) AS recency_days
FROM orders
WHERE customer_id IS NOT NULL AND NOT coalesce(cancelled, FALSE) AND ordered_at < $end_ts
GROUP BY customer_id
"""

PLAIN_SAME = """
CREATE OR REPLACE TEMP TABLE plain_same AS
WITH w AS (
    SELECT unnest($d::DATE[]) AS d, unnest($t0::BIGINT[]) AS t0, unnest($t1::BIGINT[]) AS t1,
           unnest($k::TINYINT[]) AS k
),
o AS (
    SELECT o.customer_id, o.ordered_at, CAST(o.ordered_at AS DATE) AS d, o.total_amount AS amt,
           o.coupon_code IS NOT NULL OR o.discount_amount > 0 AS coupon, coalesce(w.k, 0) AS k
    FROM orders o
    LEFT JOIN w ON w.d = CAST(o.ordered_at AS DATE)
     AND date_diff('microsecond', date_trunc('day', o.ordered_at), o.ordered_at) BETWEEN w.t0 AND w.t1 - 1
    WHERE o.customer_id IS NOT NULL AND NOT coalesce(o.cancelled, FALSE) AND o.ordered_at < $end_ts
),
per_day AS (
    SELECT customer_id, d, count(*) AS n, sum(amt) AS amt, min(ordered_at) AS first_at,
           max(ordered_at) AS last_at, count(*) FILTER (WHERE k > 0) AS sale_n,
           bool_or(coupon) AS coupon, arg_min(k, ordered_at) AS first_k
    FROM o GROUP BY ALL
)
SELECT customer_id, sum(n) AS orders, sum(amt) AS revenue, min(first_at) AS first_order_at,
       max(last_at) AS last_order_at, date_diff('day', max(d), $as_of) AS recency_days,
       count(*) - 1 AS frequency, date_diff('day', min(d), max(d)) AS recency,
       date_diff('day', min(d), $as_of) AS "T",
       (sum(amt) - arg_min(amt, d)) / greatest(count(*) - 1, 1) AS monetary,
       sum(n) FILTER (WHERE d >= $start12) AS orders_12m, sum(amt) FILTER (WHERE d >= $start12) AS revenue_12m,
       sum(sale_n) AS sale_orders, bool_or(coupon) AS used_coupon, arg_min(first_k, d) AS first_sale_kind
FROM per_day GROUP BY customer_id
"""

LIFETIMES_SCRIPT = r"""
import json, sys, time, statistics
import pandas as pd
from lifetimes.utils import summary_data_from_transaction_data
path, as_of, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
tx = pd.read_parquet(path)
times, out = [], None
for i in range(runs):
    t = time.perf_counter()
    out = summary_data_from_transaction_data(
        tx, "customer_id", "ordered_at", monetary_value_col="amount",
        observation_period_end=as_of, freq="D")
    times.append(time.perf_counter() - t)
    if times[0] > 90:
        break
print(json.dumps({"times": times, "customers": int(len(out)),
                  "sum_frequency": float(out.frequency.sum()), "sum_T": float(out["T"].sum()),
                  "sum_recency": float(out.recency.sum())}))
"""


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class _Clock:
    """Wall and process CPU seconds (DuckDB's threads run inside this process)."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def run(self, fn, *args):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn(*args)
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)
        return result

    @property
    def medians(self) -> tuple[float, float]:
        return _median(self.wall), _median(self.cpu)


def _peak_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def _lifetimes_python(explicit: str | None) -> tuple[str | None, str]:
    """An interpreter where lifetimes imports, and a note on where it came from."""
    if explicit:
        return explicit, "given"
    try:
        import lifetimes  # noqa: F401

        return sys.executable, "project venv"
    except Exception as exc:  # noqa: BLE001 - any import failure means: use another venv
        reason = f"does not import in the project venv ({type(exc).__name__}: {exc})"
    fallback = os.environ.get("LIFETIMES_PYTHON") or str(Path(tempfile.gettempdir()) / "lt-venv" / "bin" / "python")
    if Path(fallback).exists():
        return fallback, f"throwaway venv {Path(fallback).parent.parent}; lifetimes {reason}"
    return None, reason


def main(argv: list[str] | None = None) -> None:
    from crm_core import model
    from crm_core.model import build

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lifetimes-python", default=None,
                        help="interpreter with lifetimes (default: this one, else $LIFETIMES_PYTHON or /tmp/lt-venv)")
    parser.add_argument("--lifetimes-runs", type=int, default=3)
    parser.add_argument("--no-lifetimes", action="store_true", help="skip (d)")
    parser.add_argument("--keep", default=None, help="DuckDB file to create or reuse (kept afterwards)")
    args = parser.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="bench_customers_")
    path = Path(args.keep) if args.keep else Path(tmp.name) / "shop.duckdb"
    reuse = path.exists()
    store = Store(path)
    if not reuse:
        t = time.perf_counter()
        sizes = generate(store, args.customers)
        print(f"generated in {time.perf_counter() - t:.1f}s: {sizes}")
    else:
        sizes = {t: store.table_count(t) for t in ("customers", "orders", "order_lines")}
        print(f"reusing {path}: {sizes}")

    as_of = model.as_of_default(store)
    end_ts = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
    first_day = store.scalar("SELECT CAST(min(ordered_at) AS DATE) FROM orders")
    pieces = build._sale_day_pieces(first_day, as_of, store)  # same sale windows as the model
    minimal_params = {"as_of": as_of, "end_ts": end_ts}
    same_params = {**pieces, "as_of": as_of, "end_ts": end_ts, "start12": as_of - timedelta(days=364)}

    c_min, c_same, c_agg, c_full, c_write = _Clock(), _Clock(), _Clock(), _Clock(), _Clock()
    reports = []
    for _ in range(args.runs):  # interleaved, so load changes hit every variant alike
        c_min.run(store.execute, PLAIN_MINIMAL, minimal_params)
        c_same.run(store.execute, PLAIN_SAME, same_params)
        c_agg.run(model.aggregate_orders, store, as_of)
        reports.append(c_full.run(model.rebuild, store, as_of))
        c_write.run(store.execute, "CREATE OR REPLACE TABLE bench_copy AS SELECT * FROM customer_model")
    store.execute("DROP TABLE bench_copy")
    check = store.fetchone(
        """SELECT (SELECT count(*) FROM plain_minimal), (SELECT count(*) FROM customer_model),
                  (SELECT sum(revenue) FROM plain_minimal), (SELECT sum(revenue) FROM customer_model),
                  (SELECT sum(frequency) FROM plain_same), (SELECT sum("T") FROM plain_same)"""
    )
    model.aggregate_orders(store, as_of)
    ours = store.fetchone(
        "SELECT sum(n_days - 1), sum(date_diff('day', first_d, $as_of)), sum(date_diff('day', first_d, last_d)) FROM cm_agg",
        {"as_of": as_of},
    )
    store.execute("DROP TABLE IF EXISTS temp.main.cm_agg")
    store.execute("DROP TABLE IF EXISTS temp.main.plain_minimal")
    store.execute("DROP TABLE IF EXISTS temp.main.plain_same")

    (a1, a1c), (a2, a2c), (b, bc), (c, cc) = c_min.medians, c_same.medians, c_agg.medians, c_full.medians
    e, ec = c_write.medians
    print(f"\nas_of {as_of}; customers {check[1]:,}; medians of {args.runs} runs; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; wall s (process CPU s)")
    print(f"(a1) plain DuckDB, orders/revenue/first/last/recency : {a1:7.2f} ({a1c:6.2f})")
    print(f"(a2) plain DuckDB, the same aggregates as (b)        : {a2:7.2f} ({a2c:6.2f})")
    print(f"(b)  model.aggregate_orders                          : {b:7.2f} ({bc:6.2f})   "
          f"b/a2 = {b / a2:.2f}x ({bc / a2c:.2f}x CPU)   b/a1 = {b / a1:.2f}x ({bc / a1c:.2f}x CPU)")
    print(f"(c)  model.rebuild (incl. BG/NBD + Gamma-Gamma)      : {c:7.2f} ({cc:6.2f})   "
          f"c/a1 = {c / a1:.2f}x ({cc / a1c:.2f}x CPU)")
    steps = {k: _median([r.seconds.get(k, 0.0) for r in reports]) for k in reports[-1].seconds}
    print("     rebuild steps: " + ", ".join(f"{k} {v:.2f}s" for k, v in steps.items()))
    print(f"(e)  plain DuckDB, storing a copy of the finished table  : {e:7.2f} ({ec:6.2f})   "
          f"{e / c:.0%} of (c); {len(store.fetchall('DESCRIBE customer_model'))} columns")
    print(f"     fit on {reports[-1].fit_customers:,} customers; BG/NBD {reports[-1].bg_params}")
    print(f"     checks: customers plain {check[0]:,} = model {check[1]:,}; revenue {check[2]} = {check[3]}")
    print(f"             sum x {ours[0]:,} = plain {check[4]:,}; sum T {ours[1]:,} = plain {check[5]:,}")

    py, note = _lifetimes_python(args.lifetimes_python)
    if args.no_lifetimes:
        py, note = None, "skipped (--no-lifetimes)"
    if py is None:
        print(f"     peak RSS of this process {_peak_rss_gb():.1f} GB")
        print(f"(d)  lifetimes: not run: {note}")
        return
    parquet = Path(tmp.name) / "transactions.parquet"
    store.execute(
        "COPY (SELECT customer_id, ordered_at, CAST(total_amount AS DOUBLE) AS amount FROM orders "
        "WHERE customer_id IS NOT NULL AND NOT coalesce(cancelled, FALSE) AND ordered_at < $end_ts) "
        "TO '" + str(parquet).replace("'", "''") + "' (FORMAT parquet)",  # noqa: S608 - our own temp path
        {"end_ts": end_ts},
    )
    proc = subprocess.run(
        [py, "-c", LIFETIMES_SCRIPT, str(parquet), as_of.isoformat(), str(args.lifetimes_runs)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        print(f"(d)  lifetimes ({note}) failed: {proc.stderr.strip().splitlines()[-1:]}")
        return
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"     peak RSS of this process {_peak_rss_gb():.1f} GB")
    d = _median(res["times"])
    print(f"(d)  lifetimes summary_data_from_transaction_data     : {d:7.3f} s   "
          f"({len(res['times'])} run(s); {note})")
    print(f"     d/b = {d / b:.1f}x (our aggregate step is {d / b:.1f}x faster); d/c = {d / c:.1f}x "
          f"(target >= 5x); d/e = {d / e:.1f}x (the most any rebuild that stores this table can reach)")
    print(f"     checks: customers {res['customers']:,}; sum frequency {res['sum_frequency']:,.0f} = {ours[0]:,}; "
          f"sum T {res['sum_T']:,.0f} = {ours[1]:,}; sum recency {res['sum_recency']:,.0f} = {ours[2]:,}")
    store.close()
    tmp.cleanup()


if __name__ == "__main__":
    main()
