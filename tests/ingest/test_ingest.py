"""Importer tests on small hand-made export files (see tests/fixtures.py for the numbers)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.ingest.importer import rejects_table
from crm_core.pipeline import import_files
from tests import fixtures as fx


def _imp(store: Store, *paths: Path, **kw):
    kw.setdefault("rebuild_model", False)
    return import_files(store, list(paths), **kw)


def _snapshot(store: Store) -> dict:
    return {
        t: store.fetchall(f"SELECT * FROM {t} ORDER BY ALL")  # noqa: S608 - fixed table names
        for t in ("orders", "order_lines", "customers", "contacts", "products", "imports", "import_rejects")
    }


# ---------------------------------------------------------------- Rakuten current


def test_rakuten_current_orders_once_per_order(store, tmp_path):
    report = _imp(store, fx.rakuten_current(tmp_path / "r.csv"))
    d = report.to_dict()
    assert (d["orders_added"], d["lines"], d["rows_read"], d["rows_rejected"]) == (3, 4, 4, 0)
    assert report.files[0].format == "rakuten"
    assert report.files[0].encoding == "Shift_JIS（cp932）"
    rows = store.fetchall(
        "SELECT order_id, total_amount, item_amount, shipping_fee, points_used, discount_amount, cancelled, status "
        "FROM orders ORDER BY order_id"
    )
    assert rows == [
        ("111111-20250104-0000001", Decimal("7260"), Decimal("7260"), Decimal("0"), Decimal("500"), Decimal("300"), False, "発送済"),
        ("111111-20250210-0000002", Decimal("12000"), Decimal("12000"), Decimal("0"), Decimal("0"), Decimal("0"), True, "キャンセル確定"),
        ("111111-20250305-0000003", Decimal("4950"), Decimal("4400"), Decimal("550"), Decimal("0"), Decimal("0"), False, "発送済"),
    ]
    # order-level totals repeated on two rows are stored once: the sum over orders is not doubled
    assert store.scalar("SELECT sum(total_amount) FROM orders WHERE NOT cancelled") == Decimal("12210")
    lines = store.fetchall(
        "SELECT line_no, product_id, product_name, unit_price, quantity, line_amount FROM order_lines "
        "WHERE order_id = '111111-20250104-0000001' ORDER BY line_no"
    )
    assert lines == [
        (1, "lotion-01", "薬用化粧水～しっとり～", Decimal("1980"), 2, Decimal("3960")),
        (2, "serum-01", "美容液", Decimal("3300"), 1, Decimal("3300")),
    ]


def test_rakuten_names_and_fields_survive_cp932(store, tmp_path):
    _imp(store, fx.rakuten_current(tmp_path / "r.csv"))
    names = {r[0] for r in store.fetchall("SELECT buyer_name FROM orders")}
    assert names == {"髙橋 ①子", "山﨑 ㈱花子"}
    sub = store.fetchone("SELECT subscription_id, subscription_seq, ordered_at FROM orders WHERE order_id LIKE '%0003'")
    assert sub == ("S-1", 2, dt.datetime(2025, 3, 5, 12, 30))  # slash date form read as JST
    phone, postcode, pref, gender = store.fetchone(
        "SELECT phone, postcode, prefecture, gender FROM orders WHERE order_id LIKE '%0001'"
    )
    assert (phone, postcode, pref, gender) == ("0312345678", "1500001", "東京都", "女性")


def test_same_customer_merged_by_email(store, tmp_path):
    report = _imp(store, fx.rakuten_current(tmp_path / "r.csv"))
    assert report.customers == 2
    assert report.orders_merged == 1
    counts = sorted(r[0] for r in store.fetchall("SELECT orders_merged FROM customers"))
    assert counts == [1, 2]


# ---------------------------------------------------------------- legacy


def test_rakuten_legacy_headers_with_fullwidth_digits(store, tmp_path):
    report = _imp(store, fx.rakuten_legacy(tmp_path / "legacy.csv"))
    assert report.files[0].format == "rakuten_legacy"
    assert report.to_dict()["orders_added"] == 3
    row = store.fetchone(
        "SELECT total_amount, shipping_fee, phone, prefecture, birthday, email_opt_in, cancelled "
        "FROM orders WHERE order_id LIKE '%0001'"
    )
    assert row == (Decimal("7260"), Decimal("0"), "0312345678", "東京都", dt.date(1985, 7, 20), True, False)
    assert store.scalar("SELECT cancelled FROM orders WHERE order_id LIKE '%0002'") is True


# ---------------------------------------------------------------- Shopify


@pytest.mark.parametrize("bom", [True, False], ids=["bom", "no-bom"])
def test_shopify_orders_first_row_fields_and_jst(store, tmp_path, bom):
    report = _imp(store, fx.shopify_orders(tmp_path / "s.csv", bom=bom))
    assert report.files[0].format == "shopify"
    assert report.to_dict()["lines"] == 3
    o1 = store.fetchone(
        "SELECT ordered_at, email, total_amount, discount_amount, coupon_code, prefecture, postcode, phone, cancelled, email_opt_in "
        "FROM orders WHERE order_id = '#1001'"
    )
    assert o1 == (
        dt.datetime(2025, 5, 1, 19, 0),  # 10:00 UTC -> 19:00 JST
        "hanako@example.jp",
        Decimal("5500"),
        Decimal("500"),
        "WELCOME10",
        "東京都",
        "1500001",
        "09011112222",
        False,
        True,
    )
    assert store.scalar("SELECT count(*) FROM order_lines WHERE order_id = '#1001'") == 2
    assert store.fetchone("SELECT cancelled, status FROM orders WHERE order_id = '#1002'") == (True, "返金済")
    assert store.scalar("SELECT status FROM orders WHERE order_id = '#1001'") == "支払済"


def test_shopify_customers_export_adds_opt_in_and_tags(store, tmp_path):
    _imp(store, fx.shopify_orders(tmp_path / "s.csv"))
    report = _imp(store, fx.shopify_customers(tmp_path / "c.csv"))
    assert report.files[0].format == "shopify_customers"
    assert report.files[0].contacts == 1
    row = store.fetchone("SELECT email_opt_in, tags FROM customers WHERE email = 'hanako@example.jp'")
    assert row == (True, "VIP")


# ---------------------------------------------------------------- idempotence and updates


def test_same_file_twice_changes_nothing(store, tmp_path):
    path = fx.rakuten_current(tmp_path / "r.csv")
    _imp(store, path)
    before = _snapshot(store)
    again = _imp(store, path)
    d = again.to_dict()
    assert (d["orders_added"], d["orders_updated"], d["orders_unchanged"]) == (0, 0, 3)
    assert again.files[0].already_imported is True
    assert _snapshot(store) == before


def test_overlapping_file_adds_new_and_updates_changed(store, tmp_path):
    _imp(store, fx.rakuten_current(tmp_path / "r1.csv"))
    rows = fx.rakuten_rows()
    # order 3 shipped later with a changed status; a new order 4 appears
    rows[3] = {**rows[3], "ステータス": "キャンセル確定"}
    rows.append({**rows[3], "注文番号": "111111-20250401-0000004", "ステータス": "発送済", "商品明細ID": "L5"})
    report = _imp(store, fx.rakuten_current(tmp_path / "r2.csv", rows))
    d = report.to_dict()
    assert (d["orders_added"], d["orders_updated"], d["orders_unchanged"]) == (1, 1, 2)
    assert store.scalar("SELECT count(*) FROM orders") == 4
    assert store.scalar("SELECT count(*) FROM order_lines") == 5
    assert store.scalar("SELECT cancelled FROM orders WHERE order_id LIKE '%0003'") is True


# ---------------------------------------------------------------- bad input


def test_bad_rows_rejected_with_row_number_rest_imported(store, tmp_path):
    rows = fx.rakuten_rows()
    rows[3] = {**rows[3], "注文日時": "2025-13-45 99:00:00"}  # file row 5 (header is row 1)
    rows[2] = {**rows[2], "単価": "千二百円"}  # file row 4
    report = _imp(store, fx.rakuten_current(tmp_path / "r.csv", rows))
    d = report.to_dict()
    assert d["orders_added"] == 1 and d["rows_rejected"] == 2
    rejects = {r["row_no"]: r["reason"] for r in rejects_table(store)}
    assert set(rejects) == {4, 5}
    assert "単価「千二百円」を金額として読めません" in rejects[4]
    assert "注文日時「2025-13-45 99:00:00」を日時として読めません" in rejects[5]
    assert any("取り込んでいません" in w for w in report.warnings)


def test_one_bad_line_rejects_the_whole_order(store, tmp_path):
    rows = fx.rakuten_rows()
    rows[1] = {**rows[1], "個数": "two"}  # second line of the two-line order A
    report = _imp(store, fx.rakuten_current(tmp_path / "r.csv", rows))
    assert report.to_dict()["rows_rejected"] == 2
    assert store.scalar("SELECT count(*) FROM orders WHERE order_id LIKE '%0001'") == 0
    reasons = sorted(r["reason"] for r in rejects_table(store))
    assert reasons[0].startswith("個数「two」") and "別の行に不備" in reasons[1]


def test_missing_required_column_is_named(store, tmp_path):
    # a shop's RMS template without the order date column: detected, and the column is named
    header = [h for h in fx.RAKUTEN_MIN if h != "注文日時"]
    path = fx.write_csv(tmp_path / "r.csv", header, fx.rakuten_rows(), "cp932")
    with pytest.raises(InputError, match="楽天ペイ受注CSVの必須列『注文日時』がありません"):
        _imp(store, path)
    assert store.is_empty()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "空のファイル"),
        ("注文番号,ステータス,注文日時\r\n".encode("cp932"), "データ行がありません"),
        (b"name,price\r\nfoo,1\r\n", "認識できませんでした"),
        (b"\x00\x01\x02binary", "テキスト形式のCSVではない"),
        (b"abc\x81\x7f\x81\x7f", "文字コードを判別できません"),
    ],
    ids=["empty", "header-only", "not-an-export", "binary", "undecodable"],
)
def test_bad_files_leave_store_unchanged(store, tmp_path, content, message):
    _imp(store, fx.rakuten_current(tmp_path / "good.csv"))
    before = _snapshot(store)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    with pytest.raises(InputError, match=message):
        _imp(store, bad)
    assert _snapshot(store) == before


def test_batch_is_atomic_when_second_file_fails(store, tmp_path):
    good = fx.rakuten_current(tmp_path / "good.csv")
    broken = tmp_path / "broken.csv"
    data = good.read_bytes()
    # a stray byte in the middle that cp932 cannot decode
    broken.write_bytes(data[:-60] + b"\x81\x7f" + data[-60:])
    with pytest.raises(InputError, match="読めない文字"):
        _imp(store, good, broken)
    assert store.is_empty()
    assert store.table_count("imports") == 0


def test_an_uploaded_batch_names_the_marketers_file_and_says_the_others_wait(store, tmp_path):
    """The console stores uploads under temporary names (upload-N.csv) and passes the marketer's file names: the
    message said 「broken_rms.csv」: 「upload-1.csv」の2行目付近に… and nothing about the batch's other file."""
    from crm_core.ingest.importer import FileSpec

    good = fx.rakuten_current(tmp_path / "upload-0.csv")
    broken = tmp_path / "upload-1.csv"
    broken.write_bytes("受注番号,注文日時\n".encode("cp932") + b"\x81\xff\xfe\x80garbage\n")
    with pytest.raises(InputError) as info:
        import_files(store, [FileSpec(good, "rakuten_orders.csv"), FileSpec(broken, "broken_rms.csv")])
    message = info.value.message
    assert message.startswith("「broken_rms.csv」の2行目付近に、Shift_JIS（cp932）として読めない文字があります。"), message
    assert "upload-" not in message
    assert "ほかの1件のファイルも取り込んでいません" in message
    assert store.is_empty()


