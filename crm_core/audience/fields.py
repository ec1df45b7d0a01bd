"""The segment builder's vocabulary as data: field types, fields and operators.

Everything a segment rule can say is one row of these tables (the datasette
``filters.py`` habit).  :mod:`crm_core.audience.segments` turns a rule into SQL, bound
parameters and a Japanese sentence by looking rows up here; nothing in a rule
is ever pasted into SQL: field keys select a row of :data:`FIELDS` (whose SQL
is written in this file), operator keys a row of :data:`OPERATORS`, and every
value becomes a bound parameter.

Field types
-----------
Column types (a column of ``customer_model``):

``int``      whole numbers (購入回数, 最終購入からの日数, 年齢, scores 1-5)
``number``   decimals (平均購入間隔, 予測購入回数)
``money``    yen (累計購入金額, 平均購入単価)
``ratio``    probabilities 0-1, shown as % (継続確率, 90日離反確率)
``date``     calendar days; timestamps are compared by their JST day
``birthday`` a date of birth (its month is compared for 「今月が誕生月」)
``month``    a month number 1-12 (誕生月)
``text``     free text (氏名, メールアドレス)
``choice``   text with a few known values (都道府県, ランク, RFMセグメント)
``bool``     yes / no (メール配信許可, LINE連携)

Purchase-behaviour types (read ``orders`` / ``order_lines`` / ``products``;
only non-cancelled orders up to the end of ``as_of``):

``products``      bought / did not buy one of these products
``categories``    bought / did not buy in one of these categories
``window_count``  number of orders in a window (a number compared like ``int``)
``window_money``  spend in a window (compared like ``money``)
``coupon``        used a coupon (any, or one code)
``sale``          ordered during a Rakuten sale / point-day window
``reorder``       due to buy again by the repurchase cycle (:mod:`crm_core.analytics.cycles`)

SQL templates
-------------
Operator fragments use these placeholders, all filled by the compiler:
``{col}`` the field's SQL expression (``cm."orders"`` for a column, a
subquery for behaviour fields), ``{column}`` the bare quoted column (for
shop-wide subqueries), ``{v}``/``{lo}``/``{hi}`` bound values, ``{quantile}``
the bound quantile that selects exactly the top N% (ties included), ``{as_of}``
the bound as-of day, ``{purchase}`` the bound filter of counted orders
(alias ``o``), ``{windows}`` the bound sale windows, ``{cycles}`` the
repurchase-cycle CTEs.  Sentence templates use ``{label}``, ``{phrase}``,
``{value}``, ``{lo}``, ``{hi}``, ``{window_at}``, ``{window_of}``,
``{yes}``, ``{no}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# -- types --------------------------------------------------------------------

NUMERIC_COLUMN_TYPES = frozenset({"int", "number", "money", "ratio"})
WINDOW_NUMBER_TYPES = frozenset({"window_count", "window_money"})
NUMERIC_TYPES = NUMERIC_COLUMN_TYPES | WINDOW_NUMBER_TYPES
DATE_TYPES = frozenset({"date", "birthday"})
TEXT_TYPES = frozenset({"text", "choice"})
COLUMN_TYPES = NUMERIC_COLUMN_TYPES | DATE_TYPES | TEXT_TYPES | {"month", "bool"}
BEHAVIOUR_TYPES = frozenset({"products", "categories", "window_count", "window_money", "coupon", "sale", "reorder"})
WINDOW_TYPES = frozenset({"products", "categories", "window_count", "window_money", "coupon", "sale"})
"""Behaviour types that take an optional ``"window"`` (``{"days": N}`` or ``{"from", "to"}``)."""

ELEMENT = MappingProxyType(
    {
        "int": "int", "window_count": "int", "month": "int",
        "number": "number", "money": "number", "window_money": "number", "ratio": "number",
        "date": "date", "birthday": "date",
        "text": "str", "choice": "str", "products": "str", "categories": "str", "sale": "str",
        "coupon": "str", "bool": "none", "reorder": "int",
    }
)
"""The kind of a single value of each field type (``int``, ``number``, ``date``, ``str``)."""

SQL_TYPE = MappingProxyType({"int": "BIGINT", "number": "DOUBLE", "date": "DATE", "str": "VARCHAR"})
"""SQL type of a bound value of each element kind."""


def family(field_type: str) -> str:
    """How a type reads in sentences and SQL variants: number, date, text or the type itself.

    :meth:`Operator.pick` looks for the exact type first, then its family, then ``"*"``.
    """
    if field_type in NUMERIC_TYPES:
        return "number"
    if field_type in TEXT_TYPES:
        return "text"
    if field_type in DATE_TYPES:
        return "date"
    return field_type


# -- fields -------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One field a condition can test.

    Attributes
    ----------
    key : str
        The JSON key (``"field"`` of a condition).
    label : str
        Japanese label (menus, 「{label}が…」 sentences).
    type : str
        One of the types above.
    group : str
        Menu group.
    unit : str
        Unit shown after numbers (回, 日, 歳); money shows 円, ratio %.
    phrase : str, optional
        How a comparison starts (「最終購入から」90日以上); defaults to the label.
    column : str, optional
        The ``customer_model`` column (column types only).
    timestamp : bool
        The column is a timestamp compared by its day.
    minimum, maximum : float, optional
        Allowed range of values.
    yes, no : str
        Sentences for ``bool`` fields.
    sentences : mapping
        Per-operator sentence overrides.
    choices : tuple of str
        Fixed values of a ``choice`` or ``sale`` field (else they come from the data).
    value_labels : mapping
        Japanese names of stored codes (``rakuten`` → 楽天市場).
    expr : str
        SQL expression of a behaviour number (``{purchase}`` is filled in).
    level : str
        ``product`` or ``category`` for ``reorder`` fields.
    help : str
        A Japanese hint for the page.
    """

    key: str
    label: str
    type: str
    group: str
    unit: str = ""
    phrase: str | None = None
    column: str | None = None
    timestamp: bool = False
    minimum: float | None = None
    maximum: float | None = None
    yes: str = ""
    no: str = ""
    sentences: Mapping[str, str] = field(default_factory=dict)
    choices: tuple[str, ...] = ()
    value_labels: Mapping[str, str] = field(default_factory=dict)
    expr: str = ""
    level: str = ""
    help: str = ""


