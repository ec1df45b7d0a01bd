"""Row builders and the seeded shop for analytics, chart and page tests (shared; no tests here).

:func:`add_order`, :func:`add_product` and :func:`add_model` write tiny
hand-checkable fixtures row by row; :func:`seeded_shop` generates a bigger
reproducible shop (about 2,000 customers over two years; nothing generated is
committed); :func:`frame` and :func:`assert_table` compare result tables.
"""

from __future__ import annotations

import datetime as dt
import math
import random

import pandas as pd
import pytest

from crm_core.analytics import value as analytics
from crm_core.db import Store

SOURCE = "test"


# --------------------------------------------------------------------------
# Fixture builders
# --------------------------------------------------------------------------


def add_order(
    store: Store,
    order_id: str,
    customer_id: str | None,
    day: str,
    total: float,
    lines: list[tuple] = (),
    cancelled: bool = False,
    subscription: tuple[str, int | None] | None = None,
    source: str = SOURCE,
) -> None:
    """Insert one order and its lines.

    ``lines`` holds ``(product_id, product_name, category, amount)`` tuples;
    ``day`` is ``YYYY-MM-DD`` (10:00 JST) or a full timestamp.
    """
    ts = dt.datetime.fromisoformat(day if len(day) > 10 else day + " 10:00:00")
    sub_id, seq = subscription if subscription else (None, None)
    store.execute(
        """INSERT INTO orders (order_id, source, customer_id, ordered_at, cancelled, total_amount,
                               subscription_id, subscription_seq)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        [order_id, source, customer_id, ts, cancelled, total, sub_id, seq],
    )
    for no, (product_id, name, category, amount) in enumerate(lines, start=1):
        store.execute(
            """INSERT INTO order_lines (source, order_id, line_no, product_id, product_name, category,
                                        unit_price, quantity, line_amount)
               VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)""",
            [source, order_id, no, product_id, name, category, amount, amount],
        )


def add_product(store: Store, product_id: str, name: str, category: str | None, import_id: int = 1) -> None:
    """Insert one product-master row."""
    store.execute("INSERT INTO products (product_id, product_name, category, import_id) VALUES (?, ?, ?, ?)", [product_id, name, category, import_id])


MODEL_COLUMNS = {
    "customer_id": "VARCHAR",
    "name": "VARCHAR",
    "revenue": "DOUBLE",
    "revenue_12m": "DOUBLE",
    "r_score": "INTEGER",
    "f_score": "INTEGER",
    "m_score": "INTEGER",
    "rfm_segment": "VARCHAR",
    "rank": "VARCHAR",
    "acquisition_event": "VARCHAR",
    "p_alive": "DOUBLE",
    "churn_probability_90d": "DOUBLE",
    "churn_risk": "VARCHAR",
    "predicted_clv_365d": "DOUBLE",
    "as_of": "DATE",
}


def add_model(store: Store, rows: list[dict]) -> None:
    """Create ``customer_model`` with the contract columns this package reads."""
    cols = ", ".join(f"{name} {kind}" for name, kind in MODEL_COLUMNS.items())
    store.execute(f"CREATE OR REPLACE TABLE customer_model ({cols})")
    names = list(MODEL_COLUMNS)
    for row in rows:
        store.execute(
            f"INSERT INTO customer_model ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
            [row.get(name) for name in names],
        )


PRODUCTS = [
    ("P01", "化粧水 しっとり", "スキンケア", 3300),
    ("P02", "乳液", "スキンケア", 3520),
    ("P03", "美容液", "スキンケア", 6600),
    ("P04", "クレンジング", "スキンケア", 2750),
    ("P05", "リップ", "メイク", 1980),
    ("P06", "ファンデーション", "メイク", 4400),
    ("P07", "シャンプー", "ヘアケア", 2420),
    ("P08", "トリートメント", "ヘアケア", 2640),
    ("P09", "サプリ 定期", "サプリ", 4980),
    ("P10", "ギフトセット", "ギフト", 8800),
]


def seeded_shop(store: Store, customers: int = 2000, seed: int = 1, as_of: dt.date = dt.date(2026, 10, 31)) -> None:
    """A reproducible shop of about ``customers`` customers over two years.

    Repeat buyers come back after roughly product-specific cycles, some buy a
    subscription (P09) with numbered deliveries, a few orders are cancelled.
    Also creates a ``customer_model`` with plausible contract values.
    """
    rng = random.Random(seed)
    start = as_of - dt.timedelta(days=730)
    orders, lines = [], []
    model = []
    segments = analytics.RFM_SEGMENTS
    events = ("スーパーSALE", "お買い物マラソン", "通常")
    n_order = 0
    for c in range(customers):
        cid = f"C{c:05d}"
        day = start + dt.timedelta(days=rng.randrange(0, 720))
        subscriber = rng.random() < 0.08
        sub_seq = 0
        revenue = 0.0
        while day <= as_of:
            n_order += 1
            oid = f"O{n_order:07d}"
            picks = rng.sample(PRODUCTS, rng.choice((1, 1, 1, 2, 2, 3)))
            if subscriber:
                picks = [PRODUCTS[8]] + [p for p in picks if p[0] != "P09"][:1]
                sub_seq += 1
            amount = sum(p[3] for p in picks)
            cancelled = rng.random() < 0.03
            if not cancelled:
                revenue += amount
            orders.append(
                {
                    "order_id": oid,
                    "source": SOURCE,
                    "customer_id": cid,
                    "ordered_at": dt.datetime.combine(day, dt.time(rng.randrange(0, 24), 0)),
                    "cancelled": cancelled,
                    "total_amount": float(amount),
                    "subscription_id": f"S{c:05d}" if subscriber else None,
                    "subscription_seq": sub_seq if subscriber else None,
                }
            )
            for no, (pid, name, category, price) in enumerate(picks, start=1):
                lines.append(
                    {
                        "source": SOURCE,
                        "order_id": oid,
                        "line_no": no,
                        "product_id": pid,
                        "product_name": name,
                        "category": category,
                        "unit_price": float(price),
                        "quantity": 1,
                        "line_amount": float(price),
                    }
                )
            if subscriber:
                if rng.random() < 0.15:
                    break
                day += dt.timedelta(days=rng.randint(27, 33))
            else:
                if rng.random() < 0.55:
                    break
                day += dt.timedelta(days=rng.randint(20, 120))
        churn = rng.random()
        model.append(
            {
                "customer_id": cid,
                "name": f"顧客{c}",
                "revenue": revenue,
                "revenue_12m": revenue * rng.random(),
                "r_score": rng.randint(1, 5),
                "f_score": rng.randint(1, 5),
                "m_score": rng.randint(1, 5),
                "rfm_segment": rng.choice(segments),
                "acquisition_event": rng.choice(events),
                "p_alive": 1 - churn,
                "churn_probability_90d": churn,
                "churn_risk": "低" if churn < 0.33 else ("中" if churn <= 0.66 else "高"),
                "predicted_clv_365d": rng.random() * 40000,
                "as_of": as_of,
            }
        )
    cur = store.cursor()
    for table, rows in (("orders", orders), ("order_lines", lines)):
        frame = pd.DataFrame(rows)
        cur.register("seed_rows", frame)
        cur.execute(f"INSERT INTO {table} BY NAME SELECT * FROM seed_rows")  # noqa: S608 - fixed names
        cur.unregister("seed_rows")
    for pid, name, category, _ in PRODUCTS:
        add_product(store, pid, name, category)
    frame = pd.DataFrame(model)
    cols = ", ".join(f"{name} {kind}" for name, kind in MODEL_COLUMNS.items())
    cur.execute(f"CREATE OR REPLACE TABLE customer_model ({cols})")
    cur.register("seed_rows", frame)
    cur.execute("INSERT INTO customer_model BY NAME SELECT * FROM seed_rows")
    cur.unregister("seed_rows")
    cur.execute("INSERT INTO customers (customer_id, source, name) SELECT customer_id, 'test', name FROM customer_model")


def frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    """An expected table."""
    return pd.DataFrame(rows, columns=columns)


def assert_table(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Compare values column by column (dtype-agnostic, floats to 1e-9, NA == NA)."""
    assert list(actual.columns) == list(expected.columns)
    assert len(actual) == len(expected), f"rows: {len(actual)} != {len(expected)}\n{actual}"
    for col in expected.columns:
        for i, (a, e) in enumerate(zip(actual[col].tolist(), expected[col].tolist(), strict=True)):
            a_missing = a is None or a is pd.NA or (isinstance(a, float) and math.isnan(a))
            e_missing = e is None or e is pd.NA or (isinstance(e, float) and math.isnan(e))
            if e_missing or a_missing:
                assert a_missing and e_missing, f"{col}[{i}]: {a!r} != {e!r}"
            elif isinstance(e, float):
                assert a == pytest.approx(e, abs=1e-9), f"{col}[{i}]: {a!r} != {e!r}"
            else:
                assert a == e, f"{col}[{i}]: {a!r} != {e!r}"