def test_structurally_broken_csv_is_explained(store, tmp_path):
    path = tmp_path / "r.csv"
    fx.rakuten_current(path, full_header=False)
    text = path.read_bytes().decode("cp932") + '"unterminated,"x\r\n'
    path.write_bytes(text.encode("cp932"))
    with pytest.raises(InputError, match="形式が崩れている"):
        _imp(store, path)
    assert store.is_empty()


# ---------------------------------------------------------------- generic and identity


def test_generic_orders_with_mapping_and_customer_key(store, tmp_path):
    path = fx.write_csv(
        tmp_path / "y.csv",
        ["OrderId", "OrderTime", "TotalPrice", "Title", "Quantity", "会員ID"],
        [
            {"OrderId": "y-1", "OrderTime": "2025/06/01 09:00", "TotalPrice": "1,100円", "Title": "石鹸", "Quantity": "１", "会員ID": "M1"},
            {"OrderId": "y-2", "OrderTime": "2025/06/02 09:00", "TotalPrice": "2,200", "Title": "石鹸", "Quantity": "2", "会員ID": "M1"},
        ],
        "cp932",
    )
    mapping = {"OrderId": "order_id", "OrderTime": "ordered_at", "TotalPrice": "total_amount", "Title": "product_name", "Quantity": "quantity", "会員ID": "customer_key"}
    report = _imp(store, path, mapping=mapping)
    assert report.to_dict()["orders_added"] == 2 and report.customers == 1
    assert store.fetchall("SELECT total_amount FROM orders ORDER BY order_id") == [(Decimal("1100"),), (Decimal("2200"),)]


