"""One definition of a purchase and its revenue: the model, the analyses, the home page and the sidebar agree."""

from __future__ import annotations

import datetime as dt

from crm_core import model
from crm_core.analytics import overview
from crm_core.analytics import value as analytics
from crm_core.db import Store
from crm_core.events import calendar as cal

AS_OF = dt.date(2026, 10, 31)


def _shop() -> Store:
    store = Store(":memory:")
    rows = [
        # order, customer, day, total, items, cancelled
        ("O1", "C1", "2026-10-01 10:00:00", 5000, 4500, False),
        ("O2", "C1", "2026-10-20 10:00:00", None, 3000, False),   # a generic file without a total: the items amount
        ("O3", "C2", "2026-10-25 10:00:00", None, None, False),   # neither: 0 yen
        ("O4", "C2", "2026-10-26 10:00:00", 9999, 9999, True),    # cancelled: kept, never counted
    ]
    for oid, cid, at, total, items, cancelled in rows:
        store.execute(
            "INSERT INTO orders (order_id, source, customer_id, ordered_at, total_amount, item_amount, cancelled) "
            "VALUES (?, 'generic', ?, ?, ?, ?, ?)", [oid, cid, at, total, items, cancelled])
    store.execute("INSERT INTO customers (customer_id, source) VALUES ('C1', 'generic'), ('C2', 'generic')")
    return store


def test_every_stage_counts_the_same_purchases_and_revenue():
    store = _shop()
    report = model.rebuild(store, AS_OF)
    table = model.customer_table(store).set_index("customer_id")
    assert float(table.loc["C1", "revenue"]) == 8000 and float(table.loc["C2", "revenue"]) == 0
    assert int(table.loc["C1", "orders"]) == 2 and int(table.loc["C2", "orders"]) == 1
    assert any("0円として集計" in w and "1件" in w for w in report.warnings)

    purchases = analytics.query_df(store, "WITH " + analytics.PURCHASES_CTE + " SELECT sum(revenue) AS r, count(*) AS n FROM purchases",
                                   analytics.period_params(AS_OF))
    assert float(purchases.r[0]) == 8000 and int(purchases.n[0]) == 3

    home = overview.shop_overview(store)
    assert home["orders"] == 3 and float(home["revenue_30d"]) == 8000 and home["customers"] == 2
    customers, orders, _ = overview.sidebar_counts(store)
    assert (customers, orders) == (2, 3)

    daily = cal.daily_sales(store, dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    assert float(daily.revenue.sum()) == 8000 and int(daily.orders.sum()) == 3
