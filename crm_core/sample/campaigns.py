"""Past campaigns of the fictional sample shop, so 「施策の効果」 means something on first start.

:func:`load_sample_campaigns` freezes four campaigns on the loaded sample shop
at dates inside its data, choosing recipients from what was known on the
send day (orders before ``sent_at``, LINE friends and e-mail opt-ins from
``customers``), with the normal hash assignment of :mod:`crm_core.results.campaigns`.

Because the shop's orders already exist, the effect of a campaign is
simulated by **direct INSERTs into ``orders`` and ``order_lines``**: for the
campaigns with a real effect, seeded extra orders for some treatment
(non-holdout) customers inside the attribution window.  Each extra order
copies the customer's latest earlier order (source, buyer details,
prefecture, payment method, import id) and its first line's product, with
a new order id in the source's id shape (Rakuten ``392817-YYYYMMDD-8NNNNNN``,
Shopify ``#8NNNNN``), ``content_hash`` :data:`crm_core.db.SAMPLE_ORDER_HASH` and, for coupon
campaigns, the coupon code and a 15% discount.  Then the customer model is
rebuilt (:func:`crm_core.pipeline.after_import`).  Per-recipient delivery /
open / click rows are generated for the LINE and e-mail sends (R-Mail gives
no per-recipient results, as in reality).

=====================================  =======  ==========  =======================
campaign                               channel  holdout     effect (extra buyers)
=====================================  =======  ==========  =======================
休眠のお客様へ 15%OFFクーポン            LINE     25%         +12 points (real)
秋の新作のご案内（件名A/Bテスト）        e-mail   15%, A/B    A +1, B +10 points
定期便のご案内                          R-Mail   10%         none (marked as sent)
お買い物マラソン前の予告                 LINE     10%         none
=====================================  =======  ==========  =======================
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crm_core.db import SAMPLE_ORDER_HASH, Store
from crm_core.results import campaigns as C


@dataclass(frozen=True)
class SampleCampaign:
    name: str
    channel: str
    sent_at: dt.datetime
    audience: str
    holdout: float
    variants: tuple[str, ...] = ("A",)
    extra_buy: dict[str, float] = field(default_factory=dict)
    coupon: str = ""
    template: str = ""
    open_rate: float = 0.5
    click_rate: float = 0.08


SAMPLE_CAMPAIGNS = (
    SampleCampaign("休眠のお客様へ 15%OFFクーポン（LINE）", "line", dt.datetime(2026, 6, 10, 12, 0), "dormant_line", 0.25,
                   extra_buy={"A": 0.12}, coupon="COMEBACK15", template="休眠掘り起こし", open_rate=0.62, click_rate=0.12),
    SampleCampaign("秋の新作のご案内（件名A/Bテスト）", "email", dt.datetime(2026, 9, 16, 12, 0), "email_buyers", 0.15,
                   variants=("A", "B"), extra_buy={"A": 0.01, "B": 0.10}, template="新商品のお知らせ", open_rate=0.24, click_rate=0.04),
    SampleCampaign("定期便のご案内（R-Mail）", "rmail", dt.datetime(2026, 7, 22, 20, 0), "rakuten_mail", 0.1, template="定期便のご案内"),
    SampleCampaign("お買い物マラソン前の予告（LINE）", "line", dt.datetime(2026, 10, 3, 12, 0), "line_buyers", 0.1,
                   template="セール予告", open_rate=0.55, click_rate=0.06),
)

_AUDIENCE_SQL = {
    # LINE friends whose last order before the send is at least 60 days old.
    "dormant_line": """SELECT c.customer_id FROM customers c JOIN orders o ON o.customer_id = c.customer_id
        WHERE c.line_user_id IS NOT NULL AND NOT coalesce(o.cancelled, FALSE) AND o.ordered_at < $sent
        GROUP BY c.customer_id HAVING max(o.ordered_at) < $sent - INTERVAL 60 DAY""",
    "email_buyers": """SELECT DISTINCT c.customer_id FROM customers c JOIN orders o ON o.customer_id = c.customer_id
        WHERE c.email_opt_in AND c.email IS NOT NULL AND o.ordered_at < $sent""",
    "rakuten_mail": """SELECT DISTINCT c.customer_id FROM customers c JOIN orders o ON o.customer_id = c.customer_id
        WHERE c.email_opt_in AND o.source = 'rakuten' AND o.ordered_at < $sent""",
    "line_buyers": """SELECT DISTINCT c.customer_id FROM customers c JOIN orders o ON o.customer_id = c.customer_id
        WHERE c.line_user_id IS NOT NULL AND o.ordered_at < $sent""",
}


def _extra_orders(store: Store, cid: int, spec: SampleCampaign, rec: pd.DataFrame, rng: np.random.Generator,
                  start_no: int) -> tuple[int, list[str]]:
    """Insert the seeded extra orders of one campaign; return (count, buyers)."""
    treat = rec[~rec["holdout"]].reset_index(drop=True)
    p = treat["variant"].map(lambda v: spec.extra_buy.get(v, 0.0)).to_numpy(dtype=float)
    buys = rng.random(len(treat)) < p
    buyers = treat.loc[buys, "customer_id"].tolist()
    if not buyers:
        return 0, []
    hours = rng.integers(1, 24 * min(6, 7), len(buyers))  # inside the 7-day window
    rows = []
    for i, (customer, h) in enumerate(zip(buyers, hours)):
        rows.append({"customer_id": customer, "ordered_at": spec.sent_at + dt.timedelta(hours=int(h), minutes=int(rng.integers(0, 60))),
                     "no": start_no + i})
    new = pd.DataFrame(rows)
    cur = store.cursor()
    cur.register("sample_extra", new)
    # The customer's latest earlier order is the template of each extra order.
    cur.execute(
        """CREATE OR REPLACE TEMP TABLE sample_extra_orders AS
        WITH latest AS (
            SELECT e.no, e.ordered_at AS new_at, o.*, row_number() OVER (PARTITION BY e.no ORDER BY o.ordered_at DESC) AS k
            FROM sample_extra e JOIN orders o ON o.customer_id = e.customer_id AND o.ordered_at < $sent
        ), first_line AS (
            SELECT source, order_id, product_id, sku, product_name, category, unit_price FROM order_lines WHERE line_no = 1
        )
        SELECT l.*, CASE WHEN l.source = 'rakuten' THEN '392817-' || strftime(l.new_at, '%Y%m%d') || '-8' || lpad(CAST(l.no AS VARCHAR), 6, '0')
                         ELSE '#8' || lpad(CAST(l.no AS VARCHAR), 5, '0') END AS new_id,
               f.product_id AS p_id, f.sku AS p_sku, f.product_name AS p_name, f.category AS p_cat,
               CAST(coalesce(f.unit_price, 3300) AS DECIMAL(18, 2)) AS price
        FROM latest l LEFT JOIN first_line f ON f.source = l.source AND f.order_id = l.order_id
        WHERE l.k = 1""",
        {"sent": spec.sent_at},
    )
    coupon = spec.coupon or None
    cur.execute(
        """INSERT INTO orders (order_id, source, customer_id, ordered_at, status, cancelled, total_amount, item_amount,
               shipping_fee, discount_amount, points_used, refunded_amount, coupon_code, payment_method, prefecture,
               buyer_name, buyer_name_kana, email, phone, postcode, gender, birthday, email_opt_in, customer_key,
               content_hash, import_id)
           SELECT new_id, source, customer_id, new_at, status, FALSE,
                  price - CASE WHEN $coupon IS NULL THEN 0 ELSE round(price * 0.15) END, price, 0,
                  CASE WHEN $coupon IS NULL THEN 0 ELSE round(price * 0.15) END, 0, 0, $coupon, payment_method, prefecture,
                  buyer_name, buyer_name_kana, email, phone, postcode, gender, birthday, email_opt_in, customer_key,
                  """ + SAMPLE_ORDER_HASH + """, import_id
           FROM sample_extra_orders""",  # noqa: S608 - a constant SQL expression
        {"coupon": coupon},
    )
    cur.execute(
        """INSERT INTO order_lines (source, order_id, line_no, product_id, sku, product_name, category, unit_price, quantity, line_amount)
           SELECT source, new_id, 1, p_id, p_sku, p_name, p_cat, price, 1, price FROM sample_extra_orders"""
    )
    added = int(cur.execute("SELECT count(*) FROM sample_extra_orders").fetchone()[0])
    cur.execute("DROP TABLE sample_extra_orders")
    cur.unregister("sample_extra")
    return added, buyers


def _events(spec: SampleCampaign, rec: pd.DataFrame, buyers: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """Per-recipient delivery / open / click rows of the treatment group."""
    treat = rec[~rec["holdout"]].reset_index(drop=True)
    n = len(treat)
    delivered = rng.random(n) < (0.96 if spec.channel == "line" else 0.98)
    opened = delivered & (rng.random(n) < spec.open_rate)
    clicked = opened & (rng.random(n) < spec.click_rate / max(spec.open_rate, 1e-9))
    moved = treat["customer_id"].isin(set(buyers)).to_numpy()
    # Customers the message moved to buy mostly clicked it.
    moved_click = moved & (rng.random(n) < 0.8)
    clicked = clicked | moved_click
    opened = opened | clicked
    delivered = delivered | opened
    return pd.DataFrame({"customer_id": treat["customer_id"], "delivered": delivered, "opened": opened, "clicked": clicked})


def load_sample_campaigns(store: Store, seed: int = 7, rebuild: bool = True) -> list[int]:
    """Freeze the sample shop's past campaigns with results; return their ids.

    Call after :func:`crm_core.sample.load.load_sample`.  Does nothing (returns
    ``[]``) when campaigns already exist or the store has no orders.
    Deterministic for a given shop and ``seed``.
    """
    if store.is_empty() or store.scalar("SELECT count(*) FROM campaigns"):
        return []
    ids: list[int] = []
    extra_total = 0
    for k, spec in enumerate(SAMPLE_CAMPAIGNS):
        audience = [r[0] for r in store.fetchall(_AUDIENCE_SQL[spec.audience] + " ORDER BY 1", {"sent": spec.sent_at})]
        if not audience:
            continue
        cid = C.freeze_campaign(
            store, spec.name, spec.channel, spec.sent_at, customer_ids=audience, holdout_share=spec.holdout,
            variants=spec.variants, coupon_code=spec.coupon, template=spec.template,
            line_plan="light" if spec.channel == "line" else None, marked_only=spec.channel == "rmail",
            now=spec.sent_at - dt.timedelta(minutes=5),
        )
        ids.append(cid)
        rec = C.recipients(store, cid)
        rng = np.random.default_rng([seed, k])  # one stream per campaign
        added, buyers = _extra_orders(store, cid, spec, rec, rng, start_no=(k + 1) * 10_000)
        extra_total += added
        if spec.channel != "rmail":
            ev = _events(spec, rec, buyers, rng)
            C.import_results(store, cid, ev.astype({"delivered": int, "opened": int, "clicked": int}).astype(str),
                             {"customer_id": "customer_id", "delivered": "delivered", "opened": "opened", "clicked": "clicked"},
                             file_name="sample_results.csv", now=spec.sent_at + dt.timedelta(days=8))
    if extra_total and rebuild:
        from crm_core import pipeline

        pipeline.after_import(store)
    return ids