def test_generic_mapping_errors(store, tmp_path):
    path = fx.write_csv(tmp_path / "y.csv", ["OrderId", "Amount"], [{"OrderId": "1", "Amount": "1"}], "utf-8")
    with pytest.raises(InputError, match="注文日時"):
        _imp(store, path, mapping={"OrderId": "order_id", "Amount": "total_amount"})
    with pytest.raises(InputError, match="列「Nope」がありません"):
        _imp(store, path, mapping={"Nope": "order_id"})
    with pytest.raises(InputError, match="項目ではありません"):
        _imp(store, path, mapping={"OrderId": "order_id", "Amount": "DROP TABLE orders"})


@pytest.mark.parametrize(
    ("key", "customers"),
    [("email", 2), ("phone", 2), ("name_phone", 2)],
    ids=["email", "phone", "name+phone"],
)
def test_identity_keys(store, tmp_path, key, customers):
    report = _imp(store, fx.rakuten_current(tmp_path / "r.csv"), identity_key=key)
    assert report.customers == customers
    assert report.identity_key == key


def test_phone_key_merges_what_email_splits(store, tmp_path):
    rows = fx.rakuten_rows()
    # the same person (same phone and name) shows up with a different masked address
    rows[3] = {**rows[3], "注文者メールアドレス": "other00000@pc.fw.rakuten.ne.jp"}
    path = fx.rakuten_current(tmp_path / "r.csv", rows)
    assert _imp(store, path, identity_key="email").customers == 3
    from crm_core.ingest.identity import rekey

    assert rekey(store, "phone")["customers"] == 2
    assert store.get_setting("identity_key") == "phone"


