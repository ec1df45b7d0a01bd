"""The eight-customer segment shop (shared test data; no tests here).

A hand-checkable ``customer_model``, orders, products and sale events describing
the day 2026-10-31 (``AS_OF``).  Every expected customer set in the segment,
library, campaign and page tests can be read off ``CUSTOMERS`` and ``ORDERS``.
"""

from __future__ import annotations

import datetime as dt

from crm_core.db import Store

AS_OF = dt.date(2026, 10, 31)
ALL = {"C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"}

MODEL_DDL = """
CREATE TABLE customer_model (
    customer_id VARCHAR, name VARCHAR, email VARCHAR, prefecture VARCHAR, gender VARCHAR, birthday DATE,
    age INTEGER, birthday_month INTEGER, email_opt_in BOOLEAN, line_user_id VARCHAR, has_line BOOLEAN,
    first_order_at TIMESTAMP, last_order_at TIMESTAMP, orders BIGINT, revenue DECIMAL(18, 2),
    aov DECIMAL(18, 2), recency_days BIGINT, tenure_days BIGINT, avg_days_between_orders DOUBLE,
    orders_12m BIGINT, revenue_12m DECIMAL(18, 2), r_score INTEGER, f_score INTEGER, m_score INTEGER,
    rfm_segment VARCHAR, rank VARCHAR, next_rank VARCHAR, gap_to_next_rank DECIMAL(18, 2),
    orders_to_next_rank BIGINT, acquisition_event VARCHAR, first_source VARCHAR, last_product_id VARCHAR, last_product_name VARCHAR,
    last_category VARCHAR, subscription_status VARCHAR, subscription_deliveries BIGINT, used_coupon BOOLEAN,
    sale_only_buyer BOOLEAN, p_alive DOUBLE, churn_probability_90d DOUBLE, churn_risk VARCHAR,
    expected_orders_365d DOUBLE, predicted_clv_365d DOUBLE, expected_next_order_date DATE, as_of DATE
)
"""

COLUMNS = ["customer_id", "name", "email", "prefecture", "gender", "birthday", "age", "birthday_month", "email_opt_in", "line_user_id", "has_line", "first_order_at", "last_order_at", "orders", "revenue", "aov", "recency_days", "tenure_days", "avg_days_between_orders", "orders_12m", "revenue_12m", "r_score", "f_score", "m_score", "rfm_segment", "rank", "next_rank", "gap_to_next_rank", "orders_to_next_rank", "acquisition_event", "first_source", "last_product_id", "last_product_name", "last_category", "subscription_status", "subscription_deliveries", "used_coupon", "sale_only_buyer", "p_alive", "churn_probability_90d", "churn_risk", "expected_orders_365d", "predicted_clv_365d", "expected_next_order_date"]

