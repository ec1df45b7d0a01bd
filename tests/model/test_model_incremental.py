"""The refresh after a daily import (only the touched customers aggregated) equals a full rebuild.

A seeded shop of a few hundred customers over two years (several orders a day, cancelled orders,
coupons, subscriptions, sale days, order lines, a product master), fully built once.  Then days of
new orders are imported the way the importer leaves them (the orders written, ``rebuild_customers``
for the touched customers, the refresh due) -- new customers, repeat orders, an order cancelled, an
order moved to another customer, a product renamed in the master -- and :func:`pipeline.refresh`
runs.  Its customer model, recommendations and saved-segment sizes must equal those of a full
rebuild of the same store (the same kept BG/NBD fit, so predictions are comparable exactly).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from crm_core import model, pipeline
from crm_core.analytics import basket
from crm_core.audience import library as segment_library
from crm_core.db import Store, mark_refresh_due
from crm_core.ingest.identity import rebuild_customers
from crm_core.model import build

PRODUCTS = [(f"P{i}", f"商品{i}", ["食品", "雑貨", "衣料"][i % 3]) for i in range(12)]
START = datetime(2024, 7, 1)
END = date(2026, 6, 30)  # the last day of the first import


def _insert_order(cur, rng, order_id: str, customer: str, at: datetime, *, cancelled: bool = False,
                  subscription: tuple[str, int] | None = None) -> None:
    total = float(round(rng.gamma(3, 1500)))
    coupon = "SPRING" if rng.random() < 0.1 else None
    discount = 300.0 if rng.random() < 0.05 else None
    missing = rng.random() < 0.02  # an order without amounts counts 0 and is reported
    cur.execute(
        "INSERT INTO orders (order_id, source, customer_id, ordered_at, status, cancelled, total_amount, "
        "coupon_code, discount_amount, subscription_id, subscription_seq, email) "
        "VALUES (?, 'rakuten', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [order_id, customer, at, "900" if cancelled else "500", cancelled, None if missing else total, coupon,
         discount, subscription[0] if subscription else None, subscription[1] if subscription else None,
         customer.lower() + "@example.jp"],
    )
    for no in range(1, int(rng.integers(0, 4)) + 1):  # some orders have no lines
        pid, name, cat = PRODUCTS[int(rng.integers(0, len(PRODUCTS)))]
        blank = rng.random() < 0.3  # the line has no name: the product master's is used
        cur.execute(
            "INSERT INTO order_lines (source, order_id, line_no, product_id, product_name, category, "
            "unit_price, quantity, line_amount) VALUES ('rakuten', ?, ?, ?, ?, ?, ?, 1, ?)",
            [order_id, no, pid, None if blank else name, None if blank else cat, total / 2, total / 2],
        )


def _shop(seed: int) -> Store:
    rng = np.random.default_rng(seed)
    store = Store(":memory:")
    with store.transaction() as cur:
        cur.executemany("INSERT INTO products (product_id, product_name, category, import_id) VALUES (?, ?, ?, 1)", PRODUCTS)
        span = (END - START.date()).days
        for i in range(300):
            customer = f"C{i:04d}"
            at = START + timedelta(days=int(rng.integers(0, span)), hours=int(rng.integers(8, 22)))
            sub = f"SUB{i}" if i % 11 == 0 else None
            k = 0
            while at.date() <= END and k < 25:
                _insert_order(cur, rng, f"O{i}-{k}", customer, at, cancelled=rng.random() < 0.05,
                              subscription=(sub, k + 1) if sub else None)
                if i % 9 == 0 and k == 1:  # two orders in one day
                    _insert_order(cur, rng, f"O{i}-{k}b", customer, at + timedelta(minutes=40))
                k += 1
                at += timedelta(days=float(rng.exponential(25 if sub else 70)) + 0.01)
                if rng.random() < 0.2:
                    break
        rebuild_customers(cur)
    return store


def _import_day(store: Store, rng, day: date, tag: str) -> None:
    """One day of orders, written as an orders import leaves them (touched customers, refresh due)."""
    with store.transaction() as cur:
        cur.execute("CREATE OR REPLACE TEMP TABLE touched_customers (customer_id VARCHAR)")
        for j in range(25):  # repeat buyers and new customers
            customer = f"C{int(rng.integers(0, 300)):04d}" if j % 5 else f"N{tag}{j}"
            sub = None
            if j == 1:  # a subscription delivery
                customer, sub = "C0000", ("SUB0", 99)
            at = datetime.combine(day, datetime.min.time()) + timedelta(hours=int(rng.integers(8, 22)))
            _insert_order(cur, rng, f"D{tag}-{j}", customer, at, subscription=sub)
            cur.execute("INSERT INTO touched_customers VALUES (?)", [customer])
        # a changed order: cancelled; another moved to a new customer (both customers touched)
        for order_id, change in ((f"O{int(rng.integers(0, 300))}-0", "cancel"), (f"O{int(rng.integers(0, 300))}-0", "move")):
            cur.execute("INSERT INTO touched_customers SELECT customer_id FROM orders WHERE order_id = ?", [order_id])
            if change == "cancel":
                cur.execute("UPDATE orders SET cancelled = TRUE, status = '900' WHERE order_id = ?", [order_id])
            else:
                cur.execute("UPDATE orders SET customer_id = ?, email = ? WHERE order_id = ?",
                            [f"M{tag}", f"m{tag}@example.jp", order_id])
                cur.execute("INSERT INTO touched_customers VALUES (?)", [f"M{tag}"])
        rebuild_customers(cur, touched="touched_customers")
        mark_refresh_due(cur)
        cur.execute("DROP TABLE temp.main.touched_customers")


def _state(store: Store) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, int]]:
    table = store.df("SELECT * FROM customer_model ORDER BY customer_id")
    recs = store.df("SELECT * FROM customer_recommendations ORDER BY ALL")
    sizes = dict(store.fetchall(
        "SELECT segment_id, arg_max(customers, measured_at) FROM segment_sizes GROUP BY 1 ORDER BY 1"
    ))
    return table, recs, sizes


@pytest.mark.parametrize("seed", [3, 11])
def test_a_daily_refresh_equals_a_full_rebuild(monkeypatch, seed):
    rng = np.random.default_rng(seed + 100)
    store = _shop(seed)
    monkeypatch.setattr(build, "_now_jst", lambda: datetime(2026, 7, 1, 9, 0))
    segment_library.save_segment(store, "リピーター", {"all": [{"field": "orders", "op": "gte", "value": 2}]})
    segment_library.save_segment(store, "最近", {"all": [{"field": "recency_days", "op": "lte", "value": 30}]})
    pipeline.refresh(store)  # the first import's refresh: everyone
    first = model.last_report(store)
    assert first["touched"] is None and first["facts"]["complete"]

    # day 1, then two days later (the 12-month window moves by more than one day), then a day
    # with a product renamed in the master only
    for step, day in enumerate([END + timedelta(days=1), END + timedelta(days=3), END + timedelta(days=4)]):
        if step == 2:
            with store.transaction() as cur:
                cur.execute("INSERT INTO products (product_id, product_name, category, import_id) VALUES (?, ?, ?, 2)", ["P3", "商品3（新）", "新カテゴリ"])
        _import_day(store, rng, day, tag=str(step))
        touched = store.scalar("SELECT count(DISTINCT customer_id) FROM refresh_touched")
        pipeline.refresh(store)
        report = model.last_report(store)
        assert report["touched"] == touched > 0, "the refresh aggregated only the touched customers"
        assert report["as_of"] == day.isoformat()
        delta = _state(store)

        full = model.rebuild(store, reuse_fit=True)  # every customer from the orders, the same kept fit
        assert full.touched is None and full.fit_reused
        basket.build_recommendations(store)
        sizes = segment_library.measure_all(store)
        table, recs, _ = _state(store)
        pd.testing.assert_frame_equal(delta[0], table)
        pd.testing.assert_frame_equal(delta[1], recs)
        assert delta[2] == sizes
        assert model.last_report(store)["facts"] == report["facts"]
        stored = store.df("SELECT * FROM customer_model_facts ORDER BY customer_id")
        assert len(stored) == len(table)
    store.close()


def test_a_changed_sale_calendar_or_everyone_touched_aggregates_everyone(monkeypatch):
    rng = np.random.default_rng(7)
    store = _shop(5)
    monkeypatch.setattr(build, "_now_jst", lambda: datetime(2026, 7, 1, 9, 0))
    pipeline.refresh(store)
    _import_day(store, rng, END + timedelta(days=1), tag="a")
    with store.transaction() as cur:
        cur.execute("INSERT INTO refresh_touched VALUES (NULL)")  # e.g. a contacts file in the batch
    pipeline.refresh(store)
    assert model.last_report(store)["touched"] is None

    _import_day(store, rng, END + timedelta(days=2), tag="b")
    kept = model.last_report(store)["facts"]
    monkeypatch.setattr(build, "_sales_digest", lambda *a: "another calendar")
    pipeline.refresh(store)
    assert model.last_report(store)["touched"] is None
    assert model.last_report(store)["facts"]["as_of"] > kept["as_of"]
    store.close()


def test_a_build_for_an_earlier_day_is_not_reused_for_the_touched_customers(monkeypatch):
    rng = np.random.default_rng(8)
    store = _shop(6)
    monkeypatch.setattr(build, "_now_jst", lambda: datetime(2026, 7, 1, 9, 0))
    model.rebuild(store, as_of=END - timedelta(days=30))  # orders of the last month left out
    assert not model.last_report(store)["facts"]["complete"]
    _import_day(store, rng, END + timedelta(days=1), tag="c")
    pipeline.refresh(store)
    assert model.last_report(store)["touched"] is None
    store.close()


def test_clearing_the_data_drops_the_stored_aggregates():
    store = _shop(9)
    pipeline.refresh(store)
    assert store.has_table("customer_model_facts")
    store.clear_data()
    assert not store.has_table("customer_model_facts")
    store.close()