def test_hostile_strings_are_data(store, tmp_path):
    rows = fx.rakuten_rows()
    evil = "'); DROP TABLE orders; --"
    rows[0] = {**rows[0], "注文者姓": evil, "商品名": "=HYPERLINK(\"http://x\")"}
    _imp(store, fx.rakuten_current(tmp_path / "r.csv", rows))
    assert store.scalar("SELECT count(*) FROM orders") == 3
    assert store.scalar("SELECT count(*) FROM orders WHERE buyer_name LIKE ?", [evil + "%"]) == 1


def test_row_numbers_hold_deep_in_a_large_file(store, tmp_path):
    """Parallel CSV reading must not shuffle the reported row numbers."""
    base = fx.rakuten_rows()[3]
    rows = [{**base, "注文番号": f"o-{i}", "商品明細ID": f"L{i}"} for i in range(60_000)]
    rows[43_210] = {**rows[43_210], "合計金額": "abc"}
    _imp(store, fx.rakuten_current(tmp_path / "big.csv", rows, full_header=False))
    assert [(r["row_no"], r["order_id"]) for r in rejects_table(store)] == [(43_212, "o-43210")]
    assert store.scalar("SELECT count(*) FROM orders") == 59_999


def test_clear_data_removes_derived_customer_tables(store, tmp_path):
    from crm_core.pipeline import after_import

    rows = [{**fx.rakuten_rows()[0], "注文番号": f"o-{i}", "商品明細ID": f"L{i}"} for i in range(3)]
    _imp(store, fx.rakuten_current(tmp_path / "r.csv", rows))
    after_import(store)
    tables = {r[0] for r in store.fetchall("SELECT table_name FROM information_schema.tables")}
    assert "customer_model" in tables
    store.clear_data()
    tables = {r[0] for r in store.fetchall("SELECT table_name FROM information_schema.tables")}
    assert "customer_model" not in tables and "customer_recommendations" not in tables
    assert store.is_empty() and store.table_count("customers") == 0


