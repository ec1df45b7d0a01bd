"""Segment rules: every operator on a hand-checkable shop of eight customers.

The shop (:func:`segment_store`) describes the day 2026-10-31 (``as_of``).
Each expected customer set below can be read off the table in
``CUSTOMERS`` and the orders in ``ORDERS``.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from crm_core.audience import segments as S
from crm_core.audience.fields import FIELDS, OPERATORS, operators_for
from crm_core.db import Store
from crm_core.errors import InputError
from tests.segment_shop import ALL, AS_OF, COLUMNS, segment_store


@pytest.fixture(scope="module")
def store():
    s = segment_store()
    yield s
    s.close()


def ids(store: Store, rule) -> set[str]:
    """The customer ids a rule selects (through the same WHERE clause as count)."""
    df = S.sample(store, rule, limit=100, columns=("customer_id",))
    return set(df["customer_id"])


def c(field, op, value=None, **extra):
    cond = {"field": field, "op": op}
    if value is not None:
        cond["value"] = value
    cond.update(extra)
    return cond


# ---------------------------------------------------------------------------
# One row per operator (and field type): the rule and the customers it selects
# ---------------------------------------------------------------------------

OPERATOR_CASES = [
    # comparisons on numbers
    ("eq-int", c("orders", "eq", 1), {"C3", "C5"}),
    ("ne-int", c("orders", "ne", 1), ALL - {"C3", "C5"}),
    ("gte-int", c("recency_days", "gte", 90), {"C2", "C4", "C7"}),
    ("gt-int", c("recency_days", "gt", 334), {"C7"}),
    ("lte-int", c("recency_days", "lte", 11), {"C1", "C6", "C8"}),
    ("lt-int", c("recency_days", "lt", 11), {"C6", "C8"}),
    ("between-int", c("recency_days", "between", [30, 90]), {"C3", "C5"}),
    ("gte-money", c("revenue", "gte", 44000), {"C1", "C4", "C8"}),
    ("lt-money-decimal", c("aov", "lt", 4500.01), {"C5", "C7"}),
    ("between-money", c("revenue_12m", "between", [8000, 20000]), {"C3", "C4", "C6"}),
    ("gte-ratio", c("churn_probability_90d", "gte", 0.66), {"C2", "C4"}),  # C7 has no prediction
    ("lt-ratio", c("p_alive", "lt", 0.5), {"C4"}),
    ("gte-number", c("avg_days_between_orders", "gte", 161), {"C1", "C2", "C7"}),
    ("eq-score", c("f_score", "eq", 4), {"C1", "C8"}),
    ("in-int", c("r_score", "in", [1, 2]), {"C2", "C4", "C7"}),
    ("not_in-int", c("r_score", "not_in", [5]), ALL - {"C1", "C6", "C8"}),
    ("gte-age", c("age", "gte", 40), {"C2", "C4"}),  # C3, C7 have no age
    ("is_empty-age", c("age", "is_empty"), {"C3", "C7"}),
    ("is_not_empty-age", c("age", "is_not_empty"), ALL - {"C3", "C7"}),
    ("is_empty-money", c("gap_to_next_rank", "is_empty"), {"C8"}),
    # relative numbers
    ("top_pct-20", c("revenue_12m", "top_pct", 20), {"C8", "C1"}),  # 8 customers: the top ceil(1.6) = 2
    ("top_pct-50", c("revenue_12m", "top_pct", 50), {"C8", "C1", "C4", "C6"}),
    ("top_pct-100", c("revenue_12m", "top_pct", 100), ALL),
    ("gte_avg_times-2", c("aov", "gte_avg_times", 2), {"C4"}),  # average aov 8,437.5 -> 16,875
    ("gte_avg_times-1", c("revenue", "gte_avg_times", 1), {"C1", "C4", "C8"}),  # average 42,625
    # text and choices
    ("eq-choice", c("prefecture", "eq", "東京都"), {"C1", "C3", "C7"}),
    ("ne-choice-includes-empty", c("prefecture", "ne", "東京都"), {"C2", "C4", "C5", "C6", "C8"}),
    ("in-choice", c("prefecture", "in", ["大阪府", "北海道"]), {"C2", "C4", "C8"}),
    ("not_in-choice", c("prefecture", "not_in", ["東京都", "大阪府"]), {"C4", "C5", "C6"}),
    ("contains-text", c("name", "contains", "子"), {"C1", "C3"}),
    ("contains-case-insensitive", c("email", "contains", "C1@EXAMPLE"), {"C1"}),
    ("not_contains-text", c("email", "not_contains", "example.jp"), {"C5"}),
    ("contains-no-wildcards", c("name", "contains", "%"), set()),
    ("is_empty-text", c("line_user_id", "is_empty"), {"C3", "C5", "C7"}),  # '' counts as empty
    ("is_not_empty-text", c("prefecture", "is_not_empty"), ALL - {"C6"}),
    ("eq-choice-code", c("first_source", "eq", "shopify"), {"C3", "C5"}),
    ("eq-churn-risk", c("churn_risk", "eq", "高"), {"C2", "C4"}),
    ("eq-subscription", c("subscription_status", "eq", "継続中"), {"C1", "C6"}),
    ("ne-subscription", c("subscription_status", "ne", "継続中"), ALL - {"C1", "C6"}),
    ("eq-hostile-string", c("name", "eq", "'; DROP TABLE orders; --"), set()),
    # booleans
    ("is_true", c("email_opt_in", "is_true"), {"C1", "C3", "C4", "C6", "C8"}),
    ("is_false-includes-unknown", c("email_opt_in", "is_false"), {"C2", "C5", "C7"}),
    ("is_true-sale-only", c("sale_only_buyer", "is_true"), {"C2", "C7"}),
    ("is_true-has-line", c("has_line", "is_true"), {"C1", "C2", "C4", "C6", "C8"}),
    # dates (timestamps compare by day)
    ("eq-date", c("last_order_at", "eq", "2026-10-31"), {"C8"}),
    ("gte-date", c("first_order_at", "gte", "2026-08-20"), {"C3", "C5", "C6"}),
    ("lt-date", c("last_order_at", "lt", "2025-12-01"), {"C7"}),
    ("between-date", c("last_order_at", "between", ["2026-09-01", "2026-10-20"]), {"C1", "C3"}),
    ("within_last_days-30", c("last_order_at", "within_last_days", 30), {"C1", "C6", "C8"}),  # 10-02 .. 10-31
    ("within_last_days-1", c("last_order_at", "within_last_days", 1), {"C8"}),
    ("before_last_days-334", c("last_order_at", "before_last_days", 334), {"C4", "C7"}),  # recency >= 334
    ("within_next_days", c("expected_next_order_date", "within_next_days", 20), {"C1", "C6"}),  # 10-31 .. 11-20
    ("this_month-date", c("last_order_at", "this_month"), {"C1", "C6", "C8"}),
    ("next_month-date", c("expected_next_order_date", "next_month"), {"C1", "C6", "C8"}),
    ("is_empty-date", c("expected_next_order_date", "is_empty"), {"C2", "C4", "C5", "C7"}),
    # birthdays, relative to as_of (October)
    ("this_month-birthday", c("birthday", "this_month"), {"C1", "C6"}),
    ("next_month-birthday", c("birthday", "next_month"), {"C2", "C5"}),
    ("this_month-month", c("birthday_month", "this_month"), {"C1", "C6"}),
    ("in-month", c("birthday_month", "in", [11, 12]), {"C2", "C5", "C8"}),
    ("between-month", c("birthday_month", "between", [4, 10]), {"C1", "C4", "C6"}),
    ("lt-birthday", c("birthday", "lt", "1986-01-01"), {"C2", "C4"}),
    # purchase behaviour (orders / order_lines / products; cancelled and after-as_of orders never count)
    ("bought-product", c("bought_product", "bought", ["P1"]), {"C1", "C3", "C6"}),
    ("bought-product-cancelled-ignored", c("bought_product", "bought", ["P3"]), {"C2", "C4"}),
    ("bought-product-after-as_of-ignored", c("bought_product", "bought", ["P5"]), set()),
    ("bought-product-last-30-days", c("bought_product", "bought", ["P1"], window={"days": 30}), {"C1", "C6"}),
    ("bought-product-dates", c("bought_product", "bought", ["P2"], window={"from": "2026-06-01", "to": "2026-06-30"}), {"C2"}),
    ("bought-product-from", c("bought_product", "bought", ["P2"], window={"from": "2026-06-01"}), {"C2", "C5"}),
    ("bought-product-to", c("bought_product", "bought", ["P2"], window={"to": "2026-05-01"}), {"C1"}),
    ("not_bought-product", c("bought_product", "not_bought", ["P1", "P2"]), {"C4", "C7", "C8"}),
    ("bought-category-master-wins", c("bought_category", "bought", ["スキンケア"]), {"C8"}),
    ("bought-category-line-overridden", c("bought_category", "bought", ["クリーム"]), set()),
    ("bought-category", c("bought_category", "bought", ["美容液"]), {"C1", "C2", "C5"}),
    ("not_bought-category-window", c("bought_category", "not_bought", ["化粧水"], window={"days": 30}), ALL - {"C1", "C6"}),
    ("orders_in_window-gte", c("orders_in_window", "gte", 2, window={"days": 30}), {"C6"}),
    ("orders_in_window-eq-0", c("orders_in_window", "eq", 0, window={"days": 30}), {"C2", "C3", "C4", "C5", "C7"}),
    ("orders_in_window-all-time", c("orders_in_window", "gte", 2), {"C1", "C2", "C6"}),
    ("spend_in_window-gte", c("spend_in_window", "gte", 10000, window={"days": 30}), {"C1", "C6", "C8"}),
    ("spend_in_window-between", c("spend_in_window", "between", [1, 9999], window={"days": 60}), {"C3"}),  # 09-02 .. 10-31
    ("coupon-any", c("coupon_use", "used"), {"C1", "C3"}),  # a code or a discount; C7's is cancelled
    ("coupon-code-case-insensitive", c("coupon_use", "used", "welcome15"), {"C3"}),
    ("coupon-window", c("coupon_use", "used", window={"days": 30}), {"C1"}),
    ("coupon-not-used", c("coupon_use", "not_used"), ALL - {"C1", "C3"}),
    ("sale-super-sale", c("sale_order", "ordered_in", ["super_sale"]), {"C2"}),
    # the calendar is the bundled one plus SALE_EVENTS: C3 09-15 (own marathon), C6 10-01 and C1 05-01 and
    # C4 12-01 (ワンダフルデー), C1 09-20 and C5 08-20 (bundled marathons, the 19th 20:00 .. the 24th 01:59)
    ("sale-marathon-or-wonderful", c("sale_order", "ordered_in", ["marathon", "wonderful_day"]),
     {"C1", "C3", "C4", "C5", "C6"}),
    ("sale-window", c("sale_order", "ordered_in", ["super_sale"], window={"from": "2026-06-01"}), {"C2"}),
    ("sale-window-none", c("sale_order", "ordered_in", ["super_sale"], window={"days": 30}), set()),
    ("sale-not", c("sale_order", "not_ordered_in", ["super_sale", "marathon"]), ALL - {"C1", "C2", "C3", "C5"}),
    # repurchase cycle of P1: intervals 14, 15 (C6) and 30 (C1) -> median 15;
    # C6 has two intervals: own median 14.5 -> due 10-30 + 15 = 11-14; C1: 10-20 + 15 = 11-04; C3: 09-15 + 15 = 09-30
    ("due_within-14", c("reorder_due", "due_within", 14), {"C1", "C6"}),
    ("due_within-4", c("reorder_due", "due_within", 4), {"C1"}),
    ("overdue_within-30", c("reorder_due", "overdue_within", 30), set()),
    ("overdue_within-31", c("reorder_due", "overdue_within", 31), {"C3"}),
    ("due_within-category", c("reorder_due_category", "due_within", 14), {"C1", "C6"}),
]


@pytest.mark.parametrize(("rule", "expected"), [(r, e) for _, r, e in OPERATOR_CASES], ids=[i for i, _, _ in OPERATOR_CASES])
def test_operator(store, rule, expected):
    assert ids(store, rule) == expected
    assert S.count(store, rule) == len(expected)


@pytest.mark.parametrize(("rule", "expected"), [(r, e) for _, r, e in OPERATOR_CASES], ids=[i for i, _, _ in OPERATOR_CASES])
def test_not_is_the_exact_complement(store, rule, expected):
    assert ids(store, {"not": rule}) == ALL - expected


def test_every_operator_and_field_type_is_covered():
    used_ops = {r["op"] for _, r, _ in OPERATOR_CASES}
    assert used_ops == set(OPERATORS)
    used_types = {FIELDS[r["field"]].type for _, r, _ in OPERATOR_CASES}
    assert used_types == {f.type for f in FIELDS.values()}


def test_sale_windows_fall_back_to_the_rakuten_calendar():
    s = segment_store(sale_events=False)
    # without a sale_events table the predicted calendar is used: June 2026 スーパーSALE 06-04 20:00 .. 06-11 01:59
    assert ids(s, c("sale_order", "ordered_in", ["super_sale"])) == {"C2"}
    # point days are pattern rows: 5と0のつく日 (C1 09-20, C2 06-05, C3 09-15, C5 08-20, C6 10-15 / 10-30)
    assert ids(s, c("sale_order", "ordered_in", ["five_zero_day"])) == {"C1", "C2", "C3", "C5", "C6"}
    # ワンダフルデー on the 1st: C1 2026-05-01, C4 2025-12-01, C6 2026-10-01
    assert ids(s, c("sale_order", "ordered_in", ["wonderful_day"])) == {"C1", "C4", "C6"}


# ---------------------------------------------------------------------------
# Groups, nesting, sentences
# ---------------------------------------------------------------------------

GROUP_CASES = [
    ("and", {"all": [c("recency_days", "gte", 90), c("orders", "gte", 2)]}, {"C2", "C4", "C7"}),
    ("or", {"any": [c("prefecture", "eq", "北海道"), c("orders", "eq", 1)]}, {"C3", "C4", "C5"}),
    ("not-group", {"not": {"any": [c("prefecture", "eq", "東京都"), c("prefecture", "eq", "大阪府")]}}, {"C4", "C5", "C6"}),
    ("two-levels", {"all": [c("email_opt_in", "is_true"),
                            {"any": [c("recency_days", "gte", 300), {"not": c("orders", "gte", 2)}]}]}, {"C3", "C4"}),
    ("three-levels", {"any": [{"all": [c("orders", "gte", 4), {"not": {"any": [c("rank", "eq", "プラチナ"),
                                                                              c("recency_days", "gte", 300)]}}]},
                              c("customer_id", "eq", "C5")]}, {"C1", "C5"}),
    ("empty-all-is-everyone", {"all": []}, ALL),
    ("empty-groups-are-ignored", {"all": [{"any": []}, c("orders", "eq", 1), {"not": {"all": []}}]}, {"C3", "C5"}),
    ("double-not", {"not": {"not": c("orders", "eq", 1)}}, {"C3", "C5"}),
    ("bare-condition", c("orders", "eq", 1), {"C3", "C5"}),
]


@pytest.mark.parametrize(("rule", "expected"), [(r, e) for _, r, e in GROUP_CASES], ids=[i for i, _, _ in GROUP_CASES])
def test_groups(store, rule, expected):
    assert ids(store, rule) == expected


SENTENCES = [
    ("issue-example", {"all": [c("recency_days", "gte", 90), c("orders", "gte", 2)]}, "最終購入から90日以上 かつ 購入回数2回以上"),
    ("or-group-in-and", {"all": [c("rank", "eq", "ゴールド"), {"any": [c("prefecture", "eq", "東京都"), c("age", "lt", 30)]}]},
     "会員ランクが「ゴールド」 かつ （都道府県が「東京都」 または 年齢30歳未満）"),
    ("not", {"not": c("prefecture", "in", ["東京都", "大阪府"])}, "（都道府県が「東京都」「大阪府」のいずれか）に該当しない"),
    ("birthday", c("birthday_month", "this_month"), "今月が誕生月"),
    ("money", c("revenue", "between", [10000, 50000]), "累計購入金額10,000円〜50,000円"),
    ("ratio", c("churn_probability_90d", "gte", 0.66), "90日以内の離反確率66%以上"),
    ("date", c("last_order_at", "gte", "2026-01-05"), "最終購入日が2026年1月5日以降"),
    ("last-days", c("last_order_at", "within_last_days", 30), "最終購入日が過去30日以内"),
    ("bool", c("email_opt_in", "is_false"), "メール配信許可なし"),
    ("product", c("bought_product", "bought", ["P1"], window={"days": 90}), "直近90日間に商品「化粧水A」を購入"),
    ("category", c("bought_category", "not_bought", ["化粧水", "美容液"]), "カテゴリ「化粧水」「美容液」を購入していない"),
    ("window-count", c("orders_in_window", "gte", 2, window={"from": "2026-01-01", "to": "2026-03-31"}),
     "2026年1月1日〜2026年3月31日の購入回数2回以上"),
    ("coupon", c("coupon_use", "used", "SPRING"), "クーポン「SPRING」を利用"),
    ("sale", c("sale_order", "ordered_in", ["super_sale", "marathon"]), "楽天スーパーSALE・お買い物マラソンの期間中に購入"),
    ("reorder", c("reorder_due", "due_within", 14), "今後14日以内に買い替え時期（商品ごとの購入周期）"),
    ("top", c("revenue_12m", "top_pct", 20), "直近12か月の購入金額が上位20%"),
    ("avg", c("aov", "gte_avg_times", 2), "平均購入単価がショップ平均の2倍以上"),
    ("gap", c("gap_to_next_rank", "lte", 5000), "次のランクまであと5,000円以下"),
    ("code-label", c("first_source", "eq", "rakuten"), "初回購入の販路が「楽天市場」"),
    ("empty", {"all": []}, "すべての顧客"),
    ("empty-groups-skipped", {"all": [{"any": []}, c("orders", "gte", 2),
                                      {"any": [c("orders", "eq", 1), c("age", "lt", 30)]}, {"not": {"all": []}}]},
     "購入回数2回以上 かつ （購入回数が1回 または 年齢30歳未満）"),
    ("many", c("prefecture", "in", ["北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県"]),
     "都道府県が「北海道」「青森県」「岩手県」「宮城県」「秋田県」ほか2件のいずれか"),
]


@pytest.mark.parametrize(("rule", "sentence"), [(r, t) for _, r, t in SENTENCES], ids=[i for i, _, _ in SENTENCES])
def test_sentence(store, rule, sentence):
    assert S.compile_rule(store, rule).description == sentence


def test_sentence_without_store_uses_product_ids():
    assert S.describe(c("bought_product", "bought", ["P1"])) == "商品「P1」を購入"


def test_where_clause_binds_every_value(store):
    rule = {"all": [c("name", "eq", "x' OR 1=1 --"), c("orders", "gte", 2), c("prefecture", "in", ["東京都"])]}
    compiled = S.compile_rule(store, rule)
    assert "x'" not in compiled.where and "東京都" not in compiled.where
    assert sorted(compiled.params.values(), key=str) == sorted([2, "x' OR 1=1 --", ["東京都"]], key=str)
    assert compiled.where == (
        '(cm."name" = CAST($p0 AS VARCHAR)) AND (cm."orders" >= CAST($p1 AS BIGINT)) '
        'AND (list_contains(CAST($p2 AS VARCHAR[]), cm."prefecture"))'
    )


# ---------------------------------------------------------------------------
# Validation: clear Japanese messages
# ---------------------------------------------------------------------------

INVALID = [
    ("not-a-dict", [1, 2], "条件の形式が正しくありません"),
    ("unknown-field", c("password", "eq", "x"), "「password」という項目はありません"),
    ("sql-as-field", c("orders; DROP TABLE orders", "eq", 1), "という項目はありません"),
    ("unknown-op", c("orders", "like", 1), "「購入回数」に「like」という条件は使えません"),
    ("op-not-for-type", c("prefecture", "gte", "東京都"), "使える条件: ＝ 等しい"),
    ("text-for-number", c("orders", "gte", "2"), "「購入回数」には整数を入力してください"),
    ("bool-for-number", c("orders", "gte", True), "整数を入力してください"),
    ("fraction-for-int", c("orders", "gte", 1.5), "整数を入力してください"),
    ("nan", c("revenue", "gte", float("nan")), "数値を入力してください"),
    ("out-of-range", c("r_score", "eq", 6), "1から5までの値"),
    ("ratio-over-1", c("p_alive", "gte", 1.5), "0から1までの値"),
    ("bad-date", c("last_order_at", "gte", "2026-02-30"), "存在しない日付"),
    ("date-format", c("last_order_at", "gte", "2026/01/01"), "YYYY-MM-DD"),
    ("pair-order", c("orders", "between", [5, 2]), "下限を上限以下"),
    ("pair-shape", c("orders", "between", 5), "2つの値"),
    ("empty-list", c("prefecture", "in", []), "1つ以上選んでください"),
    ("empty-text", c("name", "contains", "  "), "値を入力してください"),
    ("control-char", c("name", "contains", "a\x00b"), "使えない文字"),
    ("surrogate", c("name", "eq", "a\ud800"), "使えない文字"),
    ("too-long", c("name", "eq", "x" * 201), "200文字以内"),
    ("value-for-no-value-op", c("email_opt_in", "is_true", True), "値を指定しません"),
    ("days-range", c("last_order_at", "within_last_days", 0), "1から36,500まで"),
    ("unknown-sale-kind", c("sale_order", "ordered_in", ["black_friday"]), "次から選んでください"),
    ("window-on-column", c("orders", "gte", 1, window={"days": 30}), "期間を指定できません"),
    ("window-shape", c("bought_product", "bought", ["P1"], window={"weeks": 2}), "期間は「直近N日」"),
    ("window-both", c("bought_product", "bought", ["P1"], window={"days": 2, "from": "2026-01-01"}), "どちらか一方"),
    ("window-order", c("bought_product", "bought", ["P1"], window={"from": "2026-02-01", "to": "2026-01-01"}), "開始日は終了日以前"),
    ("extra-key", {**c("orders", "gte", 1), "sql": "1=1"}, "使えないキー「sql」"),
    ("two-group-keys", {"all": [], "any": []}, "どれか1つ"),
    ("group-not-list", {"all": c("orders", "gte", 1)}, "条件のリスト"),
    ("unknown-group", {"xor": []}, "「xor」という指定はありません"),
    ("percent-zero", c("revenue", "top_pct", 0), "0より大きく100以下"),
]


@pytest.mark.parametrize(("rule", "message"), [(r, m) for _, r, m in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_rules_say_what_to_fix(rule, message):
    with pytest.raises(InputError) as err:
        S.validate(rule)
    assert message in err.value.message
    assert S.check(rule) == err.value.message


def test_error_names_the_condition():
    rule = {"all": [c("orders", "gte", 1), {"any": [c("orders", "gte", 1), c("orders", "gte", "x")]}]}
    with pytest.raises(InputError, match="^条件2-2："):
        S.validate(rule)


def test_nesting_and_size_limits():
    deep: dict = c("orders", "gte", 1)
    for _ in range(S.MAX_DEPTH + 1):
        deep = {"all": [deep]}
    with pytest.raises(InputError, match="段まで"):
        S.validate(deep)
    nots: dict = c("orders", "gte", 1)
    for _ in range(1000):
        nots = {"not": nots}
    with pytest.raises(InputError, match="段まで"):
        S.validate(nots)
    with pytest.raises(InputError, match="100個まで"):
        S.validate({"all": [c("orders", "gte", 1)] * (S.MAX_CONDITIONS + 1)})


def test_validate_normalises():
    rule = {"all": [c("orders", "gte", 2.0), c("prefecture", "in", [" 東京都", "東京都"]),
                    c("last_order_at", "gte", dt.date(2026, 1, 5)), c("coupon_use", "used", "  ")]}
    assert S.validate(rule) == {"all": [c("orders", "gte", 2), c("prefecture", "in", ["東京都"]),
                                        c("last_order_at", "gte", "2026-01-05"), {"field": "coupon_use", "op": "used", "value": None}]}
    # the normalised rule is JSON
    assert json.loads(json.dumps(S.validate(rule))) == S.validate(rule)


def test_load_rule_from_json_text():
    assert S.load_rule('{"all": [{"field": "orders", "op": "gte", "value": 2}]}') == {"all": [c("orders", "gte", 2)]}
    with pytest.raises(InputError, match="JSONとして読めません"):
        S.load_rule("{all: [")


def test_fixture_and_field_table_follow_the_customer_model_contract():
    from crm_core import model

    assert [*COLUMNS, "as_of"] == list(model.COLUMNS)
    assert set(S.COLUMNS) <= set(model.COLUMNS)


def test_operator_table_is_complete():
    for op in OPERATORS.values():
        for field_type in op.types:
            assert op.pick(op.sql, field_type) and op.pick(op.sentence, field_type)
        assert not op.negates or OPERATORS[op.negates].types == op.types


def test_every_field_has_operators_and_a_label():
    for key, f in FIELDS.items():
        assert operators_for(key), key
        assert f.label and f.group, key


# ---------------------------------------------------------------------------
# Summary, sample, compare, export, LINE ids
# ---------------------------------------------------------------------------


def test_summary(store):
    s = S.summary(store, {"all": [c("recency_days", "gte", 90)]})  # C2, C4, C7
    assert s["customers"] == 3 and s["total_customers"] == 8
    assert s["customer_share"] == pytest.approx(3 / 8)
    assert s["revenue"] == 221000 and s["total_revenue"] == 341000
    assert s["revenue_share"] == pytest.approx(221000 / 341000)
    assert s["email_reachable"] == 1  # C4 (C2 did not opt in, C7 unknown)
    assert s["line_reachable"] == 2  # C2, C4 (C7's id is empty)
    assert s["description"] == "最終購入から90日以上"
    assert s["as_of"] == AS_OF


def test_sample_is_ordered_by_revenue(store):
    df = S.sample(store, {"all": [c("orders", "gte", 2)]}, limit=3)
    assert list(df["customer_id"]) == ["C4", "C1", "C8"]
    assert list(df.columns) == list(S.SAMPLE_COLUMNS)


def test_compare(store):
    a = c("prefecture", "eq", "東京都")  # C1 C3 C7
    b = c("orders", "gte", 2)  # C1 C2 C4 C6 C7 C8
    assert S.compare(store, a, b) == {"a": 3, "b": 6, "both": 2, "a_only": 1, "b_only": 4, "either": 7, "total": 8}


def test_export_frame_and_csv(store, tmp_path):
    rule = {"all": [c("orders", "gte", 3)]}  # C1 C4 C6 C8
    df = S.export_frame(store, rule)
    assert list(df["顧客ID"]) == ["C4", "C1", "C8", "C6"]
    assert list(df["メール配信許可"]) == ["はい"] * 4
    assert df["累計購入金額"].tolist() == [200000, 50000, 44000, 15000]
    assert df["最終購入日時"].iloc[2] == "2026-10-31 23:00:00"
    opted = S.export_frame(store, {"all": [c("orders", "gte", 2)]}, opted_in_only=True)
    assert set(opted["顧客ID"]) == {"C1", "C4", "C6", "C8"}  # C2 refused, C7 unknown
    out = tmp_path / "seg.csv"
    report = S.export_csv(store, rule, out)
    assert report == {"rows": 4, "unencodable": []}
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("顧客ID,氏名,メールアドレス")
    assert "'=HYPERLINK" in text and "'+81@example.jp" in text  # formulas neutralised
    assert "\r\n" in text


def test_export_cp932(store, tmp_path):
    out = tmp_path / "seg.csv"
    report = S.export_csv(store, c("customer_id", "eq", "C3"), out, encoding="cp932")
    assert report["rows"] == 1 and report["unencodable"] == []
    assert "髙橋 ①子" in out.read_bytes().decode("cp932")
    with pytest.raises(InputError, match="文字コード"):
        S.export_csv(store, c("customer_id", "eq", "C3"), out, encoding="latin-1")


def test_line_ids(store):
    assert S.line_user_ids(store, {"all": []}) == ["U1", "U2", "U4", "U6", "U8"]
    assert S.line_ids_text(store, c("prefecture", "eq", "大阪府")) == "U2\nU8\n"
    assert S.line_ids_text(store, c("prefecture", "eq", "沖縄県")) == ""


def test_field_choices(store):
    assert S.field_choices(store, "prefecture")[:2] == [("東京都", "東京都"), ("大阪府", "大阪府")]
    assert ("rakuten", "楽天市場") in S.field_choices(store, "first_source")
    assert S.field_choices(store, "bought_product")[0] == ("P1", "化粧水A（P1）")
    assert ("P5", "P5の明細名（P5）") in S.field_choices(store, "bought_product")
    assert {v for v, _ in S.field_choices(store, "bought_category")} == {"化粧水", "美容液", "サプリ", "スキンケア", "その他"}
    assert S.field_choices(store, "birthday_month")[0] == (1, "1月")
    assert S.field_choices(store, "sale_order")[0] == ("super_sale", "楽天スーパーSALE")


def test_missing_model_is_explained():
    empty = Store(":memory:")
    with pytest.raises(InputError, match="顧客データ（顧客モデル）がまだ作られていません"):
        S.count(empty, {"all": []})
    assert S.model_as_of(empty) is None


def test_missing_column_is_explained():
    s = Store(":memory:")
    s.execute("CREATE TABLE customer_model AS SELECT 'C1' AS customer_id, 1 AS orders, 100.0 AS revenue, "
              "NULL AS email, TRUE AS email_opt_in, FALSE AS has_line, DATE '2026-10-31' AS as_of")
    assert S.count(s, c("orders", "gte", 1)) == 1
    with pytest.raises(InputError, match="「離反リスク」がまだありません"):
        S.count(s, c("churn_risk", "eq", "高"))


# ---------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------

PRESET_EXPECTED = {
    "dormant_90": {"C2", "C4", "C7"},
    "dormant_180": {"C4", "C7"},
    "vip_top": {"C8", "C1"},
    "high_aov": {"C4"},
    "f2_pending": {"C3"},  # one order, 46 days ago (C5: 72 days)
    "birthday": {"C1", "C6"},
    "reorder": {"C1", "C6"},
    "rank_up": {"C2", "C5", "C6"},  # gap 1..5,000 and bought within a year
    "churn_risk": {"C2", "C4"},
    "sale_only": {"C2", "C7"},
    "sub_active": {"C1", "C6"},
    "sub_cancelled": {"C2", "C4"},
}


@pytest.mark.parametrize("key", list(PRESET_EXPECTED))
def test_presets(store, key):
    rule = S.preset_rule(key)
    assert S.validate(rule) == rule
    assert ids(store, rule) == PRESET_EXPECTED[key]
    rule["all"].append(c("prefecture", "eq", "東京都"))  # editable: a copy
    assert S.preset_rule(key) != rule


def test_rank_up_preset_covers_ranks_by_number_of_orders():
    s = segment_store()
    # As a shop whose ranks go by orders: no yen gaps; C3 needs one more order, C5 two.
    s.execute("UPDATE customer_model SET gap_to_next_rank = NULL")
    s.execute("UPDATE customer_model SET orders_to_next_rank = CASE customer_id WHEN 'C3' THEN 1 WHEN 'C5' THEN 2 END")
    assert ids(s, S.preset_rule("rank_up")) == {"C3"}


def test_every_preset_is_tested():
    assert set(PRESET_EXPECTED) == set(S.PRESETS_BY_KEY)
    with pytest.raises(InputError):
        S.preset_rule("nope")