G_PURCHASE = "購入実績"
G_BEHAVIOUR = "購買行動（商品・期間・クーポン・セール）"
G_SUBSCRIPTION = "定期購入"
G_SCORE = "ランク・RFM"
G_PREDICTION = "予測"
G_PROFILE = "顧客情報"
GROUPS = (G_PURCHASE, G_BEHAVIOUR, G_SUBSCRIPTION, G_SCORE, G_PREDICTION, G_PROFILE)

_BIRTH_MONTH = {"this_month": "今月が誕生月", "next_month": "来月が誕生月"}
_MONEY = 1e12
_DAYS = 36500

# An order counted by behaviour conditions, alias ``o`` (the compiler fills {purchase}).
_ORDERS_IN_WINDOW = "coalesce((SELECT count(*) FROM orders AS o WHERE o.customer_id = cm.customer_id AND {purchase}), 0)"
_SPEND_IN_WINDOW = (
    "coalesce((SELECT sum(coalesce(o.total_amount, 0)) FROM orders AS o "
    "WHERE o.customer_id = cm.customer_id AND {purchase}), 0)"
)

_FIELD_ROWS: tuple[Field, ...] = (
    # 購入実績
    Field("orders", "購入回数", "int", G_PURCHASE, unit="回", column="orders", minimum=0, maximum=1e9),
    Field("recency_days", "最終購入からの日数", "int", G_PURCHASE, unit="日", phrase="最終購入から", column="recency_days",
          minimum=0, maximum=_DAYS),
    Field("revenue", "累計購入金額", "money", G_PURCHASE, column="revenue", minimum=-_MONEY, maximum=_MONEY),
    Field("aov", "平均購入単価", "money", G_PURCHASE, column="aov", minimum=-_MONEY, maximum=_MONEY),
    Field("last_order_at", "最終購入日", "date", G_PURCHASE, column="last_order_at", timestamp=True),
    Field("first_order_at", "初回購入日", "date", G_PURCHASE, column="first_order_at", timestamp=True),
    Field("tenure_days", "初回購入からの日数", "int", G_PURCHASE, unit="日", phrase="初回購入から", column="tenure_days",
          minimum=0, maximum=_DAYS),
    Field("avg_days_between_orders", "平均購入間隔", "number", G_PURCHASE, unit="日", column="avg_days_between_orders",
          minimum=0, maximum=_DAYS, help="2日以上購入した顧客のみ（1日だけの顧客は未登録扱い）"),
    Field("orders_12m", "直近12か月の購入回数", "int", G_PURCHASE, unit="回", column="orders_12m", minimum=0, maximum=1e9),
    Field("revenue_12m", "直近12か月の購入金額", "money", G_PURCHASE, column="revenue_12m", minimum=-_MONEY, maximum=_MONEY),
    Field("first_source", "初回購入の販路", "choice", G_PURCHASE, column="first_source",
          value_labels={"rakuten": "楽天市場", "shopify": "Shopify", "generic": "その他"}),
    Field("acquisition_event", "初回購入のイベント", "choice", G_PURCHASE, column="acquisition_event",
          choices=("スーパーSALE", "お買い物マラソン", "通常")),
    Field("last_product_id", "最終購入商品", "choice", G_PURCHASE, column="last_product_id"),
    Field("last_product_name", "最終購入商品名", "text", G_PURCHASE, column="last_product_name"),
    Field("last_category", "最終購入カテゴリ", "choice", G_PURCHASE, column="last_category"),
    Field("used_coupon", "クーポン利用", "bool", G_PURCHASE, column="used_coupon", yes="クーポン利用あり", no="クーポン利用なし"),
    Field("sale_only_buyer", "セール時のみ購入", "bool", G_PURCHASE, column="sale_only_buyer",
          yes="セール時のみ購入（2回以上）", no="セール時のみ購入ではない",
          help="2回以上購入し、すべてが楽天スーパーSALE・お買い物マラソン期間中"),
    # 購買行動
    Field("bought_product", "商品の購入", "products", G_BEHAVIOUR, help="商品を選び、必要なら期間を指定します。"),
    Field("bought_category", "カテゴリの購入", "categories", G_BEHAVIOUR),
    Field("orders_in_window", "{window_of}購入回数", "window_count", G_BEHAVIOUR, unit="回", minimum=0, maximum=1e9,
          expr=_ORDERS_IN_WINDOW),
    Field("spend_in_window", "{window_of}購入金額", "window_money", G_BEHAVIOUR, minimum=-_MONEY, maximum=_MONEY,
          expr=_SPEND_IN_WINDOW),
    Field("coupon_use", "クーポンの利用", "coupon", G_BEHAVIOUR, help="クーポンコードか値引きのある注文。コードを入れるとそのコードだけ。"),
    Field("sale_order", "セール期間中の購入", "sale", G_BEHAVIOUR,
          choices=("super_sale", "marathon", "wonderful_day", "five_zero_day"),
          value_labels={"super_sale": "楽天スーパーSALE", "marathon": "お買い物マラソン",
                        "wonderful_day": "ワンダフルデー", "five_zero_day": "5と0のつく日"}),
    Field("reorder_due", "買い替え時期（商品ごとの購入周期）", "reorder", G_BEHAVIOUR, level="product", minimum=0, maximum=365,
          help="商品ごとの再購入間隔（本人の間隔が2回以上あれば本人の中央値、なければ商品の中央値）から予測します。"),
    Field("reorder_due_category", "買い替え時期（カテゴリごとの購入周期）", "reorder", G_BEHAVIOUR, level="category",
          minimum=0, maximum=365),
    # 定期購入
    Field("subscription_status", "定期購入の状態", "choice", G_SUBSCRIPTION, column="subscription_status",
          choices=("継続中", "解約")),
    Field("subscription_deliveries", "定期お届け回数", "int", G_SUBSCRIPTION, unit="回", column="subscription_deliveries",
          minimum=0, maximum=1e6),
    # ランク・RFM
    Field("rank", "会員ランク", "choice", G_SCORE, column="rank"),
    Field("next_rank", "次のランク", "choice", G_SCORE, column="next_rank"),
    Field("gap_to_next_rank", "次のランクまでの金額", "money", G_SCORE, phrase="次のランクまであと", column="gap_to_next_rank",
          minimum=-_MONEY, maximum=_MONEY),
    Field("orders_to_next_rank", "次のランクまでの購入回数（回数で決まるランク）", "int", G_SCORE, unit="回",
          phrase="次のランクまであと", column="orders_to_next_rank", minimum=0, maximum=1e6),
    Field("rfm_segment", "RFMセグメント", "choice", G_SCORE, column="rfm_segment"),
    Field("r_score", "Rスコア（最近さ）", "int", G_SCORE, phrase="Rスコア", column="r_score", minimum=1, maximum=5),
    Field("f_score", "Fスコア（頻度）", "int", G_SCORE, phrase="Fスコア", column="f_score", minimum=1, maximum=5),
    Field("m_score", "Mスコア（金額）", "int", G_SCORE, phrase="Mスコア", column="m_score", minimum=1, maximum=5),
    # 予測
    Field("churn_risk", "離反リスク", "choice", G_PREDICTION, column="churn_risk", choices=("高", "中", "低")),
    Field("churn_probability_90d", "90日以内の離反確率", "ratio", G_PREDICTION, column="churn_probability_90d",
          minimum=0, maximum=1),
    Field("p_alive", "継続確率", "ratio", G_PREDICTION, column="p_alive", minimum=0, maximum=1),
    Field("expected_orders_365d", "今後365日の予測購入回数", "number", G_PREDICTION, unit="回", column="expected_orders_365d",
          minimum=0, maximum=1e9),
    Field("predicted_clv_365d", "今後365日の予測購入金額", "money", G_PREDICTION, column="predicted_clv_365d",
          minimum=-_MONEY, maximum=_MONEY),
    Field("expected_next_order_date", "次回購入予測日", "date", G_PREDICTION, column="expected_next_order_date"),
    # 顧客情報
    Field("prefecture", "都道府県", "choice", G_PROFILE, column="prefecture"),
    Field("gender", "性別", "choice", G_PROFILE, column="gender"),
    Field("age", "年齢", "int", G_PROFILE, unit="歳", column="age", minimum=0, maximum=200),
    Field("birthday_month", "誕生月", "month", G_PROFILE, column="birthday_month", minimum=1, maximum=12,
          sentences=_BIRTH_MONTH),
    Field("birthday", "誕生日", "birthday", G_PROFILE, column="birthday", sentences=_BIRTH_MONTH),
    Field("email_opt_in", "メール配信許可", "bool", G_PROFILE, column="email_opt_in", yes="メール配信許可あり",
          no="メール配信許可なし"),
    Field("has_line", "LINE連携", "bool", G_PROFILE, column="has_line", yes="LINE連携あり", no="LINE連携なし"),
    Field("name", "氏名", "text", G_PROFILE, column="name"),
    Field("email", "メールアドレス", "text", G_PROFILE, column="email"),
    Field("customer_id", "顧客ID", "text", G_PROFILE, column="customer_id"),
    Field("line_user_id", "LINEユーザーID", "text", G_PROFILE, column="line_user_id"),
)

