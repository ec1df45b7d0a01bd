"""A tiny ``customer_model`` / ``customer_recommendations`` for message tests."""

from __future__ import annotations

from crm_core.db import Store
from crm_core.messaging.templates import ShopProfile, save_shop_profile

LINE_USER = "U" + "0123456789abcdef" * 2
OTHER_LINE_USER = "U" + "fedcba9876543210" * 2

CUSTOMERS = [
    # customer_id, name, email, email_opt_in, line_user_id, orders, revenue, rank, next_rank, gap, last_product_id, last_product_name, recency
    ("C001", "髙橋 ①子", "hanako@example.jp", True, LINE_USER, 3, 15800, "ゴールド", "プラチナ", 4200, "P-1", "薬用美白美容液 30mL", 20),
    ("C002", None, "anon@example.jp", False, None, 1, 2980, None, None, None, None, None, 200),
    ("C003", "{{7*7}}<script>alert(1)</script>", "evil@example.jp", True, OTHER_LINE_USER, 1, 1200, "レギュラー", "ゴールド", 8800, "P-2", "<b>保湿クリーム</b>", 45),
]


def seed_customers(store: Store, shop: bool = True) -> Store:
    """Create and fill ``customer_model`` and ``customer_recommendations`` (and a shop profile)."""
    store.execute(
        """CREATE TABLE IF NOT EXISTS customer_model (
            customer_id VARCHAR, name VARCHAR, email VARCHAR, prefecture VARCHAR, gender VARCHAR, birthday DATE,
            age INTEGER, birthday_month INTEGER, email_opt_in BOOLEAN, line_user_id VARCHAR, has_line BOOLEAN,
            first_order_at TIMESTAMP, last_order_at TIMESTAMP, orders BIGINT, revenue DECIMAL(18,2), aov DOUBLE,
            recency_days INTEGER, rank VARCHAR, next_rank VARCHAR, gap_to_next_rank DOUBLE, last_product_id VARCHAR,
            last_product_name VARCHAR, last_category VARCHAR, subscription_status VARCHAR, used_coupon BOOLEAN,
            predicted_clv_365d DOUBLE, expected_next_order_date DATE, first_source VARCHAR, as_of DATE)"""
    )
    for i, (cid, name, email, opt, line, orders, revenue, rank, nxt, gap, pid, pname, rec) in enumerate(CUSTOMERS):
        store.execute(
            "INSERT INTO customer_model (customer_id, name, email, email_opt_in, line_user_id, has_line, orders, revenue, aov, "
            "recency_days, rank, next_rank, gap_to_next_rank, last_product_id, last_product_name, last_order_at, "
            "expected_next_order_date, used_coupon, as_of) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?, TIMESTAMP '2026-11-01 10:00:00' - to_days(?), "
            "DATE '2026-12-01', ?, DATE '2026-11-22')",
            [cid, name, email, opt, line, line is not None, orders, revenue, revenue / orders, rec, rank, nxt, gap, pid, pname, i, i == 0],
        )
    store.execute("CREATE TABLE IF NOT EXISTS customer_recommendations (customer_id VARCHAR, product_id VARCHAR, product_name VARCHAR, score DOUBLE, reason VARCHAR)")
    store.execute(
        "INSERT INTO customer_recommendations VALUES "
        "('C001', 'P-9', '保湿クリーム 50g', 0.9, '「薬用美白美容液」を購入したお客様が次によく購入しています'),"
        "('C001', 'P-8', '洗顔フォーム', 0.5, '人気商品です'),"
        "('C003', 'P-6', '<img src=x onerror=alert(1)>', 0.7, '{{ shop_name }}')"
    )
    if shop:
        save_shop_profile(store, shop_profile())
    return store


def shop_profile(**overrides: str) -> ShopProfile:
    values = dict(
        shop_name="ナチュラルコスメ本舗",
        sender_name="株式会社ナチュラルコスメ",
        shop_address="〒150-0001 東京都渋谷区神宮前1-2-3",
        shop_contact="support@natural.example.jp",
        shop_url="https://www.rakuten.co.jp/natural-cosme/",
        unsubscribe_url="https://www.rakuten.co.jp/natural-cosme/mail/stop/",
        unsubscribe_one_click="1",  # the fixture shop's opt-out page takes RFC 8058 POSTs
        product_url_pattern="https://item.rakuten.co.jp/natural-cosme/{product_id}/",
        image_url="https://image.rakuten.co.jp/natural-cosme/cabinet/top.jpg",
        platform="rakuten",
    )
    values.update(overrides)
    return ShopProfile(**values)
