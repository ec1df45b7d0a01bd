"""Importing a file again: the source's last file, byte for byte, is recognised without reading it.

These pin what the shortcut must never change: the report (counts and rejected
rows), and that any change to the store since that import — a newer file, the
same bytes read with another mapping, an earlier file of the same batch,
deleting everything — makes the file count again.
"""

from __future__ import annotations

import json
from pathlib import Path

from crm_core.db import LAST_ORDERS_FILE, Store, orders_state
from crm_core.pipeline import import_files
from tests import fixtures as fx


def _imp(store: Store, *paths: Path, **kw):
    kw.setdefault("rebuild_model", False)
    return import_files(store, list(paths), **kw)


def _counts(report) -> tuple[int, int, int, int, int]:
    d = report.to_dict()
    return d["orders_added"], d["orders_updated"], d["orders_unchanged"], d["rows_read"], d["rows_rejected"]


def test_same_file_again_reports_its_rows_and_rejects_as_the_first_import_did(store, tmp_path):
    rows = fx.rakuten_rows()
    rows[3] = {**rows[3], "注文日時": "不明"}
    path = fx.rakuten_current(tmp_path / "r.csv", rows)
    first = _imp(store, path)
    again = _imp(store, path)
    added, updated, unchanged, read, rejected = _counts(first)
    assert _counts(again) == (0, 0, added + updated + unchanged, read, rejected)
    assert again.files[0].lines == first.files[0].lines
    assert again.rejects == first.rejects and again.rejects
    assert again.outcome()[0] == "info"


def test_same_file_after_a_newer_file_changed_its_orders_puts_them_back(store, tmp_path):
    old = fx.rakuten_current(tmp_path / "r1.csv")
    _imp(store, old)
    rows = fx.rakuten_rows()
    rows[3] = {**rows[3], "ステータス": "キャンセル確定"}
    _imp(store, fx.rakuten_current(tmp_path / "r2.csv", rows))
    assert store.scalar("SELECT cancelled FROM orders WHERE order_id LIKE '%0003'") is True
    again = _imp(store, old)
    assert _counts(again)[:3] == (0, 1, 2)
    assert store.scalar("SELECT cancelled FROM orders WHERE order_id LIKE '%0003'") is False


def test_same_bytes_with_another_mapping_are_read_again(store, tmp_path):
    path = fx.write_csv(tmp_path / "g.csv", ["id", "day", "amount", "net"], [
        {"id": "G1", "day": "2025-01-01", "amount": "1000", "net": "900"},
        {"id": "G2", "day": "2025-01-02", "amount": "2000", "net": "1800"},
    ], "utf-8")
    _imp(store, path, mapping={"id": "order_id", "day": "ordered_at", "amount": "total_amount"})
    again = _imp(store, path, mapping={"id": "order_id", "day": "ordered_at", "net": "total_amount"})
    assert _counts(again)[:3] == (0, 2, 0)
    assert store.scalar("SELECT sum(total_amount) FROM orders") == 2700


def test_same_file_after_an_earlier_file_of_its_batch_changed_it(store, tmp_path):
    old = fx.rakuten_current(tmp_path / "r1.csv")
    _imp(store, old)
    rows = fx.rakuten_rows()
    rows[3] = {**rows[3], "ステータス": "キャンセル確定"}
    newer = fx.rakuten_current(tmp_path / "r2.csv", rows)
    report = _imp(store, newer, old)  # the newer file first, then the old one again: the old one wins
    assert [f.orders_updated for f in report.files] == [1, 1]
    assert store.scalar("SELECT cancelled FROM orders WHERE order_id LIKE '%0003'") is False


def test_same_file_after_deleting_everything_is_imported_again(store, tmp_path):
    path = fx.rakuten_current(tmp_path / "r.csv")
    first = _imp(store, path)
    store.clear_data()
    again = _imp(store, path)
    assert _counts(again)[0] == _counts(first)[0] > 0
    assert store.scalar("SELECT count(*) FROM orders") == _counts(first)[0]


def _as_version_8_wrote_it(db: Path, *then: str) -> None:
    """Turn a store back into what version 8 wrote: content hashes as decimal text, its state record; then ``then``."""
    s = Store(db)
    s.execute("ALTER TABLE orders ALTER content_hash TYPE VARCHAR")
    key = s.scalar("SELECT key FROM settings WHERE key LIKE 'last_orders_file:%'")
    n, ids, sig = s.fetchall("SELECT count(*), sum(import_id), bit_xor(hash(content_hash)) FROM orders WHERE source = "
                             "(SELECT source FROM orders LIMIT 1)")[0]
    s.execute("UPDATE settings SET value = json_merge_patch(value, json_object('state', ?)) WHERE key = ?",
              [f"{n}:{ids}:{sig}", key])
    for sql in then:
        s.execute(sql)
    s.execute("DELETE FROM schema_version WHERE version > 8")
    s.close()


def test_content_hashes_stored_as_text_by_version_8_still_diff_and_shortcut(tmp_path):
    """Migration 9 stores the 64-bit change hash as a number: the same value, so old files diff as before."""
    db, path = tmp_path / "crm.duckdb", fx.rakuten_current(tmp_path / "r.csv")
    s = Store(db)
    first = _imp(s, path)
    hashes = sorted(r[0] for r in s.fetchall("SELECT content_hash FROM orders"))
    s.close()
    _as_version_8_wrote_it(db)
    s = Store(db)
    assert s.scalar("SELECT data_type FROM information_schema.columns WHERE table_name = 'orders' "
                    "AND column_name = 'content_hash'") == "UBIGINT"
    assert sorted(r[0] for r in s.fetchall("SELECT content_hash FROM orders")) == hashes
    record = json.loads(s.scalar("SELECT value FROM settings WHERE key = ?", [LAST_ORDERS_FILE + "rakuten"]))
    assert record["state"] == orders_state(s.cursor(), "rakuten")  # carried over: the shortcut still recognises the file
    again = _imp(s, path)
    assert _counts(again)[:3] == (0, 0, _counts(first)[0])
    rows = fx.rakuten_rows()
    rows[3] = {**rows[3], "ステータス": "キャンセル確定"}
    changed = _imp(s, fx.rakuten_current(tmp_path / "r2.csv", rows))
    assert _counts(changed)[:3] == (0, 1, _counts(first)[0] - 1)
    s.close()


def test_older_text_hashes_and_the_sample_marker_survive_migration_9(tmp_path):
    """Hashes of an older format (MD5 text) cannot equal a new one: their orders count as changed, never as new."""
    db, path = tmp_path / "crm.duckdb", fx.rakuten_current(tmp_path / "r.csv")
    s = Store(db)
    first = _imp(s, path)
    s.close()
    _as_version_8_wrote_it(db, "UPDATE orders SET content_hash = md5(order_id) || '#' WHERE order_id LIKE '%0003'",
                           "UPDATE orders SET content_hash = 'sample-campaign' WHERE order_id LIKE '%0002'")
    s = Store(db)
    assert s.scalar("SELECT count(*) FROM orders WHERE content_hash IS NULL") == 0
    assert s.scalar("SELECT count(*) FROM orders WHERE content_hash = hash('sample-campaign')") == 1
    again = _imp(s, path)  # the store no longer holds what the file left: read again
    assert _counts(again)[:3] == (0, 2, _counts(first)[0] - 2)
    assert s.scalar("SELECT count(*) FROM orders") == _counts(first)[0]
    s.close()
