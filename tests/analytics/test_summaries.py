"""Summaries stored at refresh time (crm_core.analytics.summaries) equal the direct computation, or are not used."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest

from crm_core import pipeline
from crm_core.analytics import profit as P
from crm_core.analytics import summaries as S
from crm_core.db import mark_refresh_due
from crm_core.ingest import products as PR
from crm_core.model import build
from crm_core.pipeline import import_files
from tests import profit_shop as shop
from tests.fixtures import write_csv


def _direct(store) -> dict:
    return {name: fn(store) for name, fn in S.SUMMARIES.items()}


def test_the_refresh_stores_every_summary_equal_to_the_direct_computation(store, tmp_path):
    shop.build(store, tmp_path)
    assert not store.has_table(S.TABLE)  # imports without a refresh store nothing
    pipeline.after_import(store)
    version = pipeline.data_version(store)
    direct = _direct(store)
    for name in S.SUMMARIES:
        found, value = S.stored(store, name, version)
        assert found, name
        assert value == direct[name], name
        assert type(value) is type(direct[name])
        if isinstance(value, dict):
            assert {k: type(v) for k, v in value.items()} == {k: type(v) for k, v in direct[name].items()}
        assert S.get(store, name, version) == direct[name]
    assert isinstance(direct["shop_overview"]["as_of"], dt.date)
    assert direct["profit_overview"]["gross_profit"] is not None  # the shop has costs: the profit is a real figure


def test_a_summary_of_older_data_is_not_used(store, tmp_path):
    shop.build(store, tmp_path)
    pipeline.after_import(store)
    before = _direct(store)
    more = write_csv(tmp_path / "more.csv", shop.ORDER_HEADER, [
        {**shop.order_rows()[0], "注文番号": "O9", "注文日時": "2025-02-01 10:00:00"}], "utf-8")
    import_files(store, [more], fmt="generic", mapping=shop.ORDER_MAP, kind="orders", rebuild_model=False)
    version = pipeline.data_version(store)
    now = _direct(store)
    assert now["sidebar_counts"] != before["sidebar_counts"]  # the new order counts
    for name in S.SUMMARIES:
        assert S.stored(store, name, version) == (False, None), name
        assert S.get(store, name, version) == now[name]


def test_a_cost_change_makes_only_the_profit_summary_stale(store, tmp_path):
    shop.build(store, tmp_path)
    pipeline.after_import(store)
    PR.set_category_margin(store, "サプリ", 10)
    version = pipeline.data_version(store)
    assert S.stored(store, "profit_overview", version) == (False, None)
    assert S.get(store, "profit_overview", version) == S.SUMMARIES["profit_overview"](store)
    assert S.stored(store, "shop_overview", version)[0]


def test_clearing_the_data_drops_the_summaries(store, tmp_path):
    shop.build(store, tmp_path)
    pipeline.after_import(store)
    store.clear_data()
    assert not store.has_table(S.TABLE)
    assert S.get(store, "sidebar_counts", pipeline.data_version(store)) == S.SUMMARIES["sidebar_counts"](store)


def test_stored_values_keep_their_types():
    value = {"a": Decimal("934967290.00"), "d": dt.date(2026, 10, 30), "t": dt.datetime(2026, 10, 30, 23, 59, 50),
             "tuple": (1, 2.5, None, "顧客"), "f": 0.1 + 0.2, "n": None, "b": True, "l": [Decimal("1.5")]}
    assert S.decode(S.encode(value)) == value
    assert [type(v) for v in S.decode(S.encode(value)).values()] == [type(v) for v in value.values()]


# -- per-customer gross profit stored at refresh (a segment's profit is a sum over its customers) --------------
RULES = ({"all": []}, {"all": [{"field": "orders", "op": "gte", "value": 2}]},
         {"all": [{"field": "orders", "op": "lt", "value": 2}]})


def test_the_refresh_stores_each_customers_gross_profit_and_a_segments_profit_reads_it(store, tmp_path):
    from crm_core.audience import segments as SEG

    shop.build(store, tmp_path)
    pipeline.after_import(store)
    version = pipeline.data_version(store)
    assert S.table_current(store, "customer_profit", version)
    stored = store.df(f"SELECT * FROM {S.TABLES['customer_profit'][0]} ORDER BY customer_id")
    direct = P.customer_profit(store)
    assert list(stored["customer_id"]) == list(direct["customer_id"])
    for col in ("line_revenue", "covered_revenue", "gross_profit"):
        assert stored[col].fillna(-1).tolist() == direct[col].fillna(-1).tolist(), col
    # by hand (tests/profit_shop.py): a 800 + 1,200 (Z-1 unknown), b 400 + 500, c 600
    assert sorted(stored["gross_profit"].tolist()) == [600.0, 900.0, 2000.0]
    for rule in RULES:
        assert SEG.profit_summary(store, rule, data_version=version) == SEG.profit_summary(store, rule), rule
    # and it is the stored table that is read (one customer's stored figure moved by 1 yen moves the sum)
    store.execute(f"UPDATE {S.TABLES['customer_profit'][0]} SET gross_profit = gross_profit + 1")
    assert SEG.profit_summary(store, RULES[0], data_version=version)["gross_profit"] == 3500 + 3
    assert SEG.profit_summary(store, RULES[0])["gross_profit"] == 3500


def test_stored_customer_profit_of_older_data_or_costs_is_not_used(store, tmp_path):
    from crm_core.audience import segments as SEG

    shop.build(store, tmp_path)
    pipeline.after_import(store)
    store.execute(f"UPDATE {S.TABLES['customer_profit'][0]} SET gross_profit = gross_profit + 1")  # marks what is read
    PR.set_category_margin(store, "雑貨", 25)  # Z-1 (4,000) gets a cost: a's profit + 1,000
    version = pipeline.data_version(store)
    assert not S.table_current(store, "customer_profit", version)
    assert SEG.profit_summary(store, RULES[0], data_version=version)["gross_profit"] == 3500 + 1000
    pipeline.after_settings_change(store)  # a rebuild writes it again, with the new cost
    version = pipeline.data_version(store)
    assert S.table_current(store, "customer_profit", version)
    assert SEG.profit_summary(store, RULES[0], data_version=version)["gross_profit"] == 4500
    more = write_csv(tmp_path / "more.csv", shop.ORDER_HEADER, [
        {**shop.order_rows()[5], "注文番号": "O9", "注文日時": "2025-02-01 10:00:00"}], "utf-8")
    import_files(store, [more], fmt="generic", mapping=shop.ORDER_MAP, kind="orders", rebuild_model=False)
    version = pipeline.data_version(store)
    assert not S.table_current(store, "customer_profit", version)  # c bought again: the stored sums are old
    assert SEG.profit_summary(store, RULES[0], data_version=version) == SEG.profit_summary(store, RULES[0])
    assert SEG.profit_summary(store, RULES[0], data_version=version)["gross_profit"] == 4500 + 600


def test_clearing_the_data_drops_the_stored_customer_profit(store, tmp_path):
    shop.build(store, tmp_path)
    pipeline.after_import(store)
    store.clear_data()
    assert not store.has_table(S.TABLES["customer_profit"][0])
    assert not S.table_current(store, "customer_profit", pipeline.data_version(store))


def test_a_daily_refresh_recomputes_only_the_touched_customers_profit_and_equals_the_full_computation(monkeypatch):
    from tests.model import test_model_incremental as shop2

    rng = np.random.default_rng(7)
    store = shop2._shop(5)
    with store.transaction() as cur:  # costs: unit costs for half the products, a category rate for 食品
        cur.execute("UPDATE products SET unit_cost = 400 + 100 * CAST(substr(product_id, 2) AS INTEGER) "
                    "WHERE CAST(substr(product_id, 2) AS INTEGER) % 2 = 0")
    PR.set_category_margin(store, "食品", 30)
    monkeypatch.setattr(build, "_now_jst", lambda: dt.datetime(2026, 7, 1, 9, 0))
    mark_refresh_due(store)
    pipeline.refresh(store)
    first = S.stored(store, "customer_profit", pipeline.data_version(store))[1]
    assert first["touched_only"] is False and first["computed"] == store.scalar(
        f"SELECT count(*) FROM {S.TABLES['customer_profit'][0]}")

    def same_as_direct() -> None:
        got = store.df(f"SELECT * FROM {S.TABLES['customer_profit'][0]} ORDER BY customer_id").fillna(-1.0)
        want = P.customer_profit(store)[["customer_id", "line_revenue", "covered_revenue", "gross_profit"]].fillna(-1.0)
        assert list(got["customer_id"]) == list(want["customer_id"])
        for col in ("line_revenue", "covered_revenue", "gross_profit"):
            assert got[col].tolist() == pytest.approx(want[col].tolist(), rel=1e-12), col
        assert (got["gross_profit"] > 0).any()

    same_as_direct()
    for step, day in enumerate([shop2.END + dt.timedelta(days=1), shop2.END + dt.timedelta(days=3)]):
        shop2._import_day(store, rng, day, tag=str(step))  # new and repeat buyers, an order cancelled, one moved
        touched = store.scalar("SELECT count(DISTINCT customer_id) FROM refresh_touched")
        pipeline.refresh(store)
        version = pipeline.data_version(store)
        assert S.table_current(store, "customer_profit", version)
        info = S.stored(store, "customer_profit", version)[1]
        assert info["touched_only"] is True and info["computed"] == touched < 60
        same_as_direct()
    # P1 (no unit cost, 雑貨: no rate) moved to 食品 (30 %): its buyers' profit changes although no cost figure did;
    # the next refresh computes everyone again
    with store.transaction() as cur:
        cur.execute("UPDATE products SET category = '食品' WHERE product_id = 'P1'")
    shop2._import_day(store, rng, shop2.END + dt.timedelta(days=4), tag="c")
    pipeline.refresh(store)
    assert S.stored(store, "customer_profit", pipeline.data_version(store))[1]["touched_only"] is False
    same_as_direct()
    store.close()