# fmt: off
CUSTOMERS = [
    # id  name            email               pref       gender  birthday      age  bm   opt    line  has_line
    ("C1", "佐藤 花子", "c1@example.jp", "東京都", "女性", "1990-10-15", 36, 10, True, "U1", True,
     # first_order_at       last_order_at          orders revenue aov  recency tenure avg_days 12m_o 12m_rev
     "2025-01-10 10:00:00", "2026-10-20 12:00:00", 5, 50000, 10000, 11, 659, 161.0, 3, 30000,
     # r f m  rfm        rank      next      gap  o_gap  acq     source     last product
     5, 4, 5, "優良顧客", "ゴールド", "プラチナ", 20000, None, "通常", "rakuten", "P1", "化粧水A", "化粧水",
     # sub       deliveries coupon sale_only p_alive churn risk exp_orders clv    next_date
     "継続中", 4, True, False, 0.9, 0.2, "低", 3.0, 40000.0, "2026-11-20"),
    ("C2", "鈴木 一郎", "c2@example.jp", "大阪府", "男性", "1985-11-03", 40, 11, False, "U2", True,
     "2024-06-01 09:00:00", "2026-06-01 21:00:00", 2, 12000, 6000, 152, 882, 365.0, 1, 6000,
     2, 2, 3, "休眠予備軍", "レギュラー", "シルバー", 2000, None, "スーパーSALE", "rakuten", "P2", "美容液B", "美容液",
     "解約", 2, False, True, 0.5, 0.7, "高", 0.5, 3000.0, None),
    ("C3", "髙橋 ①子", "c3@example.jp", "東京都", "女性", None, None, None, True, None, False,
     "2026-09-15 12:00:00", "2026-09-15 12:00:00", 1, 8000, 8000, 46, 46, None, 1, 8000,
     4, 1, 2, "新規顧客", "シルバー", "ゴールド", 12000, None, "お買い物マラソン", "shopify", "P1", "化粧水A", "化粧水",
     None, 0, True, False, 1.0, 0.5, "中", 0.8, 6000.0, "2026-12-01"),
    ("C4", "田中 次郎", "c4@example.jp", "北海道", "男性", "1970-04-20", 56, 4, True, "U4", True,
     "2023-01-01 10:00:00", "2025-12-01 10:00:00", 10, 200000, 20000, 334, 1399, 111.0, 1, 20000,
     1, 5, 5, "休眠", "ゴールド", "プラチナ", 30000, None, "通常", "rakuten", "P3", "サプリC", "サプリ",
     "解約", 6, False, False, 0.3, 0.9, "高", 0.2, 4000.0, None),
    ("C5", "伊藤 美咲", None, "神奈川県", "女性", "2000-11-30", 25, 11, False, None, False,
     "2026-08-20 10:00:00", "2026-08-20 10:00:00", 1, 3000, 3000, 72, 72, None, 1, 3000,
     3, 1, 1, "育成中", "レギュラー", "シルバー", 5000, None, "通常", "shopify", "P2", "美容液B", "美容液",
     None, 0, False, False, 1.0, 0.6, "中", 0.4, 1200.0, None),
    ("C6", "=HYPERLINK(\"http://x\")", "+81@example.jp", None, None, "1995-10-01", 31, 10, True, "U6", True,
     "2026-10-01 10:00:00", "2026-10-30 10:00:00", 3, 15000, 5000, 1, 30, 14.5, 3, 15000,
     5, 3, 3, "安定顧客", "シルバー", "ゴールド", 5000, None, "通常", "rakuten", "P1", "化粧水A", "化粧水",
     "継続中", 3, False, False, 0.95, 0.1, "低", 5.0, 25000.0, "2026-11-10"),
    ("C7", "山本 ゆかり", "c7@example.jp", "東京都", "女性", None, None, None, None, "", False,
     "2024-01-01 10:00:00", "2024-12-31 10:00:00", 2, 9000, 4500, 669, 1034, 365.0, 0, 0,
     1, 2, 2, "休眠", "レギュラー", "シルバー", 8000, None, "スーパーSALE", "rakuten", "P3", "サプリC", "サプリ",
     None, 0, True, True, None, None, None, None, None, None),
    ("C8", "渡辺 恵", "c8@example.jp", "大阪府", "女性", "1988-12-25", 37, 12, True, "U8", True,
     "2025-05-05 10:00:00", "2026-10-31 23:00:00", 4, 44000, 11000, 0, 544, 90.0, 4, 44000,
     5, 4, 5, "優良顧客", "プラチナ", None, None, None, "お買い物マラソン", "rakuten", "P4", "クリームD", "スキンケア",
     None, 0, False, False, 0.99, 0.05, "低", 4.0, 50000.0, "2026-11-25"),
]

