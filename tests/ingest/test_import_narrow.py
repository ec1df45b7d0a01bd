"""Narrow order logs (one row per order, no product lines): the importer's shortcuts give the general path's result.

A clean file whose order ids are all different needs no per-order pass and no
joins for fields it does not have; these tests pin that such a file, and the
same orders read through the general path (a repeated order id, a bad row),
store the same values and the same change-detection hashes.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from crm_core.db import Store
from crm_core.ingest.importer import rejects_table
from crm_core.pipeline import import_files
from tests import fixtures as fx

HEADER = ["order", "member", "day", "amount"]
MAPPING = {"order": "order_id", "member": "customer_key", "day": "ordered_at", "amount": "total_amount"}
ROWS = [
    {"order": "n-1", "member": "M1", "day": "2025-06-01", "amount": "1,100"},
    {"order": "n-2", "member": "M2", "day": "2025-06-02", "amount": "2200"},
    {"order": "n-3", "member": "M1", "day": "2025-06-03", "amount": "330"},
    {"order": "n-4", "member": "M3", "day": "2025-06-04", "amount": "4400"},
]


def _imp(store: Store, path: Path, mapping: dict[str, str] = MAPPING, header: list[str] = HEADER):
    return import_files(store, [path], fmt="generic", mapping=mapping, kind="orders", rebuild_model=False)


def _orders(store: Store) -> list[tuple]:
    return store.fetchall(
        "SELECT order_id, customer_id, ordered_at, status, cancelled, total_amount, item_amount, prefecture, content_hash "
        "FROM orders ORDER BY order_id"
    )


def test_clean_narrow_file_imports_every_order(store, tmp_path):
    report = _imp(store, fx.write_csv(tmp_path / "n.csv", HEADER, ROWS, "utf-8"))
    d = report.to_dict()
    assert (d["orders_added"], d["orders_updated"], d["orders_unchanged"], d["rows_rejected"]) == (4, 0, 0, 0)
    assert report.customers == 3
    assert store.fetchall("SELECT order_id, total_amount FROM orders ORDER BY order_id") == [
        ("n-1", Decimal("1100")), ("n-2", Decimal("2200")), ("n-3", Decimal("330")), ("n-4", Decimal("4400")),
    ]
    assert store.scalar("SELECT count(*) FROM order_lines") == 0
    assert store.scalar("SELECT count(DISTINCT customer_id) FROM orders") == 3
    assert store.scalar("SELECT count(*) FROM orders WHERE cancelled OR status IS NOT NULL OR item_amount IS NOT NULL") == 0


def test_repeated_order_id_keeps_its_first_row(store, tmp_path):
    rows = [*ROWS, {"order": "n-2", "member": "M2", "day": "2025-06-09", "amount": "9999"}]
    report = _imp(store, fx.write_csv(tmp_path / "n.csv", HEADER, rows, "utf-8"))
    assert report.to_dict()["orders_added"] == 4
    assert store.fetchall("SELECT ordered_at::DATE::VARCHAR, total_amount FROM orders WHERE order_id = 'n-2'") == [
        ("2025-06-02", Decimal("2200"))
    ]


def test_bad_and_dateless_rows_are_rejected_the_rest_imported(store, tmp_path):
    rows = [
        *ROWS,
        {"order": "", "member": "M4", "day": "2025-06-05", "amount": "10"},  # row 6: no order id
        {"order": "n-6", "member": "M4", "day": "2025-06-06", "amount": "十円"},  # row 7: amount unreadable
        {"order": "n-7", "member": "M4", "day": "", "amount": "10"},  # row 8: no order date
    ]
    report = _imp(store, fx.write_csv(tmp_path / "n.csv", HEADER, rows, "utf-8"))
    d = report.to_dict()
    assert (d["orders_added"], d["rows_rejected"]) == (4, 3)
    rejects = {r["row_no"]: r["reason"] for r in rejects_table(store)}
    assert set(rejects) == {6, 7, 8}
    assert "注文番号が空です" in rejects[6]
    assert "「十円」を金額として読めません" in rejects[7]
    assert rejects[8] == "注文日時がありません"
    assert store.scalar("SELECT count(*) FROM orders") == 4


def test_same_orders_through_either_path_are_unchanged(store, tmp_path):
    """The clean file and the same orders with one order repeated (the general path) hash the same."""
    _imp(store, fx.write_csv(tmp_path / "a.csv", HEADER, ROWS, "utf-8"))
    before = _orders(store)
    again = _imp(store, fx.write_csv(tmp_path / "b.csv", HEADER, [*ROWS, ROWS[0]], "utf-8"))
    d = again.to_dict()
    assert (d["orders_added"], d["orders_updated"], d["orders_unchanged"]) == (0, 0, 4)
    assert _orders(store) == before


def test_fresh_store_general_path_stores_what_the_clean_path_stores(tmp_path):
    """Into two empty stores: the clean file, and the same orders with one row repeated (general path)."""
    one, two = Store(":memory:"), Store(":memory:")
    try:
        _imp(one, fx.write_csv(tmp_path / "a.csv", HEADER, ROWS, "utf-8"))
        _imp(two, fx.write_csv(tmp_path / "b.csv", HEADER, [*ROWS, ROWS[3]], "utf-8"))
        assert _orders(one) == _orders(two)
        assert len(_orders(one)) == 4
    finally:
        one.close()
        two.close()


def test_status_and_prefecture_still_named_in_a_narrow_file(store, tmp_path):
    header = [*HEADER, "state", "pref"]
    mapping = {**MAPPING, "state": "status", "pref": "prefecture"}
    rows = [
        {**ROWS[0], "state": "refunded", "pref": "tokyo"},
        {**ROWS[1], "state": "paid", "pref": "Osaka-fu"},
        {**ROWS[2], "state": "", "pref": "jp-01"},
    ]
    _imp(store, fx.write_csv(tmp_path / "n.csv", header, rows, "utf-8"), mapping=mapping)
    assert store.fetchall("SELECT order_id, status, cancelled, prefecture FROM orders ORDER BY order_id") == [
        ("n-1", "返金済", False, "東京都"),
        ("n-2", "支払済", False, "大阪府"),
        ("n-3", None, False, "北海道"),
    ]


def test_empty_product_status_and_prefecture_columns_change_nothing(store, tmp_path):
    """Mapped but empty columns keep the lookups the absent ones skip: same values, same hashes."""
    _imp(store, fx.write_csv(tmp_path / "a.csv", HEADER, ROWS, "utf-8"))
    before = _orders(store)
    header = [*HEADER, "item", "state", "pref"]
    mapping = {**MAPPING, "item": "product_name", "state": "status", "pref": "prefecture"}
    again = _imp(store, fx.write_csv(tmp_path / "b.csv", header, ROWS, "utf-8"), mapping=mapping)
    d = again.to_dict()
    assert (d["orders_added"], d["orders_updated"], d["orders_unchanged"]) == (0, 0, 4)
    assert _orders(store) == before


def test_padded_and_blank_fields_are_trimmed_and_blank_is_empty(store, tmp_path):
    """Spaces around a field (ASCII or full-width) are not part of it; a field of spaces is empty."""
    rows = [
        {"order": " n-1 ", "member": "\u3000M1\u3000", "day": " 2025-06-01 ", "amount": "\u30001,100 "},
        {"order": "n-2", "member": "  ", "day": "2025-06-02", "amount": "\u3000"},
    ]
    report = _imp(store, fx.write_csv(tmp_path / "n.csv", HEADER, rows, "utf-8"))
    assert report.to_dict()["rows_rejected"] == 0
    assert store.fetchall(
        "SELECT order_id, customer_key, ordered_at::VARCHAR, total_amount FROM orders ORDER BY order_id"
    ) == [("n-1", "M1", "2025-06-01 00:00:00", Decimal("1100")), ("n-2", None, "2025-06-02 00:00:00", None)]
    # the blank key is no key: n-2 is its own customer, M1 is keyed by the trimmed member id
    assert store.scalar("SELECT count(DISTINCT customer_id) FROM orders") == 2
    assert store.scalar("SELECT customer_id FROM orders WHERE order_id = 'n-1'") == store.scalar(
        "SELECT 'C' || md5('K:' || source || ':M1') FROM orders WHERE order_id = 'n-1'"
    )