FIELDS: Mapping[str, Field] = MappingProxyType({f.key: f for f in _FIELD_ROWS})
"""Every field by key, in menu order."""

COLUMNS: tuple[str, ...] = tuple(f.column for f in _FIELD_ROWS if f.column)
"""The ``customer_model`` columns fields may name (the identifier allowlist)."""


# -- operators ------------------------------------------------------------------


@dataclass(frozen=True)
class Operator:
    """One operator: how a condition becomes SQL and Japanese.

    Attributes
    ----------
    key : str
        The JSON key (``"op"`` of a condition).
    label : str
        Japanese label in the operator menu.
    types : frozenset of str
        Field types it applies to.
    value : str
        Shape of the value: ``none``, ``scalar``, ``pair``, ``list``,
        ``days``, ``text``, ``percent``, ``factor``, ``optional_text``.
    sql : mapping
        SQL fragment per type family (``family()``) or per type, ``"*"`` for all.
    sentence : mapping
        Japanese sentence template, keyed the same way.
    negates : str
        For an operator that is the complement of another, that operator's key
        (the compiler then writes ``NOT coalesce(other, FALSE)``, so customers
        with an empty value count as "not matching").
    """

    key: str
    label: str
    types: frozenset[str]
    value: str
    sql: Mapping[str, str]
    sentence: Mapping[str, str]
    negates: str = ""

    def pick(self, table: Mapping[str, str], field_type: str) -> str:
        """The entry of ``sql`` or ``sentence`` for a field type."""
        for key in (field_type, family(field_type), "*"):
            if key in table:
                return table[key]
        raise KeyError(f"{self.key} has no entry for {field_type}")


