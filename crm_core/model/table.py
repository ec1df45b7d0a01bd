"""The ``customer_model`` contract and reading it: columns and labels, the as-of day, the last build report, sizes."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pandas as pd

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.purchases import is_customer_purchase

TABLE = "customer_model"
META_TABLE = "customer_model_meta"

COLUMNS: tuple[str, ...] = (
    "customer_id", "name", "email", "prefecture", "gender", "birthday", "age", "birthday_month",
    "email_opt_in", "line_user_id", "has_line", "first_order_at", "last_order_at", "orders", "revenue",
    "aov", "recency_days", "tenure_days", "avg_days_between_orders", "orders_12m", "revenue_12m",
    "r_score", "f_score", "m_score", "rfm_segment", "rank", "next_rank", "gap_to_next_rank",
    "orders_to_next_rank", "acquisition_event", "first_source", "last_product_id", "last_product_name", "last_category",
    "subscription_status", "subscription_deliveries", "used_coupon", "sale_only_buyer", "p_alive",
    "churn_probability_90d", "churn_risk", "expected_orders_365d", "predicted_clv_365d",
    "expected_next_order_date", "as_of",
)
"""Columns of ``customer_model``, in table order."""

COLUMN_LABELS: dict[str, str] = {
    "customer_id": "顧客ID", "name": "氏名", "email": "メールアドレス", "prefecture": "都道府県",
    "gender": "性別", "birthday": "誕生日", "age": "年齢", "birthday_month": "誕生月",
    "email_opt_in": "メール配信許可", "line_user_id": "LINEユーザーID", "has_line": "LINE連携",
    "first_order_at": "初回購入日時", "last_order_at": "最終購入日時", "orders": "購入回数",
    "revenue": "累計購入金額", "aov": "平均購入単価", "recency_days": "最終購入からの日数",
    "tenure_days": "初回購入からの日数", "avg_days_between_orders": "平均購入間隔（日）",
    "orders_12m": "直近12か月の購入回数", "revenue_12m": "直近12か月の購入金額", "r_score": "Rスコア",
    "f_score": "Fスコア", "m_score": "Mスコア", "rfm_segment": "RFMセグメント", "rank": "会員ランク",
    "next_rank": "次のランク", "gap_to_next_rank": "次のランクまでの金額",
    "orders_to_next_rank": "次のランクまでの購入回数", "acquisition_event": "初回購入のイベント",
    "first_source": "初回購入の販路", "last_product_id": "最終購入商品ID", "last_product_name": "最終購入商品名",
    "last_category": "最終購入カテゴリ", "subscription_status": "定期購入の状態",
    "subscription_deliveries": "定期お届け回数", "used_coupon": "クーポン利用あり",
    "sale_only_buyer": "セール時のみ購入", "p_alive": "継続確率", "churn_probability_90d": "90日離反確率",
    "churn_risk": "離反リスク", "expected_orders_365d": "今後365日の予測購入回数",
    "predicted_clv_365d": "今後365日の予測購入金額", "expected_next_order_date": "次回購入予測日",
    "as_of": "基準日",
}
"""Japanese labels of the columns, for pages and exports."""


# ---------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------

_NOT_CANCELLED = is_customer_purchase()


def as_of_default(store: Store) -> date | None:
    """The day of the last non-cancelled order (None without orders)."""
    value = store.scalar("SELECT CAST(max(ordered_at) AS DATE) FROM orders WHERE " + _NOT_CANCELLED)  # noqa: S608 - constant
    return value


def _as_date(value: date | datetime | str | None) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip().replace("/", "-"))
        except ValueError as exc:
            raise InputError(f"基準日「{value}」を日付として読み取れません（例: 2026-06-30）。", str(exc)) from exc
    raise InputError("基準日は日付で指定してください。", f"bad as_of {value!r}")


def stored_as_of(store: Store) -> date | None:
    """The as-of day of the stored ``customer_model`` (None if not built or empty).

    The one place the model's as-of day is read: the analyses, the segment builder and the
    export all ask here.
    """
    if not store.has_table(TABLE):
        return None
    return _as_date(store.scalar("SELECT max(as_of) FROM " + TABLE))  # noqa: S608 - constant


def last_report(store: Store) -> dict[str, Any] | None:
    """The report of the last rebuild as a dict (None if never built)."""
    if not store.has_table(META_TABLE):
        return None
    value = store.scalar("SELECT report FROM " + META_TABLE)  # noqa: S608 - constant
    return json.loads(value) if value else None


def customer_table(store: Store) -> pd.DataFrame:
    """The stored ``customer_model`` as a DataFrame, ordered by ``customer_id``.

    Raises
    ------
    InputError
        If the table has not been built yet.
    """
    if not store.has_table(TABLE):
        raise InputError("顧客テーブルがまだ作成されていません。注文データを取り込んでください。", "customer_model missing")
    return store.df("SELECT * FROM customer_model ORDER BY customer_id")


def current_sizes(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Customers per RFM segment (with revenue) and per rank in the stored model, for the settings page.

    Japanese column names: ``セグメント, 人数, 累計売上`` (largest first) and ``ランク, 人数``
    (highest rank first).
    """
    sizes = store.df(
        "SELECT rfm_segment AS セグメント, count(*) AS 人数, sum(revenue) AS 累計売上 FROM customer_model GROUP BY 1 ORDER BY 2 DESC"
    )
    ranks = store.df(
        "SELECT rank AS ランク, count(*) AS 人数 FROM customer_model GROUP BY 1 ORDER BY min(revenue_12m) DESC"
    )
    return sizes, ranks