# order_id, customer, ordered_at, total, cancelled, coupon_code, discount, [(line_no, product_id, category on the line)]
ORDERS = [
    ("O1", "C1", "2026-10-20 12:00:00", 10000, False, "THANKS10", 0, [(1, "P1", "化粧水")]),
    ("O2", "C1", "2026-05-01 10:00:00", 20000, False, None, 500, [(1, "P2", "美容液")]),
    ("O14", "C1", "2026-09-20 10:00:00", 10000, False, None, 0, [(1, "P1", "化粧水")]),
    ("O3", "C2", "2026-06-05 21:00:00", 6000, False, None, 0, [(1, "P2", "美容液")]),      # スーパーSALE (June)
    ("O13", "C2", "2026-03-06 10:00:00", 6000, False, None, 0, [(1, "P3", "サプリ")]),     # スーパーSALE (March)
    ("O4", "C3", "2026-09-15 12:00:00", 8000, False, "WELCOME15", 0, [(1, "P1", "化粧水")]),  # マラソン
    ("O5", "C4", "2025-12-01 10:00:00", 20000, False, "", 0, [(1, "P3", "サプリ")]),
    ("O6", "C5", "2026-08-20 10:00:00", 3000, False, None, 0, [(1, "P2", "美容液")]),
    ("O7", "C6", "2026-10-01 10:00:00", 5000, False, None, 0, [(1, "P1", "化粧水")]),      # ワンダフルデー
    ("O8", "C6", "2026-10-15 10:00:00", 5000, False, None, 0, [(1, "P1", "化粧水")]),
    ("O9", "C6", "2026-10-30 10:00:00", 5000, False, None, 0, [(1, "P1", "化粧水")]),
    ("O10", "C8", "2026-10-31 23:00:00", 11000, False, None, 0, [(1, "P4", "クリーム")]),  # master says スキンケア
    ("O11", "C8", "2026-11-02 10:00:00", 99999, False, "LATE", 0, [(1, "P5", "その他")]),  # after as_of
    ("O12", "C7", "2026-10-10 10:00:00", 7000, True, "CANCEL", 700, [(1, "P3", "サプリ")]),  # cancelled
]
PRODUCTS = [("P1", "化粧水A", "化粧水"), ("P2", "美容液B", "美容液"), ("P3", "サプリC", "サプリ"), ("P4", "クリームD", "スキンケア")]
SALE_EVENTS = [
    ("super_sale-2026-03-04", "super_sale", "楽天スーパーSALE 2026年3月", "2026-03-04 20:00:00", "2026-03-11 01:59:59"),
    ("super_sale-2026-06-04", "super_sale", "楽天スーパーSALE 2026年6月", "2026-06-04 20:00:00", "2026-06-11 01:59:59"),
    ("marathon-2026-09-10", "marathon", "お買い物マラソン 2026年9月", "2026-09-10 20:00:00", "2026-09-16 01:59:59"),
    ("wonderful_day-2026-10-01", "wonderful_day", "ワンダフルデー 2026年10月1日", "2026-10-01 00:00:00", "2026-10-01 23:59:59"),
]
# fmt: on


def fill_store(store: Store, sale_events: bool = True) -> Store:
    """Write the eight-customer shop into a store."""
    cur = store.cursor()
    cur.execute(MODEL_DDL)
    marks = ", ".join("?" for _ in range(len(COLUMNS) + 1))
    cur.executemany(f"INSERT INTO customer_model VALUES ({marks})", [list(row) + [AS_OF] for row in CUSTOMERS])
    for oid, cid, at, total, cancelled, coupon, discount, lines in ORDERS:
        cur.execute(
            "INSERT INTO orders (order_id, source, customer_id, ordered_at, cancelled, total_amount, coupon_code, discount_amount) "
            "VALUES (?, 'rakuten', ?, ?, ?, ?, ?, ?)",
            [oid, cid, at, cancelled, total, coupon, discount],
        )
        for line_no, pid, category in lines:
            cur.execute(
                "INSERT INTO order_lines (source, order_id, line_no, product_id, product_name, category, quantity, line_amount) "
                "VALUES ('rakuten', ?, ?, ?, ?, ?, 1, ?)",
                [oid, line_no, pid, f"{pid}の明細名", category, total],
            )
    cur.executemany("INSERT INTO products (product_id, product_name, category, import_id) VALUES (?, ?, ?, 1)", PRODUCTS)
    if sale_events:
        # The marketer's calendar: these windows as own events, on top of the bundled calendar.
        from crm_core.events import calendar

        for _, kind, name, starts_at, ends_at in SALE_EVENTS:
            calendar.add_event(store, kind, name, starts_at, ends_at)
    return store


def segment_store(sale_events: bool = True) -> Store:
    """A fresh in-memory store holding the eight-customer shop."""
    return fill_store(Store(":memory:"), sale_events)
