"""Summaries stored at refresh time (crm_core.analytics.summaries) equal the direct computation, or are not used."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from crm_core import pipeline
from crm_core.analytics import summaries as S
from crm_core.ingest import products as PR
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
