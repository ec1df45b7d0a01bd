"""Mail permission columns of imports become consent records (issue 14: consent as records, source 'import').

An import never undoes an opt-out the shop's own system does not know about
(unsubscribe link, LINE block, bounce, manual), and importing the same data
again adds no records.
"""

from __future__ import annotations

import datetime as dt
from contextlib import closing
from zoneinfo import ZoneInfo

import pytest

from crm_core import opsdb, pipeline
from crm_core.db import Store
from crm_core.messaging import consent
from tests.fixtures import HEADERS, shopify_customers, shopify_orders, write_csv

JST = ZoneInfo("Asia/Tokyo")


@pytest.fixture()
def store(tmp_path):
    s = Store(tmp_path / "crm.duckdb")
    yield s
    s.close()


def _ops(store: Store):
    return closing(opsdb.connect(opsdb.ops_path(store.path)))


def _customers(path, rows):
    header = HEADERS["shopify_customers_export"]["columns"]
    return write_csv(path, header, rows, "utf-8", quote_all=False)


def _row(cid: str, email: str, accepts: str) -> dict:
    return {"Customer ID": cid, "First Name": "花子", "Last Name": "佐藤", "Email": email,
            "Accepts Email Marketing": accepts, "Total Spent": "0", "Total Orders": "0"}


def test_order_import_records_opt_in_at_the_order_time(store, tmp_path):
    pipeline.import_files(store, [shopify_orders(tmp_path / "orders.csv")], rebuild_model=False)
    with _ops(store) as ops:
        hist = consent.history(ops, "email", "hanako@example.jp")
        assert [(h["kind"], h["source"]) for h in hist] == [("opt_in", "import")]
        # #1001 was created 2025-05-01 10:00 UTC: the permission is as of that order
        assert dt.datetime.fromisoformat(hist[0]["occurred_at"]) == dt.datetime(2025, 5, 1, 10, tzinfo=dt.UTC)
        assert hist[0]["customer_id"]
        # #1002 has no Accepts Marketing value: no record either way
        assert consent.history(ops, "email", "jiro@example.jp") == []


def test_customer_export_records_opt_in_and_opt_out_once(store, tmp_path):
    f = _customers(tmp_path / "customers.csv", [_row("'1", "A@example.jp", "yes"), _row("'2", "b@example.jp", "no")])
    pipeline.import_files(store, [f], rebuild_model=False)
    with _ops(store) as ops:
        assert consent.status(ops, "email", "a@example.jp") == "opt_in"
        assert consent.status(ops, "email", "b@example.jp") == "opt_out"
        assert consent.history(ops, "email", "b@example.jp")[0]["source"] == "import"
    before = _count(store)
    # the same file again (skipped as already imported) and a re-export with the same content (a new file)
    pipeline.import_files(store, [f], rebuild_model=False)
    g = _customers(tmp_path / "customers2.csv", [_row("'1", "a@example.jp", "yes"), _row("'2", "b@example.jp", "no"),
                                                 _row("'3", "", "yes")])
    pipeline.import_files(store, [g], rebuild_model=False)
    pipeline.import_files(store, [shopify_orders(tmp_path / "o.csv")], rebuild_model=False)
    pipeline.import_files(store, [shopify_orders(tmp_path / "o2.csv", bom=False)], rebuild_model=False)
    assert _count(store) == before + 1  # only hanako's order opt-in is new


def _count(store: Store) -> int:
    with _ops(store) as ops:
        return int(ops.execute("SELECT count(*) FROM consent_events").fetchone()[0])


def test_an_older_opt_in_never_undoes_an_unsubscribe(store, tmp_path):
    with _ops(store) as ops:
        consent.suppress(ops, "email", "hanako@example.jp", source="unsubscribe", actor="link",
                         now=dt.datetime(2026, 1, 10, 9, tzinfo=JST))
        consent.suppress(ops, "email", "c@example.jp", source="unsubscribe", actor="link",
                         now=dt.datetime(2026, 1, 10, 9, tzinfo=JST))
    # an order export whose orders are older than the unsubscribe, and a customer export made after it that still says "yes"
    # (Shopify does not know about the console's unsubscribe link)
    pipeline.import_files(store, [shopify_orders(tmp_path / "orders.csv")], rebuild_model=False)
    pipeline.import_files(store, [_customers(tmp_path / "c.csv", [_row("'9", "C@example.jp", "yes")])], rebuild_model=False)
    with _ops(store) as ops:
        assert consent.status(ops, "email", "hanako@example.jp") == "opt_out"
        assert consent.status(ops, "email", "c@example.jp") == "opt_out"
        assert "c@example.jp" in consent.suppressed(ops, "email")