def test_parallel_transcoding_matches_single_pass(store, tmp_path, monkeypatch):
    """Big cp932 files are split at record boundaries (never inside a quoted newline) across processes."""
    from crm_core.ingest import reader

    base = fx.rakuten_rows()[0]
    rows = [
        {**base, "注文番号": f"o-{i}", "商品明細ID": f"L{i}", "注文者姓": "髙橋" if i % 2 else "山﨑",
         "商品名": "化粧水\r\n～しっとり～\r\n" * (i % 3) + "①"}
        for i in range(3000)
    ]
    path = fx.rakuten_current(tmp_path / "r.csv", rows, full_header=False)
    single = Store(":memory:")
    import_files(single, [path], rebuild_model=False)
    monkeypatch.setattr(reader, "PARALLEL_MIN", 1024)
    monkeypatch.setattr(reader.os, "cpu_count", lambda: 2)  # the parallel path also on a one-core runner
    raw = reader.prepare(path, tmp_path)
    assert len(raw.parts) > 1 and raw.skip == 0
    _imp(store, path)
    query = "SELECT order_id, buyer_name, line_no, product_name FROM orders JOIN order_lines USING (source, order_id) ORDER BY ALL"
    assert store.fetchall(query) == single.fetchall(query)
    assert store.scalar("SELECT count(*) FROM orders") == 3000


def test_parallel_transcoding_runs_inside_the_console(store, tmp_path, monkeypatch):
    """Inside Streamlit ``__main__`` is the page script: the workers must not import it (a spawned pool did, crashed,
    and the file was silently transcoded by one process)."""
    import sys
    import types

    from crm_core.ingest import reader

    marker = tmp_path / "page_script_ran"
    script = tmp_path / "app.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit('the page script ran in a worker')\n")
    page = types.ModuleType("__main__")
    page.__file__ = str(script)
    monkeypatch.setitem(sys.modules, "__main__", page)
    base = fx.rakuten_rows()[0]
    rows = [{**base, "注文番号": f"o-{i}", "商品明細ID": f"L{i}", "注文者姓": "髙橋"} for i in range(2000)]
    path = fx.rakuten_current(tmp_path / "r.csv", rows, full_header=False)
    monkeypatch.setattr(reader, "PARALLEL_MIN", 1024)
    monkeypatch.setattr(reader.os, "cpu_count", lambda: 2)
    raw = reader.prepare(path, tmp_path)
    assert len(raw.parts) > 1 and raw.skip == 0
    assert not marker.exists()
    text = b"".join(part.read_bytes() for part in raw.parts).decode("utf-8")
    assert text == path.read_bytes().decode("cp932").split("\n", 1)[1]