_ORDERED = NUMERIC_TYPES | DATE_TYPES
_EQUATABLE = NUMERIC_TYPES | DATE_TYPES | TEXT_TYPES | {"month"}
_EMPTIABLE = NUMERIC_COLUMN_TYPES | DATE_TYPES | TEXT_TYPES | {"month"}
_LISTABLE = TEXT_TYPES | {"month", "int"}
_MONTHLY = DATE_TYPES | {"month"}

# Sale / reorder / product conditions: the subqueries read only counted orders.
_BOUGHT_PRODUCT = (
    "cm.customer_id IN (SELECT o.customer_id FROM orders AS o JOIN order_lines AS l "
    "ON l.source = o.source AND l.order_id = o.order_id WHERE {purchase} AND list_contains({v}, l.product_id))"
)
_BOUGHT_CATEGORY = (
    "cm.customer_id IN (SELECT o.customer_id FROM orders AS o JOIN order_lines AS l "
    "ON l.source = o.source AND l.order_id = o.order_id "
    "LEFT JOIN (SELECT product_id, arg_max(category, coalesce(import_id, 0)) AS category FROM products "
    "WHERE product_id IS NOT NULL GROUP BY product_id) AS m ON m.product_id = l.product_id "
    "WHERE {purchase} AND list_contains({v}, coalesce(m.category, l.category)))"
)
_USED_COUPON = (
    "cm.customer_id IN (SELECT o.customer_id FROM orders AS o WHERE {purchase} AND "
    "CASE WHEN {v} IS NULL THEN coalesce(trim(o.coupon_code), '') <> '' OR coalesce(o.discount_amount, 0) > 0 "
    "ELSE lower(trim(o.coupon_code)) = lower(trim({v})) END)"
)
_SALE_ORDER = (
    "cm.customer_id IN (SELECT o.customer_id FROM orders AS o "
    "JOIN (SELECT unnest({starts}) AS s, unnest({ends}) AS e) AS w ON o.ordered_at BETWEEN w.s AND w.e "
    "WHERE {purchase})"
)
_DUE = "cm.customer_id IN ({cycles} SELECT customer_id FROM due_dates WHERE due_date BETWEEN {as_of} AND {as_of} + {v})"
_OVERDUE = (
    "cm.customer_id IN ({cycles} SELECT customer_id FROM due_dates "
    "WHERE due_date BETWEEN {as_of} - {v} AND {as_of} - 1)"
)