def test_a_newer_order_opt_in_does_not_undo_an_unsubscribe_either(store, tmp_path):
    """Shopify keeps "Accepts Marketing: yes" on later orders because it never heard of the console's unsubscribe."""
    with _ops(store) as ops:
        consent.suppress(ops, "email", "hanako@example.jp", source="unsubscribe", actor="link",
                         now=dt.datetime(2024, 1, 10, 9, tzinfo=JST))
    pipeline.import_files(store, [shopify_orders(tmp_path / "orders.csv")], rebuild_model=False)  # orders of 2025
    with _ops(store) as ops:
        assert consent.status(ops, "email", "hanako@example.jp") == "opt_out"


def test_an_opt_out_from_an_earlier_import_is_replaced_by_a_later_opt_in_from_the_shop(store, tmp_path):
    """The shop system said no, later yes (the customer subscribed again there): the import follows it."""
    pipeline.import_files(store, [_customers(tmp_path / "c1.csv", [_row("'1", "d@example.jp", "no")])], rebuild_model=False)
    pipeline.import_files(store, [_customers(tmp_path / "c2.csv", [_row("'1", "d@example.jp", "yes")])], rebuild_model=False)
    with _ops(store) as ops:
        assert consent.status(ops, "email", "d@example.jp") == "opt_in"
        assert [h["kind"] for h in consent.history(ops, "email", "d@example.jp")] == ["opt_out", "opt_in"]


def test_sample_customers_file_helper_still_imports(store, tmp_path):
    pipeline.import_files(store, [shopify_customers(tmp_path / "c.csv")], rebuild_model=False)
    with _ops(store) as ops:
        assert consent.status(ops, "email", "hanako@example.jp") == "opt_in"


def test_rakuten_mail_flag_is_recorded(store, tmp_path):
    from tests.fixtures import rakuten_legacy

    pipeline.import_files(store, [rakuten_legacy(tmp_path / "r.csv")], rebuild_model=False)
    addresses = [r[0] for r in store.fetchall("SELECT DISTINCT lower(email) FROM orders WHERE email IS NOT NULL")]
    assert addresses
    with _ops(store) as ops:
        assert {consent.status(ops, "email", a) for a in addresses} == {"opt_in"}


def test_an_import_left_unrecorded_by_a_killed_process_is_recorded_by_the_next(store, tmp_path):
    from crm_core.ingest import importer

    importer.import_files(store, [shopify_orders(tmp_path / "orders.csv")])  # committed; the process "dies" before recording
    pipeline.import_files(store, [_customers(tmp_path / "c.csv", [_row("'2", "e@example.jp", "no")])], rebuild_model=False)
    with _ops(store) as ops:
        assert consent.status(ops, "email", "hanako@example.jp") == "opt_in"
        assert consent.status(ops, "email", "e@example.jp") == "opt_out"


def test_an_unwritable_operations_store_does_not_fail_the_committed_import(store, tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-file"
    blocked.mkdir()
    monkeypatch.setenv("CRM_OPS_DB", str(blocked))  # sqlite cannot open a folder
    report = pipeline.import_files(store, [shopify_orders(tmp_path / "orders.csv")], rebuild_model=False)
    assert report.total("orders_added") == 2
    assert any("同意" in w for w in report.warnings)
    monkeypatch.delenv("CRM_OPS_DB")
    pipeline.import_files(store, [_customers(tmp_path / "c.csv", [_row("'2", "f@example.jp", "yes")])], rebuild_model=False)
    with _ops(store) as ops:
        assert consent.status(ops, "email", "hanako@example.jp") == "opt_in"  # caught up
