"""Shared setup for the live-send tests: a store file with many customers, channels pointed at local servers."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd

from crm_core.db import Store
from crm_core.messaging import templates as T
from tests.servers.customers import seed_customers

JST = dt.timezone(dt.timedelta(hours=9))
NOON = dt.datetime(2026, 12, 3, 12, 0, tzinfo=JST)
TEMPLATE = "winter_sale"
LINE_RULE = {"all": [{"field": "has_line", "op": "is_true"}]}
EMAIL_RULE = {"all": [{"field": "email_opt_in", "op": "is_true"}]}
SECRET = "unsubscribe-secret-for-tests-0123456789"
PUBLIC = "https://crm.example.jp"
LIVE_TOKEN = "live-token"  # noqa: S105 - the LINE stand-in's token in the live-send tests


def line_id(i: int) -> str:
    return f"U{i:032x}"


def seed_many(store: Store, line_users: int = 0, emails: int = 0, rakuten: int = 0) -> Store:
    """The three message-test customers plus ``line_users`` LINE friends and ``emails`` opted-in addresses."""
    seed_customers(store)
    rows = []
    for i in range(line_users):
        rows.append((f"L{i:05d}", f"顧客{i}", None, False, line_id(1000 + i)))
    for i in range(emails):
        rows.append((f"E{i:05d}", f"メール{i}", f"m{i}@example.jp", True, None))
    for i in range(rakuten):
        rows.append((f"R{i:05d}", f"楽天{i}", f"r{i}abc@pc.fw.rakuten.ne.jp", True, None))
    if rows:
        frame = pd.DataFrame(rows, columns=["customer_id", "name", "email", "email_opt_in", "line_user_id"])
        frame["has_line"] = frame["line_user_id"].notna()
        with store.transaction() as cur:
            cur.register("new_customers", frame)
            cur.execute("INSERT INTO customer_model (customer_id, name, email, email_opt_in, line_user_id, has_line, orders, revenue,"
                        " aov, recency_days, as_of) SELECT customer_id, name, email, email_opt_in, line_user_id, has_line, 1, 1000, 1000,"
                        " 30, DATE '2026-11-22' FROM new_customers")
            cur.unregister("new_customers")
    base = T.load_presets()["thanks_first"]
    T.save_template(store, dataclasses.replace(
        base, key="winter_sale", label="冬のセール", builtin=False, card=None,
        line_text="冬のセールを開催中です。\n{{ shop_url }}\n---\nこの機会をお見逃しなく。",
        email_subject="【{{ shop_name }}】冬のセールのお知らせ", email_body="冬のセールを開催中です。\n{{ shop_url }}"))
    T.save_template(store, dataclasses.replace(
        base, key="winter_sale_b", label="冬のセールB", builtin=False, card=None,
        line_text="【最大50%OFF】冬のセール開催中！\n{{ shop_url }}",
        email_subject="【最大50%OFF】冬のセール", email_body="最大50%OFF。\n{{ shop_url }}"))
    return store


def make_store(path: Path, **kw: int) -> Store:
    return seed_many(Store(path), **kw)
