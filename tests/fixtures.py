"""Small hand-checkable export files, written by code (nothing generated is committed).

Each builder writes a file in the exact shape of a real export and returns its
path.  The values are chosen so every expected number in the tests can be
computed by hand from this file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

HEADERS = json.loads((Path(__file__).resolve().parent / "data" / "export_headers.json").read_text(encoding="utf-8"))
"""The reference header lists (a copy of FACTS.md's export_headers.json, kept in tests/data)."""


def _headers(name: str, fallback: list[str]) -> list[str]:
    return HEADERS[name]["columns"] if HEADERS else fallback


RAKUTEN_MIN = [
    "注文番号", "ステータス", "注文日時", "商品合計金額", "送料合計", "請求金額", "合計金額", "ポイント利用額",
    "クーポン利用総額", "注文者郵便番号1", "注文者郵便番号2", "注文者住所都道府県", "注文者姓", "注文者名",
    "注文者姓カナ", "注文者名カナ", "注文者電話番号1", "注文者電話番号2", "注文者電話番号3", "注文者メールアドレス",
    "注文者性別", "申込番号", "申込お届け回数", "商品明細ID", "商品ID", "商品名", "商品番号", "商品管理番号", "単価", "個数",
]


def write_csv(path: Path, header: list[str], rows: list[dict], encoding: str, quote_all: bool = True) -> Path:
    """Write rows (dicts keyed by header) in the given encoding with CRLF line ends."""
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(h, "") for h in header])
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def rakuten_rows() -> list[dict]:
    """Three orders, five rows: a two-item order, a cancelled order, a subscription order.

    Customer 髙橋 ①子 orders twice (orders A and C) with the same masked e-mail.
    Order A: 2 lines, 1,980×2 + 3,300×1 = 7,260 item total, shipping 0, total 7,260,
             points 500, coupon 300 -> billed 6,460 (order-level values repeated on both rows).
    Order B: cancelled (キャンセル確定), 1 line 12,000 (full-width digits and ￥ in the amount).
    Order C: subscription 申込番号 S-1 delivery 2, 1 line 4,400 + shipping 550 = 4,950, slash date form.
    """
    a = {
        "注文番号": "111111-20250104-0000001", "ステータス": "発送済", "注文日時": "2025-01-04 21:15:00",
        "商品合計金額": "7260", "送料合計": "0", "合計金額": "7260", "請求金額": "6460", "ポイント利用額": "500",
        "クーポン利用総額": "300", "注文者郵便番号1": "150", "注文者郵便番号2": "0001", "注文者住所都道府県": "東京都",
        "注文者姓": "髙橋", "注文者名": "①子", "注文者姓カナ": "タカハシ", "注文者名カナ": "イチコ",
        "注文者電話番号1": "03", "注文者電話番号2": "1234", "注文者電話番号3": "5678",
        "注文者メールアドレス": "abc123xyz0@pc.fw.rakuten.ne.jp", "注文者性別": "女",
    }
    b = {
        **a, "注文番号": "111111-20250210-0000002", "ステータス": "キャンセル確定", "注文日時": "2025-02-10 10:00:00",
        "商品合計金額": "￥１２，０００", "送料合計": "0", "合計金額": "￥１２，０００", "請求金額": "12000",
        "ポイント利用額": "0", "クーポン利用総額": "0",
        "注文者姓": "山﨑", "注文者名": "㈱花子", "注文者メールアドレス": "zzz999qqq1@pc.fw.rakuten.ne.jp",
        "注文者電話番号1": "06", "注文者電話番号2": "9999", "注文者電話番号3": "0000", "注文者住所都道府県": "大阪府",
    }
    c = {
        **a, "注文番号": "111111-20250305-0000003", "注文日時": "2025/03/05 12:30:00", "商品合計金額": "4400",
        "送料合計": "550", "合計金額": "4950", "請求金額": "4950", "ポイント利用額": "0", "クーポン利用総額": "0",
        "申込番号": "S-1", "申込お届け回数": "2",
    }
    return [
        {**a, "商品明細ID": "L1", "商品ID": "10000001", "商品名": "薬用化粧水～しっとり～", "商品番号": "LOT-01",
         "商品管理番号": "lotion-01", "単価": "1980", "個数": "2"},
        {**a, "商品明細ID": "L2", "商品ID": "10000002", "商品名": "美容液", "商品番号": "SER-01",
         "商品管理番号": "serum-01", "単価": "3300", "個数": "1"},
        {**b, "商品明細ID": "L3", "商品ID": "10000003", "商品名": "ギフトセット", "商品番号": "GIFT-01",
         "商品管理番号": "gift-01", "単価": "12000", "個数": "1"},
        {**c, "商品明細ID": "L4", "商品ID": "10000004", "商品名": "定期便サプリ", "商品番号": "SUP-01",
         "商品管理番号": "supp-01", "単価": "4400", "個数": "1"},
    ]


