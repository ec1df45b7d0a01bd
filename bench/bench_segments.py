"""Benchmark the segment builder.

1. A ``customer_model`` of 2,000,000 customers generated (seeded) in DuckDB SQL
   in a temporary store; a typical segment
   (最終購入から90日以上 かつ 購入回数2回以上 かつ 都道府県が首都圏・関西)
   counted with :func:`crm_core.audience.segments.count` (validation, compilation,
   bound parameters) against the same query written by hand in plain DuckDB,
   interleaved, median of ``--runs`` runs each, and the ratio
   (targets: at most 3x and under 100 ms).  For information also the page's
   :func:`~crm_core.audience.segments.summary` (size, shares, reach) and a rule with
   a NOT group.
2. The segment page's rerun after a condition change on the sample shop
   (1,500 customers): ``AppTest`` run time after setting a condition's value,
   median of ``--runs`` changes (target under 300 ms).  AppTest recompiles
   the app and page scripts on every run, so this is an upper bound of what
   a real server does.

Usage::

    python bench/bench_segments.py [--customers 2000000] [--runs 20] [--seed 20261122] [--skip-page]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crm_core.audience import segments as S  # noqa: E402
from crm_core.db import Store  # noqa: E402

AS_OF = date(2026, 10, 31)
PREFECTURES = [
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県", "埼玉県", "千葉県",
    "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県", "岐阜県", "静岡県", "愛知県", "三重県",
    "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県", "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県",
    "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
]
AREA = ["東京都", "神奈川県", "埼玉県", "千葉県", "大阪府", "京都府", "兵庫県"]

RULE = {"all": [
    {"field": "recency_days", "op": "gte", "value": 90},
    {"field": "orders", "op": "gte", "value": 2},
    {"field": "prefecture", "op": "in", "value": AREA},
]}
HAND = (
    "SELECT count(*) FROM customer_model WHERE recency_days >= 90 AND orders >= 2 AND prefecture IN ("
    + ", ".join(f"'{p}'" for p in AREA) + ")"
)
NOT_RULE = {"all": [
    {"field": "orders", "op": "gte", "value": 2},
    {"not": {"any": [{"field": "churn_risk", "op": "eq", "value": "低"}, {"field": "email_opt_in", "op": "is_false"}]}},
]}
NOT_HAND = (
    "SELECT count(*) FROM customer_model WHERE orders >= 2 AND NOT (coalesce(churn_risk = '低', FALSE) "
    "OR NOT coalesce(email_opt_in IS TRUE, FALSE))"
)

GENERATE = [
    "CREATE OR REPLACE MACRO bench_u(i, k, s) AS ((hash(i, k, s) % 1000003)::DOUBLE + 0.5) / 1000003",
    """
    CREATE OR REPLACE TABLE customer_model AS
    WITH p AS (SELECT CAST($seed AS BIGINT) AS s, CAST($as_of AS DATE) AS as_of, CAST($prefs AS VARCHAR[]) AS prefs),
    b AS (
        SELECT i, s, as_of, prefs,
               CAST(1 + least(40, floor(ln(bench_u(i, 1, s)) / ln(0.45))) AS BIGINT) AS orders,
               CAST(floor(bench_u(i, 2, s) * bench_u(i, 2, s) * 1095) AS BIGINT) AS recency_days,
               CAST(floor(bench_u(i, 3, s) * 400) AS BIGINT) AS extra_tenure,
               round(1500 + 14000 * bench_u(i, 4, s) * bench_u(i, 4, s), 0) AS aov_raw,
               bench_u(i, 5, s) AS u5, bench_u(i, 6, s) AS u6, bench_u(i, 7, s) AS u7, bench_u(i, 8, s) AS u8,
               bench_u(i, 9, s) AS u9
        FROM range($n) t(i), p
    )
    SELECT 'C' || lpad(CAST(i AS VARCHAR), 10, '0') AS customer_id,
           '顧客 ' || CAST(i AS VARCHAR) AS name,
           'c' || CAST(i AS VARCHAR) || '@example.jp' AS email,
           list_extract(prefs, 1 + CAST(floor(u5 * len(prefs)) AS INTEGER)) AS prefecture,
           CASE WHEN u6 < 0.7 THEN '女性' WHEN u6 < 0.95 THEN '男性' END AS gender,
           CASE WHEN u7 < 0.6 THEN CAST(DATE '1950-01-01' + CAST(floor(u8 * 20000) AS INTEGER) AS DATE) END AS birthday,
           CASE WHEN u7 < 0.6 THEN CAST(date_sub('year', CAST(DATE '1950-01-01' + CAST(floor(u8 * 20000) AS INTEGER) AS DATE), as_of) AS INTEGER) END AS age,
           CASE WHEN u7 < 0.6 THEN CAST(month(CAST(DATE '1950-01-01' + CAST(floor(u8 * 20000) AS INTEGER) AS DATE)) AS INTEGER) END AS birthday_month,
           u9 < 0.45 AS email_opt_in,
           CASE WHEN u6 < 0.35 THEN 'U' || md5(CAST(i AS VARCHAR)) END AS line_user_id,
           u6 < 0.35 AS has_line,
           CAST(as_of - CAST(recency_days + extra_tenure AS INTEGER) AS TIMESTAMP) AS first_order_at,
           CAST(as_of - CAST(recency_days AS INTEGER) AS TIMESTAMP) + INTERVAL 12 HOUR AS last_order_at,
           orders,
           CAST(aov_raw * orders AS DECIMAL(18, 2)) AS revenue,
           CAST(aov_raw AS DECIMAL(18, 2)) AS aov,
           recency_days,
           recency_days + extra_tenure AS tenure_days,
           CASE WHEN orders > 1 THEN round(extra_tenure / (orders - 1), 1) END AS avg_days_between_orders,
           CAST(CASE WHEN recency_days < 365 THEN least(orders, 1 + CAST(floor(u9 * orders) AS BIGINT)) ELSE 0 END AS BIGINT) AS orders_12m,
           CAST(CASE WHEN recency_days < 365 THEN aov_raw * least(orders, 1 + floor(u9 * orders)) ELSE 0 END AS DECIMAL(18, 2)) AS revenue_12m,
           CAST(CASE WHEN recency_days <= 30 THEN 5 WHEN recency_days <= 90 THEN 4 WHEN recency_days <= 180 THEN 3
                     WHEN recency_days <= 365 THEN 2 ELSE 1 END AS INTEGER) AS r_score,
           CAST(CASE WHEN orders >= 8 THEN 5 WHEN orders >= 5 THEN 4 WHEN orders >= 3 THEN 3 WHEN orders >= 2 THEN 2 ELSE 1 END AS INTEGER) AS f_score,
           CAST(1 + floor(u8 * 5) AS INTEGER) AS m_score,
           CASE WHEN recency_days <= 90 AND orders >= 5 THEN '優良顧客' WHEN recency_days <= 180 AND orders >= 3 THEN '安定顧客'
                WHEN recency_days <= 90 THEN '新規顧客' WHEN recency_days > 365 THEN '離反' ELSE '育成中' END AS rfm_segment,
           CASE WHEN u5 < 0.05 THEN 'プラチナ' WHEN u5 < 0.15 THEN 'ゴールド' WHEN u5 < 0.4 THEN 'シルバー' ELSE 'レギュラー' END AS rank,
           CASE WHEN u5 < 0.05 THEN NULL WHEN u5 < 0.15 THEN 'プラチナ' WHEN u5 < 0.4 THEN 'ゴールド' ELSE 'シルバー' END AS next_rank,
           CAST(CASE WHEN u5 >= 0.05 THEN round(20000 * u7, 0) END AS DECIMAL(18, 2)) AS gap_to_next_rank,
           CASE WHEN u8 < 0.2 THEN 'スーパーSALE' WHEN u8 < 0.45 THEN 'お買い物マラソン' ELSE '通常' END AS acquisition_event,
           CASE WHEN u9 < 0.8 THEN 'rakuten' ELSE 'shopify' END AS first_source,
           'P' || CAST(CAST(floor(u7 * 40) AS INTEGER) AS VARCHAR) AS last_product_id,
           '商品 ' || CAST(CAST(floor(u7 * 40) AS INTEGER) AS VARCHAR) AS last_product_name,
           list_extract(['化粧水', '美容液', 'サプリメント', 'クレンジング'], 1 + CAST(floor(u7 * 4) AS INTEGER)) AS last_category,
           CASE WHEN u6 > 0.97 THEN (CASE WHEN recency_days < 60 THEN '継続中' ELSE '解約' END) END AS subscription_status,
           CAST(CASE WHEN u6 > 0.97 THEN orders ELSE 0 END AS BIGINT) AS subscription_deliveries,
           u8 < 0.2 AS used_coupon,
           orders >= 2 AND u9 < 0.1 AS sale_only_buyer,
           1 - u5 * 0.8 AS p_alive,
           least(0.99, recency_days / 400.0) AS churn_probability_90d,
           CASE WHEN recency_days / 400.0 < 0.33 THEN '低' WHEN recency_days / 400.0 <= 0.66 THEN '中' ELSE '高' END AS churn_risk,
           round(orders * (1 - recency_days / 1100.0), 3) AS expected_orders_365d,
           round(aov_raw * orders * (1 - recency_days / 1100.0), 0) AS predicted_clv_365d,
           CASE WHEN recency_days < 120 THEN CAST(as_of + CAST(floor(u9 * 60) AS INTEGER) AS DATE) END AS expected_next_order_date,
           as_of
    FROM b
    """,
]


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def bench_count(customers: int, runs: int, seed: int) -> dict:
    tmp = tempfile.mkdtemp(prefix="crm-bench-seg-")
    store = Store(Path(tmp) / "bench.duckdb")
    t0 = time.perf_counter()
    store.execute(GENERATE[0])
    store.execute(GENERATE[1], {"seed": seed, "as_of": AS_OF, "prefs": PREFECTURES, "n": customers})
    store.execute("CHECKPOINT")
    print(f"generated customer_model: {customers:,} customers in {time.perf_counter() - t0:.1f} s", flush=True)

    cur = store.cursor()
    results: dict[str, dict] = {}
    for name, rule, hand in (("typical", RULE, HAND), ("not_group", NOT_RULE, NOT_HAND)):
        ours = S.count(store, rule)
        plain = cur.execute(hand).fetchone()[0]
        assert ours == plain, (name, ours, plain)
        for _ in range(3):  # warm up both
            S.count(store, rule)
            cur.execute(hand).fetchone()
        t_ours, t_plain = [], []
        for _ in range(runs):
            a = time.perf_counter()
            S.count(store, rule)
            t_ours.append(time.perf_counter() - a)
            a = time.perf_counter()
            cur.execute(hand).fetchone()
            t_plain.append(time.perf_counter() - a)
        results[name] = {
            "customers": ours,
            "description": S.describe(rule),
            "ours_ms": round(median_ms(t_ours), 2),
            "duckdb_ms": round(median_ms(t_plain), 2),
            "ratio": round(statistics.median(t_ours) / statistics.median(t_plain), 2),
        }
    t_sum = []
    for _ in range(runs):
        a = time.perf_counter()
        S.summary(store, RULE)
        t_sum.append(time.perf_counter() - a)
    results["summary_ms"] = round(median_ms(t_sum), 2)
    store.close()
    for f in Path(tmp).iterdir():
        f.unlink()
    os.rmdir(tmp)
    return results


def bench_page(runs: int) -> dict:
    from streamlit.testing.v1 import AppTest

    from crm_core.sample.load import load_sample

    tmp = tempfile.mkdtemp(prefix="crm-bench-page-")
    db = Path(tmp) / "crm.duckdb"
    store = Store(db)
    load_sample(store)
    n = store.scalar("SELECT count(*) FROM customer_model")
    store.close()
    os.environ["CRM_DB"] = str(db)
    os.environ["CRM_NO_SAMPLE"] = "1"
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/audience/segments.py").run()
    next(b for b in at.button if b.label == "＋ 条件を追加").click().run()
    key = f"seg_{at.session_state['seg_rev']}_0_v_recency_days_gte"
    samples = []
    for i in range(runs + 2):
        a = time.perf_counter()
        at.number_input(key=key).set_value(60 + i).run()
        if i >= 2:  # the first reruns fill caches
            samples.append(time.perf_counter() - a)
        assert not at.exception, at.exception
    shown = next(m.value for m in at.metric if m.label == "該当顧客数")
    return {"customers_in_shop": n, "rerun_ms": round(median_ms(samples), 1),
            "rerun_p90_ms": round(sorted(samples)[int(0.9 * (len(samples) - 1))] * 1000, 1), "last_count_shown": shown}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--skip-page", action="store_true")
    args = parser.parse_args()

    out: dict = {"customers": args.customers, "runs": args.runs}
    out["count"] = bench_count(args.customers, args.runs, args.seed)
    for name in ("typical", "not_group"):
        r = out["count"][name]
        print(f"segment count [{name}] 「{r['description']}」 = {r['customers']:,} customers: "
              f"ours {r['ours_ms']:.2f} ms, plain DuckDB {r['duckdb_ms']:.2f} ms, ratio {r['ratio']:.2f}x "
              f"(target <= 3x and < 100 ms)", flush=True)
    print(f"segment summary (size, shares, reach) {out['count']['summary_ms']:.2f} ms", flush=True)
    if not args.skip_page:
        out["page"] = bench_page(args.runs)
        p = out["page"]
        print(f"page rerun after a condition change (AppTest, sample shop {p['customers_in_shop']:,} customers): "
              f"median {p['rerun_ms']:.0f} ms, p90 {p['rerun_p90_ms']:.0f} ms (target < 300 ms)", flush=True)
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
