"""A tiny shop for gross-profit, LINE-link and report tests (every number checkable by hand).

Orders (generic CSV, customers by e-mail):

| order | customer | line (product, sku, category)        | qty × price | cost rule                       | gross profit |
|-------|----------|--------------------------------------|-------------|---------------------------------|--------------|
| O1    | a        | P1, S1, スキンケア                     | 2 × 1,000   | master P1 unit cost 600          | 800          |
| O1    | a        | P2, -, サプリ                          | 1 × 3,000   | master P2 margin 40%             | 1,200        |
| O2    | b        | X-9, sku S1, スキンケア                 | 1 × 1,000   | SKU S1 -> P1's cost 600          | 400          |
| O3    | b        | Y-7, sku 4901234567894, サプリ          | 1 × 2,000   | JAN -> Shopify P3 cost 1,500     | 500          |
| O4    | a        | Z-1, 雑貨                              | 1 × 4,000   | unknown                          | -            |
| O5    | c        | Q-1, サプリ                            | 1 × 1,000   | category サプリ margin 60%        | 600          |
| O6    | c        | P1 (cancelled)                       | 1 × 1,000   | not a purchase                   | -            |
"""

from __future__ import annotations

from pathlib import Path

from crm_core.db import Store
from crm_core.ingest import products as PR
from crm_core.pipeline import import_files
from tests.fixtures import write_csv

ORDER_HEADER = ["注文番号", "注文日時", "メールアドレス", "電話番号", "ステータス", "商品コード", "SKU", "カテゴリ", "単価", "数量"]
ORDER_MAP = {"注文番号": "order_id", "注文日時": "ordered_at", "メールアドレス": "email", "電話番号": "phone",
             "ステータス": "status", "商品コード": "product_id", "SKU": "sku", "カテゴリ": "category",
             "単価": "unit_price", "数量": "quantity"}


def order_rows() -> list[dict]:
    def row(oid, day, who, pid, sku, cat, price, qty, status="発送済"):
        phone = {"a": "090-1111-1111", "b": "090-2222-2222", "c": "090-3333-3333"}[who]
        return {"注文番号": oid, "注文日時": f"2025-01-{day:02d} 10:00:00", "メールアドレス": f"{who}@example.jp",
                "電話番号": phone, "ステータス": status, "商品コード": pid, "SKU": sku, "カテゴリ": cat,
                "単価": str(price), "数量": str(qty)}
    return [
        row("O1", 10, "a", "P1", "S1", "スキンケア", 1000, 2),
        row("O1", 10, "a", "P2", "", "サプリ", 3000, 1),
        row("O2", 11, "b", "X-9", "S1", "スキンケア", 1000, 1),
        row("O3", 12, "b", "Y-7", "4901234567894", "サプリ", 2000, 1),
        row("O4", 13, "a", "Z-1", "", "雑貨", 4000, 1),
        row("O5", 14, "c", "Q-1", "", "サプリ", 1000, 1),
        row("O6", 15, "c", "P1", "S1", "スキンケア", 1000, 1, status="キャンセル"),
    ]


def cost_file(path: Path) -> Path:
    """A generic cost file: P1 unit cost 600 (SKU S1), P2 margin 40%."""
    return write_csv(path, ["商品コード", "SKU", "原価", "粗利率"],
                     [{"商品コード": "P1", "SKU": "S1", "原価": "600"}, {"商品コード": "P2", "粗利率": "40%"}], "utf-8")


COST_MAP = {"商品コード": "product_id", "SKU": "sku", "原価": "unit_cost", "粗利率": "margin_rate"}

SHOPIFY_PRODUCTS_HEADER = ["Handle", "Title", "Body (HTML)", "Vendor", "Type", "Tags", "Published", "Variant SKU",
                           "Variant Price", "Variant Barcode", "Cost per item", "Status"]


def shopify_products(path: Path) -> Path:
    """Shopify products export: P3 with JAN 4901234567894 and Cost per item 1,500; an image-only row."""
    rows = [
        {"Handle": "p3", "Title": "美容液P3", "Type": "サプリ", "Published": "TRUE", "Variant SKU": "P3",
         "Variant Price": "2000", "Variant Barcode": "'4901234567894", "Cost per item": "1500", "Status": "active"},
        {"Handle": "p3"},
    ]
    return write_csv(path, SHOPIFY_PRODUCTS_HEADER, rows, "utf-8-sig")


RMS_ITEMS_HEADER = ["コントロールカラム", "商品管理番号（商品URL）", "商品番号", "全商品ディレクトリID", "商品名", "販売価格", "表示先カテゴリ"]


def rms_items(path: Path) -> Path:
    """RMS item CSV (cp932): P1 renamed, no cost column."""
    rows = [{"コントロールカラム": "u", "商品管理番号（商品URL）": "P1", "商品番号": "S1", "商品名": "化粧水P1", "販売価格": "1000",
             "表示先カテゴリ": "スキンケア"}]
    return write_csv(path, RMS_ITEMS_HEADER, rows, "cp932")


def build(store: Store, tmp_path: Path, rebuild_model: bool = False) -> None:
    """Import the orders and all cost sources, set サプリ to 60%."""
    orders = write_csv(tmp_path / "orders.csv", ORDER_HEADER, order_rows(), "utf-8")
    import_files(store, [orders], fmt="generic", mapping=ORDER_MAP, kind="orders", rebuild_model=rebuild_model)
    import_files(store, [cost_file(tmp_path / "costs.csv")], fmt="generic", mapping=COST_MAP, kind="products",
                 rebuild_model=False)
    import_files(store, [shopify_products(tmp_path / "products_export.csv")], rebuild_model=False)
    PR.set_category_margin(store, "サプリ", 60)