def rakuten_current(path: Path, rows: list[dict] | None = None, full_header: bool = True) -> Path:
    """Rakuten current (楽天ペイ) export in cp932."""
    header = _headers("rakuten_rpay_order_csv", RAKUTEN_MIN) if full_header else RAKUTEN_MIN
    return write_csv(path, header, rows if rows is not None else rakuten_rows(), "cp932")


LEGACY_MAP = {
    "注文番号": "受注番号", "ステータス": "受注ステータス", "商品合計金額": "合計", "送料合計": "送料(-99999=無効値)",
    "合計金額": "合計金額(-99999=無効値)", "クーポン利用総額": "クーポン利用額", "注文者姓": "注文者名字",
    "注文者名": "注文者名前", "注文者メールアドレス": "メールアドレス", "注文者住所都道府県": "注文者住所：都道府県",
    "注文者電話番号1": "注文者電話番号１", "注文者電話番号2": "注文者電話番号２", "注文者電話番号3": "注文者電話番号３",
    "注文者郵便番号1": "注文者郵便番号１", "注文者郵便番号2": "注文者郵便番号２",
}


def rakuten_legacy(path: Path) -> Path:
    """The same orders in the older RMS 受注CSV layout (full-width digits and colons in headers)."""
    rows = []
    for r in rakuten_rows():
        legacy = {LEGACY_MAP.get(k, k): v for k, v in r.items()}
        legacy["受注ステータス"] = "キャンセル" if "キャンセル" in r["ステータス"] else "処理済"
        legacy["商品番号"] = r["商品管理番号"]
        legacy["注文者誕生日"] = "1985-07-20" if r["注文者姓"] == "髙橋" else ""
        legacy["メールフラグ"] = "1"
        rows.append(legacy)
    header = _headers("rakuten_legacy_order_csv", list(rows[0]))
    return write_csv(path, header, rows, "cp932")


def shopify_rows() -> list[dict]:
    """Two orders: #1001 with two line items (fields only on the first row), #1002 refunded.

    #1001: Created at 2025-05-01 10:00:00 +0000 -> 19:00 JST; total 5,500; discount code WELCOME10 (500).
    #1002: refunded, total 3,000, Created at 2025-05-02 09:00:00 +0900.
    """
    first = {
        "Name": "#1001", "Email": "hanako@example.jp", "Financial Status": "paid", "Accepts Marketing": "yes",
        "Currency": "JPY", "Subtotal": "5000", "Shipping": "500", "Taxes": "0", "Total": "5500",
        "Discount Code": "WELCOME10", "Discount Amount": "500", "Created at": "2025-05-01 10:00:00 +0000",
        "Billing Name": "佐藤 花子", "Billing Zip": "'1500001", "Billing Province": "Tokyo",
        "Billing Phone": "'090-1111-2222", "Id": "5550001",
    }
    return [
        {**first, "Lineitem quantity": "2", "Lineitem name": "クレンジング", "Lineitem price": "1500", "Lineitem sku": "CL-1"},
        {"Name": "#1001", "Lineitem quantity": "1", "Lineitem name": "美容液", "Lineitem price": "2500", "Lineitem sku": "SE-1"},
        {"Name": "#1002", "Email": "jiro@example.jp", "Financial Status": "refunded", "Subtotal": "3000", "Shipping": "0",
         "Total": "3000", "Created at": "2025-05-02 09:00:00 +0900", "Cancelled at": "2025-05-03 09:00:00 +0900",
         "Billing Name": "鈴木 次郎", "Billing Province": "Osaka", "Lineitem quantity": "1", "Lineitem name": "日焼け止め",
         "Lineitem price": "3000", "Lineitem sku": "SUN-1", "Id": "5550002"},
    ]


def shopify_orders(path: Path, bom: bool = True) -> Path:
    """Shopify orders export (UTF-8, with BOM by default), minimal quoting like Shopify."""
    header = _headers("shopify_orders_export", list(shopify_rows()[0]))
    return write_csv(path, header, shopify_rows(), "utf-8-sig" if bom else "utf-8", quote_all=False)


def shopify_customers(path: Path) -> Path:
    """Shopify customers export (2023+) with one opted-in customer."""
    header = _headers("shopify_customers_export", ["Customer ID", "First Name", "Last Name", "Email", "Accepts Email Marketing", "Phone", "Total Spent", "Total Orders", "Tags"])
    rows = [{"Customer ID": "'7001", "First Name": "花子", "Last Name": "佐藤", "Email": "Hanako@example.jp",
             "Accepts Email Marketing": "yes", "Phone": "'+819011112222", "Total Spent": "5500", "Total Orders": "1", "Tags": "VIP"}]
    return write_csv(path, header, rows, "utf-8", quote_all=False)