_OPERATOR_ROWS: tuple[Operator, ...] = (
    Operator("eq", "＝ 等しい", _EQUATABLE, "scalar", {"*": "{col} = {v}"},
             {"*": "{label}が{value}"}),
    Operator("ne", "≠ 等しくない", _EQUATABLE, "scalar", {"*": "{col} = {v}"},
             {"*": "{label}が{value}以外"}, negates="eq"),
    Operator("gte", "≧ 以上", _ORDERED, "scalar", {"*": "{col} >= {v}"},
             {"number": "{phrase}{value}以上", "date": "{label}が{value}以降"}),
    Operator("gt", "＞ より大きい", _ORDERED, "scalar", {"*": "{col} > {v}"},
             {"number": "{phrase}{value}超", "date": "{label}が{value}より後"}),
    Operator("lte", "≦ 以下", _ORDERED, "scalar", {"*": "{col} <= {v}"},
             {"number": "{phrase}{value}以下", "date": "{label}が{value}以前"}),
    Operator("lt", "＜ 未満", _ORDERED, "scalar", {"*": "{col} < {v}"},
             {"number": "{phrase}{value}未満", "date": "{label}が{value}より前"}),
    Operator("between", "範囲（〜から〜まで）", _ORDERED | {"month"}, "pair", {"*": "{col} BETWEEN {lo} AND {hi}"},
             {"number": "{phrase}{lo}〜{hi}", "*": "{label}が{lo}〜{hi}"}),
    Operator("in", "いずれかに一致", _LISTABLE, "list", {"*": "list_contains({v}, {col})"},
             {"*": "{label}が{value}のいずれか"}),
    Operator("not_in", "いずれにも一致しない", _LISTABLE, "list", {"*": "list_contains({v}, {col})"},
             {"*": "{label}が{value}以外"}, negates="in"),
    Operator("contains", "を含む", TEXT_TYPES, "text", {"*": "contains(lower({col}), lower({v}))"},
             {"*": "{label}に{value}を含む"}),
    Operator("not_contains", "を含まない", TEXT_TYPES, "text", {"*": "contains(lower({col}), lower({v}))"},
             {"*": "{label}に{value}を含まない"}, negates="contains"),
    Operator("is_empty", "未登録（空欄）", _EMPTIABLE, "none",
             {"text": "coalesce(trim({col}), '') = ''", "*": "{col} IS NULL"}, {"*": "{label}が未登録"}),
    Operator("is_not_empty", "登録あり", _EMPTIABLE, "none",
             {"text": "coalesce(trim({col}), '') = ''", "*": "{col} IS NULL"}, {"*": "{label}が登録済み"},
             negates="is_empty"),
    Operator("within_last_days", "過去N日以内", frozenset({"date"}), "days",
             {"*": "{col} BETWEEN {as_of} - {v} + 1 AND {as_of}"}, {"*": "{label}が過去{value}以内"}),
    Operator("before_last_days", "N日以上前", frozenset({"date"}), "days",
             {"*": "{col} <= {as_of} - {v}"}, {"*": "{label}が{value}以上前"}),
    Operator("within_next_days", "今後N日以内", frozenset({"date"}), "days",
             {"*": "{col} BETWEEN {as_of} AND {as_of} + {v}"}, {"*": "{label}が今後{value}以内"}),
    Operator("this_month", "今月", _MONTHLY, "none",
             {"month": "{col} = month({as_of})", "birthday": "month({col}) = month({as_of})",
              "date": "date_trunc('month', {col}) = date_trunc('month', {as_of})"},
             {"*": "{label}が今月"}),
    Operator("next_month", "来月", _MONTHLY, "none",
             {"month": "{col} = month({as_of} + INTERVAL 1 MONTH)",
              "birthday": "month({col}) = month({as_of} + INTERVAL 1 MONTH)",
              "date": "date_trunc('month', {col}) = date_trunc('month', {as_of} + INTERVAL 1 MONTH)"},
             {"*": "{label}が来月"}),
    Operator("is_true", "はい", frozenset({"bool"}), "none", {"*": "{col} IS TRUE"}, {"*": "{yes}"}),
    Operator("is_false", "いいえ", frozenset({"bool"}), "none", {"*": "{col} IS TRUE"}, {"*": "{no}"},
             negates="is_true"),
    Operator("top_pct", "上位N%", frozenset({"int", "number", "money"}), "percent",
             {"*": "{col} >= (SELECT quantile_disc(t.{column}, {quantile}) FROM customer_model AS t)"},
             {"*": "{label}が上位{value}"}),
    Operator("gte_avg_times", "ショップ平均のN倍以上", frozenset({"int", "number", "money"}), "factor",
             {"*": "{col} >= {v} * (SELECT avg(t.{column}) FROM customer_model AS t)"},
             {"*": "{label}がショップ平均の{value}倍以上"}),
    Operator("bought", "購入した", frozenset({"products", "categories"}), "list",
             {"products": _BOUGHT_PRODUCT, "categories": _BOUGHT_CATEGORY},
             {"*": "{window_at}{value}を購入"}),
    Operator("not_bought", "購入していない", frozenset({"products", "categories"}), "list",
             {"products": _BOUGHT_PRODUCT, "categories": _BOUGHT_CATEGORY},
             {"*": "{window_at}{value}を購入していない"}, negates="bought"),
    Operator("used", "利用した", frozenset({"coupon"}), "optional_text", {"*": _USED_COUPON},
             {"*": "{window_at}{value}を利用"}),
    Operator("not_used", "利用していない", frozenset({"coupon"}), "optional_text", {"*": _USED_COUPON},
             {"*": "{window_at}{value}を利用していない"}, negates="used"),
    Operator("ordered_in", "期間中に購入した", frozenset({"sale"}), "list", {"*": _SALE_ORDER},
             {"*": "{window_at}{value}の期間中に購入"}),
    Operator("not_ordered_in", "期間中に購入していない", frozenset({"sale"}), "list", {"*": _SALE_ORDER},
             {"*": "{window_at}{value}の期間中に購入していない"}, negates="ordered_in"),
    Operator("due_within", "今後N日以内に買い替え時期", frozenset({"reorder"}), "days", {"*": _DUE},
             {"*": "今後{value}以内に{label}"}),
    Operator("overdue_within", "買い替え時期を過ぎてN日以内", frozenset({"reorder"}), "days", {"*": _OVERDUE},
             {"*": "{label}を過ぎて{value}以内"}),
)

