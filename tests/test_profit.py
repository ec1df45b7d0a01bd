"""Gross profit: product master imports, SKU / JAN links, category rates, unknown costs (tests/profit_shop.py)."""

from __future__ import annotations

import math

import pytest

from crm_core.analytics import profit as P
from crm_core.errors import InputError
from crm_core.ingest import products as PR
from crm_core.pipeline import import_files
from tests import profit_shop as shop


def _cid(store, who: str) -> str:
    return store.scalar("SELECT customer_id FROM customers WHERE email = ?", [f"{who}@example.jp"])


def test_order_gross_profit_table(store, tmp_path):
    shop.build(store, tmp_path)
    df = P.order_profit(store)
    got = [(r.order_id, r.line_revenue, None if r.covered_revenue != r.covered_revenue or r.covered_revenue is None else r.covered_revenue,
            None if r.gross_profit is None or (isinstance(r.gross_profit, float) and math.isnan(r.gross_profit)) else r.gross_profit,
            bool(r.fully_costed)) for r in df.itertuples()]
    assert got == [
        ("O1", 5000.0, 5000.0, 2000.0, True),
        ("O2", 1000.0, 1000.0, 400.0, True),
        ("O3", 2000.0, 2000.0, 500.0, True),
        ("O4", 4000.0, None, None, False),
        ("O5", 1000.0, 1000.0, 600.0, True),
    ]


def test_customer_gross_profit_and_margin(store, tmp_path):
    shop.build(store, tmp_path)
    df = P.customer_profit(store).set_index("customer_id")
    a, b, c = (df.loc[_cid(store, w)] for w in "abc")
    assert (a.line_revenue, a.covered_revenue, a.gross_profit) == (9000.0, 5000.0, 2000.0)
    assert a.margin_rate == pytest.approx(0.4) and a.coverage == pytest.approx(5 / 9)
    assert (b.gross_profit, b.margin_rate, b.coverage) == (900.0, pytest.approx(0.3), 1.0)
    assert (c.gross_profit, c.margin_rate) == (600.0, pytest.approx(0.6))


def test_shop_coverage_says_what_is_unknown(store, tmp_path):
    shop.build(store, tmp_path)
    ov = P.profit_overview(store)
    assert ov["line_revenue"] == 13000 and ov["covered_revenue"] == 9000 and ov["gross_profit"] == 3500
    assert ov["coverage"] == pytest.approx(9 / 13)
    assert ov["margin_rate"] == pytest.approx(3500 / 9000)
    assert (ov["products"], ov["products_costed"]) == (6, 5)


def test_without_costs_gross_profit_is_unknown_not_zero(store, tmp_path):
    orders = shop.write_csv(tmp_path / "o.csv", shop.ORDER_HEADER, shop.order_rows(), "utf-8")
    import_files(store, [orders], fmt="generic", mapping=shop.ORDER_MAP, kind="orders", rebuild_model=False)
    ov = P.profit_overview(store)
    assert ov["gross_profit"] is None and ov["coverage"] == 0 and ov["margin_rate"] is None


def test_predicted_gross_profit_is_clv_times_margin(store, tmp_path):
    shop.build(store, tmp_path, rebuild_model=True)
    _set_clv(store, a=10000, b=5000, c=2000)
    df = P.customer_profit(store).set_index("customer_id")
    got = {w: df.loc[_cid(store, w), "predicted_gross_profit_365d"] for w in "abc"}
    assert got == {"a": pytest.approx(4000), "b": pytest.approx(1500), "c": pytest.approx(1200)}


def test_product_formats_detected(store, tmp_path):
    rep = import_files(store, [shop.shopify_products(tmp_path / "p.csv")], rebuild_model=False)
    assert rep.files[0].format == "shopify_products" and rep.files[0].products == 1
    row = store.fetchone("SELECT product_id, sku, jan, unit_cost, category FROM products")
    assert row == ("P3", "P3", "4901234567894", 1500, "サプリ")
    rep = import_files(store, [shop.rms_items(tmp_path / "item.csv")], rebuild_model=False)
    assert rep.files[0].format == "rakuten_items"


def test_rms_item_export_keeps_console_costs(store, tmp_path):
    PR.set_product_costs(store, [{"product_id": "P1", "unit_cost": 650, "product_name": "旧名"}])
    import_files(store, [shop.rms_items(tmp_path / "item.csv")], rebuild_model=False)
    assert store.fetchone("SELECT product_name, sku, unit_cost, cost_source FROM products WHERE product_id = 'P1'") == (
        "化粧水P1", "S1", 650, PR.CONSOLE_SOURCE)


def test_console_edits_and_validation(store, tmp_path):
    shop.build(store, tmp_path)
    assert PR.set_product_costs(store, [{"product_id": "Z-1", "margin_rate": 25}]) == 1
    assert P.profit_overview(store)["coverage"] == 1.0
    assert P.order_profit(store, ["O4"]).iloc[0]["gross_profit"] == pytest.approx(1000.0)
    table = PR.cost_table(store).set_index("product_id")
    assert table.loc["Z-1", "margin_rate"] == pytest.approx(0.25) and table.loc["Z-1", "revenue"] == 4000
    with pytest.raises(InputError):
        PR.set_product_costs(store, [{"product_id": "P1", "unit_cost": -1}])
    with pytest.raises(InputError):
        PR.set_category_margin(store, "サプリ", 150)
    PR.set_category_margin(store, "サプリ", None)
    assert P.order_profit(store, ["O5"]).iloc[0]["gross_profit"] is None or math.isnan(P.order_profit(store, ["O5"]).iloc[0]["gross_profit"])
    cats = PR.category_margins(store)
    assert list(cats["category"]) == ["サプリ", "スキンケア", "雑貨"]


def test_segment_gross_profit(store, tmp_path):
    from crm_core.audience import segments as S

    shop.build(store, tmp_path, rebuild_model=True)
    everyone = {"all": []}
    got = S.profit_summary(store, everyone)
    assert got["gross_profit"] == 3500 and got["coverage"] == pytest.approx(9 / 13)
    assert got["margin_rate"] == pytest.approx(3500 / 9000)
    two_orders = {"all": [{"field": "orders", "op": "gte", "value": 2}]}  # customers a and b
    got = S.profit_summary(store, two_orders)
    assert got["gross_profit"] == 2900 and got["coverage"] == pytest.approx(8000 / 12000)
    _set_clv(store, a=10000, b=5000, c=2000)
    got = S.profit_summary(store, two_orders)
    assert got["predicted_gross_profit_365d"] == pytest.approx(10000 * 0.4 + 5000 * 0.3)
    assert got["predicted_covered_share"] == 1.0


def _set_clv(store, **clv):
    """Give the tiny shop's customers known predictions (the BG/NBD fit needs more customers than three)."""
    for who, value in clv.items():
        store.execute("UPDATE customer_model SET predicted_clv_365d = ? WHERE customer_id = ?", [value, _cid(store, who)])


def test_gross_profit_by_category(store, tmp_path):
    shop.build(store, tmp_path)
    df = P.profit_by_category(store)
    got = [(r.category, r.line_revenue, r.covered_revenue, None if r.gross_profit != r.gross_profit else r.gross_profit)
           for r in df.itertuples()]
    # サプリ: P2 3,000 (gp 1,200) + Y-7 2,000 (500; the JAN-linked Shopify product is サプリ too) + Q-1 1,000 (600).
    assert got == [("サプリ", 6000.0, 6000.0, 2300.0), ("雑貨", 4000.0, 0.0, None), ("スキンケア", 3000.0, 3000.0, 1200.0)]