def test_parallel_transcoding_reports_the_bad_line(store, tmp_path, monkeypatch):
    from crm_core.ingest import reader

    base = fx.rakuten_rows()[0]
    rows = [{**base, "注文番号": f"o-{i}", "商品明細ID": f"L{i}"} for i in range(2000)]
    path = fx.rakuten_current(tmp_path / "r.csv", rows, full_header=False)
    data = path.read_bytes()
    cut = data.index(b'"o-1500"')
    path.write_bytes(data[:cut] + b"\x81\x7f" + data[cut:])
    monkeypatch.setattr(reader, "PARALLEL_MIN", 1024)
    monkeypatch.setattr(reader.os, "cpu_count", lambda: 2)
    with pytest.raises(InputError, match="1,502行目付近"):  # o-1500 is on line 1,502 (header = line 1)
        _imp(store, path)
    assert store.is_empty()
    # the workers found it (the single pass, which would also find it, never ran)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(InputError, match="1,502行目付近"):
        reader.prepare(path, work)
    assert sorted(p.name for p in work.iterdir()) == ["r.part0.utf8.csv", "r.part1.utf8.csv"]


def test_a_crashed_transcoding_worker_is_logged_and_one_process_does_the_file(tmp_path, monkeypatch, caplog):
    """A worker that dies (killed for memory, a broken Python) leaves no half-written parts: the file is
    transcoded in one process, and the log says why."""
    import types

    from crm_core.ingest import reader, transcode_part

    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nsys.stderr.write('MemoryError: worker killed\\n')\nsys.exit(9)\n")
    monkeypatch.setattr(reader, "transcode_part", types.SimpleNamespace(__file__=str(crash), BAD_BYTES=transcode_part.BAD_BYTES))
    monkeypatch.setattr(reader, "PARALLEL_MIN", 1024)
    monkeypatch.setattr(reader.os, "cpu_count", lambda: 2)
    base = fx.rakuten_rows()[0]
    path = fx.rakuten_current(tmp_path / "r.csv", [{**base, "注文番号": f"o-{i}", "注文者姓": "髙橋"} for i in range(2000)],
                              full_header=False)
    work = tmp_path / "work"
    work.mkdir()
    with caplog.at_level("WARNING", logger="crm_core.ingest.reader"):
        raw = reader.prepare(path, work)
    assert raw.parts == [work / "r.utf8.csv"] and raw.skip == 1
    assert sorted(p.name for p in work.iterdir()) == ["r.utf8.csv"]
    assert raw.parts[0].read_bytes().decode("utf-8") == path.read_bytes().decode("cp932")
    assert "worker exited with 9: MemoryError: worker killed" in caplog.text


def test_progress_names_the_derived_steps_after_an_import(store, tmp_path):
    rows = [{**fx.rakuten_rows()[0], "注文番号": f"o-{i}", "商品明細ID": f"L{i}"} for i in range(3)]
    heard: list[tuple[float, str]] = []
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv", rows)], progress=lambda f, t: heard.append((f, t)))
    texts = [t for _, t in heard]
    steps = ["顧客分析（RFM・ランク・予測）を計算しています…", "お客様ごとのおすすめ商品を選んでいます…",
             "保存したセグメントの人数を数えています…", "取り込みが完了しました。"]
    assert [t for t in texts if t in steps] == steps
    fractions = [f for f, _ in heard]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
