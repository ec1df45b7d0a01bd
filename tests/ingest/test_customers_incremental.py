"""Recomputing only the touched customers gives the same ``customers`` table as a full rebuild.

Random small stores (orders that share e-mails and phones, contacts and LINE links matching them),
then a random change (new orders, orders moved to another customer or given new profile values);
``rebuild_customers(cur, touched=...)`` over the customers of the changed orders must equal a full
``rebuild_customers(cur)``.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_core.db import Store
from crm_core.ingest.identity import rebuild_customers

CUSTOMERS = [f"c{i}" for i in range(6)]
EMAILS = [None, "a@x.jp", "b@x.jp", "C@x.jp", "c@x.jp"]
PHONES = [None, "0311112222", "0900000000"]

_order = st.fixed_dictionaries({
    "customer_id": st.sampled_from(CUSTOMERS + ["X1"]),
    "day": st.integers(1, 9),
    "source": st.sampled_from(["rms", "shopify"]),
    "email": st.sampled_from(EMAILS),
    "phone": st.sampled_from(PHONES),
    "buyer_name": st.sampled_from([None, "山田", "佐藤"]),
    "email_opt_in": st.sampled_from([None, True, False]),
})
_contact = st.fixed_dictionaries({
    "email": st.sampled_from(EMAILS[1:] + [None]).map(lambda e: e.lower() if e else e),
    "phone": st.sampled_from(PHONES),
    "line_user_id": st.sampled_from([None, "U1", "U2"]),
    "tags": st.sampled_from([None, "vip"]),
    "import_id": st.integers(1, 3),
})
_link = st.fixed_dictionaries({
    "order_id": st.sampled_from([None, "o0", "o1", "o2"]),
    "phone": st.sampled_from(PHONES),
    "email": st.sampled_from(EMAILS[1:3]),
    "line_user_id": st.sampled_from(["U7", "U8"]),
    "import_id": st.integers(1, 3),
})
_change = st.fixed_dictionaries({
    "order": st.integers(0, 30),
    "customer_id": st.sampled_from(CUSTOMERS),
    "email": st.sampled_from(EMAILS),
})


def _insert_order(store, oid: str, o: dict) -> None:
    store.execute(
        "INSERT INTO orders (order_id, source, customer_id, ordered_at, email, phone, buyer_name, email_opt_in) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [oid, o["source"], o["customer_id"], dt.datetime(2026, 5, o["day"], 10), o["email"], o["phone"],
         o["buyer_name"], o["email_opt_in"]],
    )


def _customers(store: Store) -> pd.DataFrame:
    return store.df("SELECT * FROM customers ORDER BY customer_id")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_order, min_size=1, max_size=12),
    st.lists(_contact, max_size=4),
    st.lists(_link, max_size=3),
    st.lists(_order, max_size=4),
    st.lists(_change, max_size=3),
)
def test_touched_customers_only_equals_a_full_rebuild(orders, contacts, links, new_orders, changes):
    store = Store(":memory:")
    try:
        for i, o in enumerate(orders):
            _insert_order(store, f"o{i}", o)
        for c in contacts:
            store.execute("INSERT INTO contacts (source, email, phone, line_user_id, tags, import_id) "
                          "VALUES ('line', ?, ?, ?, ?, ?)",
                          [c["email"], c["phone"], c["line_user_id"], c["tags"], c["import_id"]])
        for link in links:
            store.execute("INSERT INTO line_links VALUES (?, ?, ?, ?, ?)",
                          [link["order_id"], link["phone"], link["email"], link["line_user_id"], link["import_id"]])
        with store.transaction() as cur:
            rebuild_customers(cur)

        with store.transaction() as cur:
            cur.execute("CREATE OR REPLACE TEMP TABLE touched_customers (customer_id VARCHAR)")
            for ch in changes:
                oid = f"o{ch['order'] % len(orders)}"
                cur.execute("INSERT INTO touched_customers SELECT customer_id FROM orders WHERE order_id = ?", [oid])
                cur.execute("UPDATE orders SET customer_id = ?, email = ? WHERE order_id = ?",
                            [ch["customer_id"], ch["email"], oid])
                cur.execute("INSERT INTO touched_customers VALUES (?)", [ch["customer_id"]])
            for i, o in enumerate(new_orders):
                _insert_order(cur, f"n{i}", o)
                cur.execute("INSERT INTO touched_customers VALUES (?)", [o["customer_id"]])
            counts = rebuild_customers(cur, touched="touched_customers")
        incremental = _customers(store)
        touched = store.fetchall("SELECT customer_id FROM refresh_touched WHERE customer_id IS NOT NULL")

        with store.transaction() as cur:
            full_counts = rebuild_customers(cur)
        pd.testing.assert_frame_equal(incremental, _customers(store))
        assert counts == full_counts
        wanted = {c["customer_id"] for c in changes} | {o["customer_id"] for o in new_orders}
        assert wanted <= {r[0] for r in touched}
        # a full rebuild leaves the "everyone" mark for the refresh
        assert store.fetchall("SELECT customer_id FROM refresh_touched") == [(None,)]
    finally:
        store.close()


def test_nothing_touched_keeps_the_table_and_reports_the_counts(store):
    for i, cid in enumerate(["c1", "c1", "c2"]):
        _insert_order(store, f"o{i}", {"customer_id": cid, "day": i + 1, "source": "rms", "email": None,
                                       "phone": None, "buyer_name": None, "email_opt_in": None})
    with store.transaction() as cur:
        rebuild_customers(cur)
        cur.execute("DELETE FROM refresh_touched")
        cur.execute("CREATE OR REPLACE TEMP TABLE touched_customers (customer_id VARCHAR)")
        counts = rebuild_customers(cur, touched="touched_customers")
    assert counts == {"customers": 2, "orders_merged": 1, "customers_without_key": 0}
    assert store.scalar("SELECT count(*) FROM refresh_touched") == 0


def test_the_refresh_empties_the_touched_list(store):
    from crm_core import pipeline
    from crm_core.db import mark_refresh_due

    for i, cid in enumerate(["c1", "c2"]):
        _insert_order(store, f"o{i}", {"customer_id": cid, "day": i + 1, "source": "rms", "email": None,
                                       "phone": None, "buyer_name": None, "email_opt_in": None})
    with store.transaction() as cur:
        cur.execute("CREATE OR REPLACE TEMP TABLE touched_customers AS SELECT 'c1' AS customer_id")
        rebuild_customers(cur, touched="touched_customers")
        mark_refresh_due(cur)
    assert store.fetchall("SELECT customer_id FROM refresh_touched") == [("c1",)]
    pipeline.refresh(store)
    assert store.scalar("SELECT count(*) FROM refresh_touched") == 0
    assert not pipeline.refresh_due(store)
