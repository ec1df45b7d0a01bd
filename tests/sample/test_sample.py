"""Tests of the fictional sample shop generator (crm_core.sample.generate)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from crm_core.sample import generate as sample
from crm_core.sample.generate import generate_sample

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "export_headers.json"  # copy of the reference header lists (FACTS.md)

ORDER_LEVEL = (
    "ステータス", "注文日時", "注文日", "注文時間", "支払方法名", "配送方法", "注文種別", "商品合計金額", "消費税合計",
    "送料合計", "請求金額", "合計金額", "ポイント利用額", "クーポン利用総額", "店舗発行クーポン利用額",
    "楽天発行クーポン利用額", "注文者郵便番号1", "注文者郵便番号2", "注文者住所都道府県", "注文者姓", "注文者名",
    "注文者姓カナ", "注文者名カナ", "注文者電話番号1", "注文者電話番号2", "注文者電話番号3", "注文者メールアドレス",
    "注文者性別", "申込番号", "申込お届け回数", "送付先ID", "送付先合計金額",
)
SHOPIFY_ORDER_LEVEL = (
    "Email", "Financial Status", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code", "Discount Amount",
    "Created at", "Billing Name", "Billing Zip", "Billing Province", "Billing Phone", "Cancelled at",
    "Refunded Amount", "Id", "Accepts Marketing",
)


def _read(path: Path, encoding: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, [dict(zip(header, row, strict=True)) for row in reader]


def _parse_ts(text: str) -> dt.datetime:
    return dt.datetime.strptime(text.replace("/", "-"), "%Y-%m-%d %H:%M:%S")


def _orders(rows: list[dict[str, str]], key: str) -> dict[str, list[dict[str, str]]]:
    """Rows grouped by order, checking that each order's rows are contiguous."""
    groups: dict[str, list[dict[str, str]]] = {}
    last = None
    for row in rows:
        k = row[key]
        if k != last:
            assert k not in groups, f"rows of order {k} are not contiguous (or the number is reused)"
            groups[k] = []
            last = k
        groups[k].append(row)
    return groups


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The default-size shop (2,000 customers), generated once for the module."""
    out = tmp_path_factory.mktemp("sample")
    marks: list[float] = []
    paths = generate_sample(out, customers=2000, seed=7, progress=marks.append)
    r_header, r_rows = _read(paths["rakuten_orders"], "cp932")
    s_header, s_rows = _read(paths["shopify_orders"], "utf-8-sig")
    c_header, c_rows = _read(paths["contacts"], "utf-8-sig")
    p_header, p_rows = _read(paths["products"], "utf-8-sig")
    return {
        "paths": paths, "marks": marks,
        "r_header": r_header, "r_rows": r_rows, "r_orders": _orders(r_rows, "注文番号"),
        "s_header": s_header, "s_rows": s_rows, "s_orders": _orders(s_rows, "Name"),
        "c_header": c_header, "c_rows": c_rows, "p_header": p_header, "p_rows": p_rows,
    }


# -- determinism ---------------------------------------------------------------


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    a = generate_sample(tmp_path / "a", customers=300, seed=11)
    b = generate_sample(tmp_path / "b", customers=300, seed=11)
    c = generate_sample(tmp_path / "c", customers=300, seed=12)
    assert set(a) == {"rakuten_orders", "shopify_orders", "products", "contacts"}
    for key in a:
        assert a[key].read_bytes() == b[key].read_bytes(), key
    assert a["rakuten_orders"].read_bytes() != c["rakuten_orders"].read_bytes()
    assert a["shopify_orders"].read_bytes() != c["shopify_orders"].read_bytes()
    assert a["contacts"].read_bytes() != c["contacts"].read_bytes()


def test_chunks_keep_identifiers_unique_and_report_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sample, "CHUNK_CUSTOMERS", 150)
    marks: list[float] = []
    paths = generate_sample(tmp_path, customers=600, seed=5, progress=marks.append)
    assert marks == [0.25, 0.5, 0.75, 1.0]
    _, rows = _read(paths["rakuten_orders"], "cp932")
    orders = _orders(rows, "注文番号")  # asserts contiguity and no reuse across chunks
    line_ids = [r["商品明細ID"] for r in rows]
    assert len(set(line_ids)) == len(line_ids)
    ship_ids = [g[0]["送付先ID"] for g in orders.values()]
    assert len(set(ship_ids)) == len(ship_ids)
    subs: dict[str, set[str]] = defaultdict(set)
    for g in orders.values():
        if g[0]["申込番号"]:
            subs[g[0]["申込番号"]].add(g[0]["注文者メールアドレス"])
    assert subs and all(len(v) == 1 for v in subs.values())  # one subscriber per 申込番号
    _, s_rows = _read(paths["shopify_orders"], "utf-8-sig")
    names = list(_orders(s_rows, "Name"))
    assert names == [f"#{1001 + i}" for i in range(len(names))]


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_sample(tmp_path, customers=0)
    with pytest.raises(ValueError):
        generate_sample(tmp_path, customers=10, shopify_share=1.5)


# -- Rakuten file ----------------------------------------------------------------


def test_rakuten_file_is_cp932_with_reference_header(shop: dict) -> None:
    raw = shop["paths"]["rakuten_orders"].read_bytes()
    text = raw.decode("cp932")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("shift_jis")
    assert "\uff5e" in text  # ～ (cp932 0x8160), in product names and delivery slots
    assert any(ch in text for ch in "髙﨑①②③㈱")
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))["rakuten_rpay_order_csv"]["columns"]
    assert shop["r_header"] == reference
    assert list(sample.RAKUTEN_COLUMNS) == shop["r_header"]
    assert len(shop["r_header"]) == 107


def test_rakuten_quotes_every_field_and_uses_crlf(shop: dict) -> None:
    text = shop["paths"]["rakuten_orders"].read_bytes().decode("cp932")
    assert text.startswith('"注文番号","ステータス",')
    records = text.split("\r\n")
    assert records[-1] == ""
    n_fields = len(sample.RAKUTEN_COLUMNS)
    with_newline = 0
    for rec in records[:-1]:
        if "\n" in rec:
            with_newline += 1  # a comment with a line break inside its quotes
        assert rec.startswith('"') and rec.endswith('"')
        assert rec.count('","') == n_fields - 1
    assert len(records) - 1 == len(shop["r_rows"]) + 1
    assert with_newline >= 1


def test_order_level_values_repeat_and_amounts_add_up(shop: dict) -> None:
    shipping_fees = set()
    for number, rows in shop["r_orders"].items():
        first = rows[0]
        for row in rows[1:]:
            for col in ORDER_LEVEL:
                assert row[col] == first[col], (number, col)
        items = sum(int(r["単価"]) * int(r["個数"]) for r in rows)
        amount = {k: int(first[k]) for k in ("商品合計金額", "送料合計", "合計金額", "請求金額", "ポイント利用額",
                                             "クーポン利用総額", "店舗発行クーポン利用額", "楽天発行クーポン利用額")}
        assert amount["商品合計金額"] == items, number
        assert amount["合計金額"] == items + amount["送料合計"], number
        assert amount["請求金額"] == amount["合計金額"] - amount["ポイント利用額"] - amount["クーポン利用総額"], number
        assert amount["クーポン利用総額"] == amount["店舗発行クーポン利用額"] + amount["楽天発行クーポン利用額"]
        assert amount["請求金額"] >= 0
        assert amount["送料合計"] == (0 if items >= 3980 else 550), number
        assert first["送付先合計金額"] == first["合計金額"]
        shipping_fees.add(amount["送料合計"])
        assert 1 <= len(rows) <= 4
    assert shipping_fees == {0, 550}


def test_rakuten_identifiers_are_unique_and_well_formed(shop: dict) -> None:
    rows, orders = shop["r_rows"], shop["r_orders"]
    line_ids = [r["商品明細ID"] for r in rows]
    assert len(set(line_ids)) == len(line_ids)
    pattern = re.compile(r"^\d{6}-(\d{8})-\d{7}$")
    for number, group in orders.items():
        m = pattern.match(number)
        assert m, number
        assert m.group(1) == group[0]["注文日"].replace("-", "").replace("/", "")
    emails = {g[0]["注文者メールアドレス"] for g in orders.values()}
    assert all(re.fullmatch(r"[0-9a-z]{10}@pc\.fw\.rakuten\.ne\.jp", e) for e in emails)
    # stable per customer: one e-mail per phone number and vice versa
    by_phone: dict[str, set[str]] = defaultdict(set)
    by_mail: dict[str, set[str]] = defaultdict(set)
    for g in orders.values():
        phone = "-".join(g[0][f"注文者電話番号{i}"] for i in (1, 2, 3))
        by_phone[phone].add(g[0]["注文者メールアドレス"])
        by_mail[g[0]["注文者メールアドレス"]].add(phone)
    assert all(len(v) == 1 for v in by_phone.values())
    assert all(len(v) == 1 for v in by_mail.values())


def test_both_date_forms_and_statuses(shop: dict) -> None:
    dash = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
    slash = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d$")
    stamps = [g[0]["注文日時"] for g in shop["r_orders"].values()]
    n_dash = sum(bool(dash.match(s)) for s in stamps)
    n_slash = sum(bool(slash.match(s)) for s in stamps)
    assert n_dash + n_slash == len(stamps)
    assert n_slash > 0 and n_dash > 10 * n_slash
    for g in shop["r_orders"].values():
        when = _parse_ts(g[0]["注文日時"])
        assert g[0]["注文時間"] == when.strftime("%H:%M:%S")
        assert dt.date(2024, 11, 1) <= when.date() <= dt.date(2026, 10, 31)
    status = [g[0]["ステータス"] for g in shop["r_orders"].values()]
    counts = {s: status.count(s) for s in set(status)}
    assert set(counts) == {"発送済", "キャンセル確定", "発送待ち"}
    assert 0.01 < counts["キャンセル確定"] / len(status) < 0.05
    pending = [_parse_ts(g[0]["注文日時"]) for g in shop["r_orders"].values() if g[0]["ステータス"] == "発送待ち"]
    assert min(pending) >= dt.datetime(2026, 10, 25)


def test_subscription_deliveries_are_consecutive(shop: dict) -> None:
    deliveries: dict[str, list[tuple[dt.datetime, int]]] = defaultdict(list)
    for g in shop["r_orders"].values():
        first = g[0]
        if first["申込番号"]:
            assert first["注文種別"] == "定期購入"
            deliveries[first["申込番号"]].append((_parse_ts(first["注文日時"]), int(first["申込お届け回数"])))
        else:
            assert first["申込お届け回数"] == "" and first["注文種別"] == "通常購入"
    assert len(deliveries) > 50
    lengths = []
    for number, items in deliveries.items():
        items.sort()
        assert [seq for _, seq in items] == list(range(1, len(items) + 1)), number
        gaps = [(b - a).days for (a, _), (b, _) in zip(items, items[1:])]
        assert all(25 <= gap <= 65 for gap in gaps), (number, gaps)
        lengths.append(len(items))
    # continuation decays: fewer subscriptions reach each further delivery
    reach = [sum(n >= k for n in lengths) for k in (1, 2, 3, 6)]
    assert reach[0] > reach[1] > reach[2] > reach[3] > 0
    buyers = {g[0]["注文者メールアドレス"] for g in shop["r_orders"].values()}
    subscribers = {g[0]["注文者メールアドレス"] for g in shop["r_orders"].values() if g[0]["申込番号"]}
    assert 0.05 < len(subscribers) / len(buyers) < 0.18


def test_super_sale_days_have_more_orders(shop: dict) -> None:
    per_day: dict[dt.date, int] = defaultdict(int)
    for g in shop["r_orders"].values():
        per_day[_parse_ts(g[0]["注文日時"]).date()] += 1
    day, inside, outside = dt.date(2024, 11, 1), [], []
    while day <= dt.date(2026, 10, 31):
        in_sale = day.month in (3, 6, 9, 12) and 5 <= day.day <= 10
        (inside if in_sale else outside).append(per_day.get(day, 0))
        day += dt.timedelta(days=1)
    assert len(inside) == 48
    assert (sum(inside) / len(inside)) > 1.5 * (sum(outside) / len(outside))


def test_realistic_volume_and_repeat_behaviour(shop: dict) -> None:
    lines = len(shop["r_rows"]) + len(shop["s_rows"])
    assert 6_000 <= lines <= 12_000
    per_customer: dict[str, int] = defaultdict(int)
    coupons = points = 0
    for g in shop["r_orders"].values():
        per_customer[g[0]["注文者メールアドレス"]] += 1
        coupons += g[0]["クーポン利用総額"] != "0"
        points += g[0]["ポイント利用額"] != "0"
    n_orders = len(shop["r_orders"])
    f2 = sum(n >= 2 for n in per_customer.values()) / len(per_customer)
    assert 0.2 < f2 < 0.42
    assert 0.05 < coupons / n_orders < 0.15
    assert 0.13 < points / n_orders < 0.28
    n_lines = [len(g) for g in shop["r_orders"].values()]
    assert sum(n <= 2 for n in n_lines) / len(n_lines) > 0.7
    prefs = defaultdict(int)
    for g in shop["r_orders"].values():
        prefs[g[0]["注文者住所都道府県"]] += 1
    assert max(prefs, key=prefs.get) == "東京都"
    assert len(prefs) > 30


# -- Shopify file ------------------------------------------------------------------


def test_shopify_bom_header_and_first_row_rule(shop: dict) -> None:
    raw = shop["paths"]["shopify_orders"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))["shopify_orders_export"]["columns"]
    assert shop["s_header"] == reference
    created = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0900$")
    multi = 0
    for name, rows in shop["s_orders"].items():
        first = rows[0]
        for col in ("Email", "Financial Status", "Subtotal", "Total", "Created at", "Billing Name", "Id"):
            assert first[col], (name, col)
        assert created.match(first["Created at"])
        for row in rows:
            for col in ("Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem sku"):
                assert row[col], (name, col)
        for row in rows[1:]:
            multi += 1
            for col in SHOPIFY_ORDER_LEVEL:
                assert row[col] == "", (name, col)
        items = sum(int(r["Lineitem price"]) * int(r["Lineitem quantity"]) for r in rows)
        assert int(first["Subtotal"]) == items - int(first["Discount Amount"])
        assert int(first["Total"]) == int(first["Subtotal"]) + int(first["Shipping"])
        assert re.fullmatch(r"[a-z0-9._]+@example\.(jp|com)", first["Email"])
    assert multi > 0


def test_shopify_cancellations_refunds_and_apostrophes(shop: dict) -> None:
    firsts = [rows[0] for rows in shop["s_orders"].values()]
    status = defaultdict(int)
    for f in firsts:
        status[f["Financial Status"]] += 1
        if f["Cancelled at"]:
            assert f["Financial Status"] in ("refunded", "voided")
        if f["Financial Status"] == "refunded":
            assert f["Refunded Amount"] == f["Total"] and f["Cancelled at"]
        if f["Financial Status"] == "partially_refunded":
            assert 0 < int(f["Refunded Amount"]) < int(f["Total"])
    assert status["paid"] > 0.9 * len(firsts)
    assert status["refunded"] + status["voided"] > 0 and status["partially_refunded"] > 0
    assert any(f["Billing Zip"].startswith("'") for f in firsts)
    assert any(f["Billing Phone"].startswith("'") for f in firsts)
    rakuten_mails = {g[0]["注文者メールアドレス"] for g in shop["r_orders"].values()}
    assert not rakuten_mails & {f["Email"] for f in firsts}  # separate populations


# -- products and contacts ---------------------------------------------------------------


def test_products_cover_every_ordered_product(shop: dict) -> None:
    assert shop["paths"]["products"].read_bytes().startswith(b"\xef\xbb\xbf")
    assert shop["p_header"] == ["商品管理番号", "商品名", "カテゴリ", "標準リピート日数"]
    keys = {p["商品管理番号"]: p for p in shop["p_rows"]}
    assert 25 <= len(keys) == len(shop["p_rows"]) <= 40
    assert {r["商品管理番号"] for r in shop["r_rows"]} <= set(keys)
    assert {r["Lineitem sku"] for r in shop["s_rows"]} <= set(keys)
    categories = {p["カテゴリ"] for p in shop["p_rows"]}
    assert categories == {"化粧水", "美容液", "クレンジング", "日焼け止め", "サプリメント", "ファンデーション", "口紅",
                          "ギフトセット"}
    for p in shop["p_rows"]:
        if p["カテゴリ"] == "ギフトセット":
            assert p["標準リピート日数"] == ""
        else:
            assert 30 <= int(p["標準リピート日数"]) <= 180
    prices = {int(r["単価"]) for r in shop["r_rows"]}
    assert min(prices) >= 800 and max(prices) <= 12_000


def test_contacts_match_order_emails(shop: dict) -> None:
    assert shop["paths"]["contacts"].read_bytes().startswith(b"\xef\xbb\xbf")
    assert shop["c_header"] == ["メールアドレス", "電話番号", "LINEユーザーID", "誕生日", "メルマガ希望"]
    emails = {g[0]["注文者メールアドレス"] for g in shop["r_orders"].values()}
    emails |= {rows[0]["Email"] for rows in shop["s_orders"].values()}
    contacts = shop["c_rows"]
    assert {c["メールアドレス"] for c in contacts} <= emails
    assert len({c["メールアドレス"] for c in contacts}) == len(contacts)
    assert 0.3 < len(contacts) / len(emails) < 0.5
    line_ids = [c["LINEユーザーID"] for c in contacts if c["LINEユーザーID"]]
    assert line_ids and all(re.fullmatch(r"U[0-9a-f]{32}", u) for u in line_ids)
    assert len(set(line_ids)) == len(line_ids)
    birthdays = [c["誕生日"] for c in contacts if c["誕生日"]]
    assert 0.6 < len(birthdays) / len(contacts) < 0.8
    assert all(dt.date.fromisoformat(b) < dt.date(2010, 1, 1) for b in birthdays)
    assert {c["メルマガ希望"] for c in contacts} == {"0", "1"}


def test_rakuten_rows_parse_with_csv_module_in_memory(shop: dict) -> None:
    # The same bytes read through an in-memory stream: no stray quotes, every row 107 fields.
    text = shop["paths"]["rakuten_orders"].read_bytes().decode("cp932")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert all(len(r) == 107 for r in rows)
    comments = [r[shop["r_header"].index("コメント")] for r in rows[1:]]
    assert any("\n" in c for c in comments)


def test_sale_calendar_super_sale_and_confirmed_marathon() -> None:
    events = sample.sale_calendar(dt.date(2025, 1, 1), dt.date(2026, 3, 31))
    ss = [e for e in events if e.kind == "super_sale"]
    assert [(e.start, e.end) for e in ss][:2] == [
        (dt.datetime(2025, 3, 4, 20), dt.datetime(2025, 3, 11, 2)),
        (dt.datetime(2025, 6, 4, 20), dt.datetime(2025, 6, 11, 2)),
    ]
    assert any(e.kind == "marathon" and e.start == dt.datetime(2026, 2, 19, 20) and e.status == "confirmed"
               for e in events)
    assert all(e.start.hour == 20 for e in events if e.kind in ("marathon", "super_sale"))