OPERATORS: Mapping[str, Operator] = MappingProxyType({op.key: op for op in _OPERATOR_ROWS})
"""Every operator by key, in menu order."""

DAYS_RANGE = MappingProxyType(
    {"within_last_days": (1, _DAYS), "before_last_days": (0, _DAYS), "within_next_days": (0, _DAYS),
     "due_within": (0, 365), "overdue_within": (1, 365)}
)
"""Allowed day counts per ``days`` operator."""


OPERATOR_SYMBOLS = MappingProxyType(
    {
        ">=": "gte", "=>": "gte", "≥": "gte", "≧": "gte",
        ">": "gt",
        "<=": "lte", "=<": "lte", "≤": "lte", "≦": "lte",
        "<": "lt",
        "=": "eq", "==": "eq",
        "!=": "ne", "<>": "ne", "≠": "ne",
    }
)
"""Comparison symbols people type, accepted as ``"op"`` for the operator key they mean.

Looked up after NFKC (full-width ``＞＝`` are the same as ``>=``) and trimming; keys
are also accepted in any letter case (``GTE``)."""


def resolve_operator(op: object) -> str | None:
    """The operator key an ``"op"`` value means (a key or a symbol), or None."""
    if not isinstance(op, str):
        return None
    import unicodedata

    text = unicodedata.normalize("NFKC", op).strip()
    if text in OPERATOR_SYMBOLS:
        return OPERATOR_SYMBOLS[text]
    low = text.lower()
    return low if low in OPERATORS else None


def operator_choices(keys: list[str]) -> str:
    """「≧ 以上（gte, >=, ≥）、…」: the labels, and the keys and symbols a rule may use for them."""
    parts = []
    for key in keys:
        symbols = [s for s, k in OPERATOR_SYMBOLS.items() if k == key]
        parts.append(f"{OPERATORS[key].label}（{', '.join([key, *symbols])}）")
    return "、".join(parts)


def operators_for(field_key: str) -> list[str]:
    """Operator keys that apply to a field, in menu order."""
    f = FIELDS[field_key]
    return [op.key for op in _OPERATOR_ROWS if f.type in op.types]


def field_label(field_key: str, window_of: str = "期間内の") -> str:
    """A field's label for menus (behaviour labels get a neutral window word)."""
    return FIELDS[field_key].label.replace("{window_of}", window_of)
