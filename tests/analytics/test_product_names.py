"""Product names: the master's, else the name on the product's latest order line (value.product_names_cte)."""

from __future__ import annotations

import pytest

from crm_core.analytics import value
from crm_core.db import Store
from tests.analytics_shop import add_order, add_product


@pytest.fixture
def shop():
    """Lines whose latest one has no name, no date, a tie, a cancelled order, and a master name.

    Orders by time: o1 (01-01) < o2 (02-01) < o3 (02-10, cancelled) < o4 = o5 (03-01 09:00) < o6 (03-05);
    o0 has no order time.
    """
    s = Store(":memory:")
    add_product(s, "PA", "マスターA", None)
    add_order(s, "o1", "c1", "2026-01-01", 0, [("PA", "行A", None, 1), ("PB", "古いB", None, 1), ("PC", "古いC", None, 1)])
    add_order(s, "o2", "c2", "2026-02-01", 0, [("PB", "新しいB", None, 1), ("PE", "普通E", None, 1)])
    add_order(s, "o3", "c3", "2026-02-10", 0, [("PE", "取消E", None, 1)], cancelled=True)
    add_order(s, "o4", "c4", "2026-03-01 09:00:00", 0, [("PF", "同時F1", None, 1), ("PB", None, None, 1)])
    add_order(s, "o5", "c5", "2026-03-01 09:00:00", 0, [("PF", "同時F2", None, 1)])
    add_order(s, "o6", "c6", "2026-03-05", 0, [("PG", "最新G", None, 1), ("PB", None, None, 1)])
    s.execute("INSERT INTO orders (order_id, source, customer_id, ordered_at) VALUES ('o0', 'test', 'c0', NULL)")
    s.execute(
        "INSERT INTO order_lines (source, order_id, line_no, product_id, product_name, unit_price, quantity, line_amount)"
        " VALUES ('test', 'o0', 1, 'PC', '日付なしC', 1, 1, 1), ('test', 'o0', 2, 'PD', '日付なしD', 1, 1, 1)"
    )
    yield s
    s.close()


def check(names: dict) -> None:
    assert names["PA"] == "マスターA"  # the master wins over every line
    assert names["PB"] == "新しいB"  # its two latest lines have no name: the latest named one
    assert names["PC"] == "古いC"  # a line of an order without a time is not the latest
    assert "PD" not in names  # only undated lines: no name
    assert names["PE"] == "取消E"  # a cancelled order's line counts like any other
    assert names["PF"] in {"同時F1", "同時F2"}  # a tie: one of the tied lines' names
    assert names["PG"] == "最新G"


def test_product_name_map_takes_the_master_else_the_latest_named_dated_line(shop):
    check(value.product_name_map(shop, ["PA", "PB", "PC", "PD", "PE", "PF", "PG", "PX"]))


@pytest.mark.parametrize("recent_days", [0, 1, 4, 5, 30, 60, 1000])
def test_names_are_the_same_however_few_recent_days_are_read_first(shop, recent_days):
    # Lines of the latest days' orders are read first; products without a named line there are read in full.
    df = shop.df(
        "WITH "  # noqa: S608 - fixed SQL fragments
        + value.PRODUCT_MASTER_CTE
        + ", ids AS (SELECT DISTINCT product_id FROM order_lines),"
        + value.product_names_cte("ids", recent_days=recent_days)
        + " SELECT product_id, product_name FROM product_names WHERE product_name IS NOT NULL"
    )
    names = dict(zip(df["product_id"], df["product_name"]))
    check(names)
    assert set(names) == {"PA", "PB", "PC", "PE", "PF", "PG"}
