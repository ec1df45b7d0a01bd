"""Segments: rules as JSON data → validated → SQL with bound values + a Japanese sentence.

A segment rule is JSON, never SQL::

    {"all": [COND, ...]}      every part holds   (かつ)
    {"any": [COND, ...]}      at least one holds (または)
    {"not": COND}             the part does not hold
    COND = {"field": "recency_days", "op": "gte", "value": 90}
         | {"field": "bought_product", "op": "bought", "value": ["P1"], "window": {"days": 90}}

A group may stand wherever a condition stands (up to :data:`MAX_DEPTH`
levels).  Empty groups are ignored, so ``{"all": []}`` is every customer.
``window`` (behaviour fields only) is ``{"days": N}`` (the N days ending on
``as_of``) or ``{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}`` (either end may
be left out).

Fields and operators are the tables of :mod:`crm_core.audience.fields`; one
row yields the SQL fragment, the bound parameters and the sentence
(「最終購入から90日以上 かつ 購入回数2回以上」).  Field and operator keys
only *select* rows; every value is a bound parameter and identifiers pass the
allowlist of :func:`crm_core.db.quote_ident`.

A customer whose value is empty does not match a comparison, and does match
its opposite: 「都道府県が「東京都」以外」 includes customers without a
prefecture, and ``{"not": C}`` is always the exact complement of ``C``.

Relative conditions (past N days, this month, windows, repurchase cycles)
are relative to the ``as_of`` day of ``customer_model``.

The queries (:func:`count`, :func:`summary`, :func:`sample`,
:func:`compare`, :func:`export_frame`) read ``customer_model`` (alias
``cm``) and, for behaviour conditions, ``orders``, ``order_lines``,
``products`` and the sale calendar; they never write.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from crm_core.analytics import summaries
from crm_core.analytics.profit import CUSTOMER_PROFIT_CTE, STORED_CUSTOMER_PROFIT
from crm_core.audience import channels
from crm_core.audience.fields import (
    COLUMNS,
    ELEMENT,
    FIELDS,
    OPERATORS,
    Field,
    Operator,
    operators_for,
)
from crm_core.audience.presets import PRESETS, PRESETS_BY_KEY, Preset, preset_rule
from crm_core.audience.rules import (
    CYCLE_MIN_INTERVALS,
    CYCLE_PERSONAL_MIN,
    MAX_CONDITIONS,
    MAX_DEPTH,
    _short,
    check,
    load_rule,
    read_rule_file,
    validate,
)
from crm_core.db import Store, quote_ident
from crm_core.errors import InputError
from crm_core.purchases import GROSS_PROFIT_CTE

__all__ = [
    # rules (audience.rules) and presets (audience.presets), re-exported: the segment API in one place
    "MAX_CONDITIONS", "MAX_DEPTH", "PRESETS", "PRESETS_BY_KEY", "Preset", "check", "load_rule", "operators_for",
    "preset_rule", "read_rule_file", "validate",
    # compile and query (this module)
    "ALL_CUSTOMERS", "COLUMNS", "Compiled", "EXPORT_COLUMNS", "NO_MODEL_MESSAGE", "SAMPLE_COLUMNS", "TABLE",
    "compare", "compile_rule", "count", "csv_bytes", "describe", "export_csv", "export_frame", "field_choices",
    "labels", "line_ids_text", "line_user_ids", "model_as_of", "profit_summary", "sample", "summary",
]

TABLE = "customer_model"

ALL_CUSTOMERS = "すべての顧客"
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")

# ---------------------------------------------------------------------------
# Compilation
# ---------------------------------------------------------------------------


@dataclass
class Compiled:
    """A rule ready to run.

    Attributes
    ----------
    where : str
        A boolean SQL expression over ``customer_model AS cm`` (``TRUE`` for
        the empty rule) with ``$name`` placeholders.
    params : dict
        The bound values of those placeholders.
    description : str
        The Japanese sentence (「最終購入から90日以上 かつ 購入回数2回以上」).
    rule : dict
        The validated, normalised rule.
    """

    where: str
    params: dict[str, Any]
    description: str
    rule: dict[str, Any]


class _Context:
    """What conditions may need from the store, fetched at most once and only when needed."""

    def __init__(self, store: Store | None, as_of: dt.date | None, sentence_only: bool = False) -> None:
        self.store = store
        self._as_of = as_of
        self._names: dict[str, str] = {}
        self.sentence_only = sentence_only  # only product names are looked up

    def as_of(self) -> dt.date:
        if self._as_of is None:
            value = _model_scalar(self.store, "SELECT max(as_of) FROM customer_model") if self.store else None
            self._as_of = _as_date(value) or dt.date(1970, 1, 1)
        return self._as_of

    def product_names(self, ids: list[str]) -> dict[str, str]:
        missing = [i for i in ids if i not in self._names]
        if missing and self.store is not None:
            rows = self.store.fetchall(
                """
                WITH ids AS (SELECT unnest(CAST($ids AS VARCHAR[])) AS product_id),
                m AS (SELECT product_id, arg_max(product_name, coalesce(import_id, 0)) AS name FROM products
                      WHERE product_id IN (SELECT product_id FROM ids) GROUP BY product_id),
                l AS (SELECT product_id, arg_max(product_name, line_no) AS name FROM order_lines
                      WHERE product_id IN (SELECT product_id FROM ids) GROUP BY product_id)
                SELECT ids.product_id, coalesce(m.name, l.name) FROM ids
                LEFT JOIN m USING (product_id) LEFT JOIN l USING (product_id)
                """,
                {"ids": missing},
            )
            self._names.update({pid: name for pid, name in rows if name})
        return {i: self._names.get(i, i) for i in ids}

    def non_null(self, column: str) -> int:
        """Customers with a value in a customer_model column (0 without a store)."""
        if self.store is None or self.sentence_only:
            return 0
        sql = "SELECT count(" + quote_ident(column, COLUMNS) + ") FROM customer_model"  # noqa: S608 - allowlisted
        return int(_run(self.store, sql, {}, None)[0][0])

    def sale_windows(self, kinds: list[str]) -> tuple[list[dt.datetime], list[dt.datetime]]:
        if self.store is None or self.sentence_only:
            return [], []
        from crm_core import model

        first = self.store.scalar("SELECT CAST(min(ordered_at) AS DATE) FROM orders")
        if first is None:
            return [], []
        # The calendar's effective sale windows (corrections and own sale rows
        # included), the same the customer model labels orders with.
        df = model.sale_windows(self.store, min(first, self.as_of()), self.as_of(), kinds)
        rows = list(zip(df["starts_at"].dt.to_pydatetime(), df["ends_at"].dt.to_pydatetime()))
        return [r[0] for r in rows], [r[1] for r in rows]


def _as_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    raise TypeError(f"not a date: {value!r}")


class _Compiler:
    """Turns a validated rule into SQL, parameters and a sentence."""

    def __init__(self, ctx: _Context, prefix: str = "p") -> None:
        self.ctx = ctx
        self.prefix = prefix
        self.params: dict[str, Any] = {}
        self._shared: dict[str, str] = {}

    def bind(self, value: Any, sql_type: str) -> str:
        name = f"{self.prefix}{len(self.params)}"
        self.params[name] = value
        return f"CAST(${name} AS {sql_type})"

    def shared(self, key: str, make: Callable[[], tuple[Any, str]]) -> str:
        """A parameter used by several conditions (as_of, end of as_of)."""
        if key not in self._shared:
            value, sql_type = make()
            self._shared[key] = self.bind(value, sql_type)
        return self._shared[key]

    def as_of_ref(self) -> str:
        return self.shared("as_of", lambda: (self.ctx.as_of(), "DATE"))

    def end_ref(self) -> str:
        return self.shared("end", lambda: (_day_start(self.ctx.as_of() + dt.timedelta(days=1)), "TIMESTAMP"))

    # -- nodes --------------------------------------------------------------
    def node(self, x: dict[str, Any], negated: bool) -> tuple[str, str] | None:
        """(sql, sentence) of a node, or None for an empty group."""
        out = self._node(x, negated)
        return None if out is None else out[:2]

    def _node(self, x: dict[str, Any], negated: bool) -> tuple[str, str, bool] | None:
        """(sql, sentence, several parts joined) of a node, or None for an empty group."""
        if "not" in x:
            inner = self._node(x["not"], True)
            if inner is None:
                return None
            return f"NOT ({inner[0]})", f"（{inner[1]}）に該当しない", False
        if "all" in x or "any" in x:
            mode = "all" if "all" in x else "any"
            parts = [p for p in (self._node(c, negated) for c in x[mode]) if p is not None]
            if not parts:
                return None
            if len(parts) == 1:
                return parts[0]
            joiner, word = (" AND ", " かつ ") if mode == "all" else (" OR ", " または ")
            sql = joiner.join(f"({s})" for s, _, _ in parts)
            sentence = word.join(f"（{t}）" if joined else t for _, t, joined in parts)
            return sql, sentence, True
        return (*self.condition(x, negated), False)

    def condition(self, c: dict[str, Any], negated: bool) -> tuple[str, str]:
        f = FIELDS[c["field"]]
        op = OPERATORS[c["op"]]
        value = c.get("value")
        window = c.get("window")
        template = op.pick(op.sql, f.type)
        slots = _slots(template)
        fill: dict[str, str] = {}
        purchase = self.purchase(window) if ("purchase" in slots or "{purchase}" in f.expr) else ""
        if "col" in slots:
            fill["col"] = self.column_sql(f, purchase)
        if "column" in slots:
            fill["column"] = quote_ident(f.column or "", COLUMNS)
        if "purchase" in slots:
            fill["purchase"] = purchase
        if "as_of" in slots:
            fill["as_of"] = self.as_of_ref()
        if "cycles" in slots:
            fill["cycles"] = self.cycles(f.level)
        if "starts" in slots or "ends" in slots:
            starts, ends = self.ctx.sale_windows(value)
            fill["starts"] = self.bind(starts, "TIMESTAMP[]")
            fill["ends"] = self.bind(ends, "TIMESTAMP[]")
        if "quantile" in slots:
            fill["quantile"] = self.bind(self.top_quantile(f, value), "DOUBLE")
        sql_type = _sql_type(f, op)
        if op.value == "pair":
            fill["lo"] = self.bind(_param_value(f, value[0]), sql_type)
            fill["hi"] = self.bind(_param_value(f, value[1]), sql_type)
        elif op.value == "list" and "v" in slots:
            fill["v"] = self.bind([_param_value(f, v) for v in value], sql_type + "[]")
        elif op.value != "none" and "v" in slots:
            fill["v"] = self.bind(_param_value(f, value) if op.value == "scalar" else value, sql_type)
        sql = template.format(**fill)
        if op.negates:
            sql = f"NOT coalesce(({sql}), FALSE)"
        elif negated:
            sql = f"coalesce(({sql}), FALSE)"
        return sql, self.sentence(f, op, value, window)

    def column_sql(self, f: Field, purchase: str) -> str:
        if f.expr:
            return f.expr.format(purchase=purchase)
        col = "cm." + quote_ident(f.column or "", COLUMNS)
        return f"CAST({col} AS DATE)" if f.timestamp else col

    def purchase(self, window: dict[str, Any] | None) -> str:
        """Orders that count: not cancelled, with a customer, up to the end of as_of, in the window."""
        parts = ["NOT coalesce(o.cancelled, FALSE)", "o.customer_id IS NOT NULL", f"o.ordered_at < {self.end_ref()}"]
        if window:
            if "days" in window:
                start = self.ctx.as_of() - dt.timedelta(days=window["days"] - 1)
                parts.append(f"o.ordered_at >= {self.bind(_day_start(start), 'TIMESTAMP')}")
            if "from" in window:
                parts.append(f"o.ordered_at >= {self.bind(_day_start(dt.date.fromisoformat(window['from'])), 'TIMESTAMP')}")
            if "to" in window:
                end = _day_start(dt.date.fromisoformat(window["to"]) + dt.timedelta(days=1))
                parts.append(f"o.ordered_at < {self.bind(end, 'TIMESTAMP')}")
        return " AND ".join(parts)

    def top_quantile(self, f: Field, percent: float) -> float:
        """The discrete quantile whose value the top ``percent``% of customers reach.

        With ``n`` customers that have a value, the top ``k = ceil(n * percent / 100)``
        are wanted; ``quantile_disc`` returns the value at 0-based index
        ``ceil(q * n) - 1``, so ``q = (n - k + 0.5) / n`` selects the k-th largest
        value exactly (customers tied with it are included).
        """
        n = self.ctx.non_null(f.column or "")
        if not n:
            return 1.0
        k = max(1, math.ceil(n * percent / 100 - 1e-9))
        return (n - k + 0.5) / n

    def cycles(self, level: str) -> str:
        """The repurchase-cycle CTEs of :mod:`crm_core.analytics.cycles` (ending in ``due_dates``)."""
        from crm_core.analytics.cycles import cycles_sql

        sql = cycles_sql(level)
        names = set(_PARAM.findall(sql))
        values = {
            "end": _day_start(self.ctx.as_of() + dt.timedelta(days=1)),
            "as_of": self.ctx.as_of(),
            "min_intervals": CYCLE_MIN_INTERVALS,
            "personal_min": CYCLE_PERSONAL_MIN,
        }
        unknown = names - set(values)
        if unknown:  # pragma: no cover - guards against a change in crm_core.analytics.cycles
            raise RuntimeError(f"crm_core.analytics.cycles needs parameters we do not know: {sorted(unknown)}")
        for name in names:
            self.params[name] = values[name]
        return sql

    # -- sentences ------------------------------------------------------------
    def sentence(self, f: Field, op: Operator, value: Any, window: dict[str, Any] | None) -> str:
        template = f.sentences.get(op.key) or op.pick(op.sentence, f.type)
        at, of, within = _window_words(window)
        label = f.label.format(window_of=of)
        slots = _slots(template)
        fill = {
            "label": label,
            "phrase": f.phrase or label,
            "window_at": at,
            "window_of": of,
            "window_in": within,
            "yes": f.yes,
            "no": f.no,
        }
        if "value" in slots:
            fill["value"] = self.value_text(f, op, value)
        if op.value == "pair":
            fill["lo"], fill["hi"] = (self.value_text(f, op, v, single=True) for v in value)
        return template.format(**fill)

    def value_text(self, f: Field, op: Operator, value: Any, single: bool = False) -> str:
        if op.value == "days":
            return f"{value:,}日"
        if op.value == "percent":
            return f"{value:g}%"
        if op.value == "factor":
            return f"{value:g}"
        if op.value == "optional_text":
            return "クーポン" if value is None else f"クーポン「{value}」"
        if op.value == "list" and not single:
            return self.list_text(f, value)
        return _scalar_text(f, value)

    def list_text(self, f: Field, values: list[Any]) -> str:
        if f.type == "sale":
            return "・".join(f.value_labels.get(v, v) for v in values)
        shown = values[:5]
        if f.type == "products":
            names = self.ctx.product_names(shown)
            text = "商品" + "".join(f"「{names[v]}」" for v in shown)
        elif f.type == "categories":
            text = "カテゴリ" + "".join(f"「{v}」" for v in shown)
        else:
            parts = [_scalar_text(f, v) for v in shown]
            text = ("" if parts[0].startswith("「") else "、").join(parts)
        if len(values) > len(shown):
            text += f"ほか{len(values) - len(shown)}件"
        return text


def _slots(template: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", template))


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day)


def _sql_type(f: Field, op: Operator) -> str:
    if op.value == "none":
        return ""
    if op.value == "days":
        return "INTEGER"
    if op.value in ("percent", "factor"):
        return "DOUBLE"
    if op.value in ("text", "optional_text"):
        return "VARCHAR"
    if f.type in ("money", "window_money"):
        return "DECIMAL(18, 2)"
    kind = ELEMENT[f.type]
    return {"int": "BIGINT", "number": "DOUBLE", "date": "DATE", "str": "VARCHAR"}[kind]


def _param_value(f: Field, value: Any) -> Any:
    if ELEMENT[f.type] == "date":
        return dt.date.fromisoformat(value)
    return value


def _scalar_text(f: Field, value: Any) -> str:
    kind = ELEMENT[f.type]
    if f.type == "month":
        return f"{value}月"
    if f.type == "ratio":
        return f"{value * 100:.4g}%"
    if f.type in ("money", "window_money"):
        return f"{value:,.0f}円" if float(value).is_integer() else f"{value:,.2f}円"
    if kind in ("int", "number"):
        text = f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0").rstrip(".")
        return text + f.unit
    if kind == "date":
        day = dt.date.fromisoformat(value)
        return f"{day.year}年{day.month}月{day.day}日"
    return f"「{f.value_labels.get(value, value)}」"


def _window_words(window: dict[str, Any] | None) -> tuple[str, str, str]:
    """(「直近90日間に」, 「直近90日間の」, 「直近90日間の」) — or ('', '全期間の', '') without a window."""
    if not window:
        return "", "全期間の", ""
    if "days" in window:
        span = f"直近{window['days']:,}日間"
    else:
        def jp(iso: str) -> str:
            d = dt.date.fromisoformat(iso)
            return f"{d.year}年{d.month}月{d.day}日"

        if "from" in window and "to" in window:
            span = f"{jp(window['from'])}〜{jp(window['to'])}"
        elif "from" in window:
            span = f"{jp(window['from'])}以降"
        else:
            span = f"{jp(window['to'])}まで"
    return span + "に", span + "の", span + "の"


def compile_rule(store: Store | None, rule: Any, as_of: dt.date | None = None, prefix: str = "p") -> Compiled:
    """Validate a rule and build its SQL, parameters and sentence.

    Parameters
    ----------
    store : Store or None
        Needed for product names in the sentence, the as-of day and sale
        windows; without a store the sentence uses product ids.
    rule : dict
        The JSON rule.
    as_of : date, optional
        The day relative conditions refer to (default: ``customer_model.as_of``).
    prefix : str
        Prefix of the generated parameter names (to combine two rules).

    Raises
    ------
    InputError
        If the rule is invalid (see :func:`validate`).
    """
    clean = validate(rule)
    compiler = _Compiler(_Context(store, as_of), prefix)
    out = compiler.node(clean, False)
    if out is None:
        return Compiled("TRUE", {}, ALL_CUSTOMERS, clean)
    return Compiled(out[0], compiler.params, out[1], clean)


def describe(rule: Any, store: Store | None = None) -> str:
    """The Japanese sentence of a rule (「最終購入から90日以上 かつ 購入回数2回以上」)."""
    clean = validate(rule)
    compiler = _Compiler(_Context(store, dt.date(1970, 1, 1), sentence_only=True))
    out = compiler.node(clean, False)
    return ALL_CUSTOMERS if out is None else out[1]


# ---------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------

NO_MODEL_MESSAGE = (
    "顧客データ（顧客モデル）がまだ作られていません。「データ取込」で注文CSVを取り込むと自動で作成されます。"
)


def _explain_missing(store: Store, rule: dict[str, Any] | None) -> InputError | None:
    """An InputError when the customer model is missing or lacks a column the rule uses."""
    if not store.has_table(TABLE):
        return InputError(NO_MODEL_MESSAGE, "customer_model missing")
    have = {r[0] for r in store.fetchall(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ?", [TABLE]
    )}
    needed = {"customer_id", "revenue", "email", "email_opt_in", "has_line", "as_of"}
    needed |= {FIELDS[k].column for k in _fields_of(rule or {}) if FIELDS[k].column}
    missing = sorted(needed - have)
    if missing:
        labels = "、".join(f"「{FIELDS[k].label}」" for k in FIELDS if FIELDS[k].column in missing) or "、".join(missing)
        return InputError(
            f"顧客データに{labels}がまだありません。データを取り込み直すと顧客データが作り直されます。",
            f"customer_model lacks {missing}",
        )
    return None


def _run(store: Store, sql: str, params: dict[str, Any], rule: dict[str, Any] | None, how: str = "all") -> Any:
    try:
        cur = store.execute(sql, params)
        return cur.fetchall() if how == "all" else cur.df()
    except (duckdb.CatalogException, duckdb.BinderException):
        problem = _explain_missing(store, rule)
        if problem is not None:
            raise problem from None
        raise


def _model_scalar(store: Store, sql: str) -> Any:
    rows = _run(store, sql, {}, None)
    return rows[0][0] if rows else None


def _fields_of(rule: dict[str, Any]) -> Iterable[str]:
    if "field" in rule:
        yield rule["field"]
    for key in ("all", "any"):
        for child in rule.get(key, []):
            yield from _fields_of(child)
    if "not" in rule:
        yield from _fields_of(rule["not"])


def count(store: Store, rule: Any, as_of: dt.date | None = None) -> int:
    """Number of customers in the segment."""
    c = compile_rule(store, rule, as_of)
    sql = "SELECT count(*) FROM customer_model AS cm WHERE " + c.where  # noqa: S608 - generated from allowlisted tables
    return int(_run(store, sql, c.params, c.rule)[0][0])


def summary(store: Store, rule: Any, as_of: dt.date | None = None) -> dict[str, Any]:
    """Size of a segment as the page shows it.

    Returns
    -------
    dict
        ``customers``, ``total_customers``, ``customer_share`` (0-1),
        ``revenue`` (lifetime revenue of the segment, yen), ``total_revenue``,
        ``revenue_share``, ``email_reachable`` (opted in with an address),
        ``line_reachable`` (with a LINE user id), ``description``, ``as_of``.
    """
    c = compile_rule(store, rule, as_of)
    sql = (
        "SELECT (SELECT count(*) FROM customer_model), (SELECT coalesce(sum(revenue), 0) FROM customer_model), "  # noqa: S608
        "count(*), coalesce(sum(cm.revenue), 0), "
        "count(*) FILTER (WHERE " + channels.MAIL_LIST.reach + "), "  # the channel table: 「メールで届く」
        "count(*) FILTER (WHERE " + channels.CHANNELS["line"].reach + "), (SELECT max(as_of) FROM customer_model) "
        "FROM customer_model AS cm WHERE " + c.where
    )
    total, total_rev, n, rev, email, line, model_as_of = _run(store, sql, c.params, c.rule)[0]
    total_rev, rev = float(total_rev), float(rev)
    return {
        "customers": int(n),
        "total_customers": int(total),
        "customer_share": n / total if total else None,
        "revenue": rev,
        "total_revenue": total_rev,
        "revenue_share": rev / total_rev if total_rev else None,
        "email_reachable": int(email),
        "line_reachable": int(line),
        "description": c.description,
        "as_of": as_of or _as_date(model_as_of),
    }


def profit_summary(store: Store, rule: Any, as_of: dt.date | None = None,
                   data_version: Sequence[Any] | None = None) -> dict[str, Any]:
    """Gross profit of a segment (definition: :mod:`crm_core.analytics.value`), beside :func:`summary`.

    With ``data_version`` (``pipeline.data_version``) the customers' gross profit stored by the last
    refresh is summed when it is current (:func:`crm_core.analytics.summaries.table_current`), instead of
    joining every order line of the segment to the costs; the figures are the same.

    Returns
    -------
    dict
        ``gross_profit`` (historic, lines with a known cost; None when none
        is known), ``coverage`` (costed / all line revenue of the segment),
        ``margin_rate``, ``predicted_gross_profit_365d`` (Σ predicted CLV ×
        each customer's margin rate, over customers with a known rate),
        ``predicted_covered_share`` (share of the segment's predicted CLV
        that has a margin rate).
    """
    c = compile_rule(store, rule, as_of)
    if data_version is not None and summaries.table_current(store, "customer_profit", data_version):
        source = "WITH customer_profit AS (SELECT * FROM " + STORED_CUSTOMER_PROFIT + ")"  # noqa: S608 - constant table name
    else:
        source = "WITH " + GROSS_PROFIT_CTE + ", " + CUSTOMER_PROFIT_CTE
    sql = (
        source  # noqa: S608 - constant SQL and generated WHERE
        + """ SELECT sum(p.line_revenue), sum(p.covered_revenue), sum(p.gross_profit),
                     sum(CAST(cm.predicted_clv_365d AS DOUBLE) * p.gross_profit / nullif(p.covered_revenue, 0)),
                     sum(CAST(cm.predicted_clv_365d AS DOUBLE)) FILTER (WHERE p.covered_revenue > 0),
                     sum(CAST(cm.predicted_clv_365d AS DOUBLE))
              FROM customer_model AS cm LEFT JOIN customer_profit p USING (customer_id) WHERE """ + c.where
    )
    line_rev, covered, gp, pred, pred_cov, pred_all = _run(store, sql, c.params, c.rule)[0]
    line_rev, covered = float(line_rev or 0), float(covered or 0)
    return {
        "gross_profit": None if gp is None else float(gp),
        "coverage": covered / line_rev if line_rev else None,
        "margin_rate": float(gp) / covered if gp is not None and covered else None,
        "predicted_gross_profit_365d": None if pred is None else float(pred),
        "predicted_covered_share": float(pred_cov or 0) / float(pred_all) if pred_all else None,
    }


SAMPLE_COLUMNS = (
    "customer_id", "name", "prefecture", "orders", "revenue", "aov", "last_order_at", "recency_days",
    "rank", "rfm_segment", "email_opt_in", "has_line",
)
EXPORT_COLUMNS = (
    "customer_id", "name", "email", "prefecture", "gender", "age", "birthday", "email_opt_in", "has_line",
    "line_user_id", "orders", "revenue", "aov", "first_order_at", "last_order_at", "recency_days", "rank",
    "rfm_segment", "last_product_name", "subscription_status", "churn_risk",
)


def _select(columns: Iterable[str]) -> str:
    return ", ".join("cm." + quote_ident(c, COLUMNS) for c in columns)


def sample(store: Store, rule: Any, limit: int = 20, columns: Iterable[str] = SAMPLE_COLUMNS) -> pd.DataFrame:
    """Up to ``limit`` matching customers (highest lifetime revenue first), raw column names."""
    c = compile_rule(store, rule)
    cols = tuple(columns)
    sql = (
        "SELECT " + _select(cols) + " FROM customer_model AS cm WHERE " + c.where  # noqa: S608 - allowlisted
        + " ORDER BY cm.revenue DESC NULLS LAST, cm.customer_id LIMIT $limit_rows"
    )
    return _run(store, sql, {**c.params, "limit_rows": max(0, int(limit))}, c.rule, how="df")


def labels(columns: Iterable[str]) -> dict[str, str]:
    """Japanese headers for customer_model columns."""
    by_column = {f.column: f.label for f in FIELDS.values() if f.column}
    by_column.update({"last_order_at": "最終購入日時", "first_order_at": "初回購入日時"})
    return {c: by_column.get(c, c) for c in columns}


def compare(store: Store, rule_a: Any, rule_b: Any) -> dict[str, int]:
    """Overlap of two segments: ``a``, ``b``, ``both``, ``a_only``, ``b_only``, ``either``, ``total``."""
    ctx = _Context(store, None)
    ca, cb = _Compiler(ctx, "a"), _Compiler(ctx, "b")
    a_clean, b_clean = validate(rule_a), validate(rule_b)
    a = ca.node(a_clean, False)
    b = cb.node(b_clean, False)
    where_a = a[0] if a else "TRUE"
    where_b = b[0] if b else "TRUE"
    sql = (
        "SELECT count(*) FILTER (WHERE a), count(*) FILTER (WHERE b), count(*) FILTER (WHERE a AND b), "  # noqa: S608
        "count(*) FILTER (WHERE a AND NOT b), count(*) FILTER (WHERE b AND NOT a), count(*) FILTER (WHERE a OR b), count(*) "
        "FROM (SELECT coalesce((" + where_a + "), FALSE) AS a, coalesce((" + where_b + "), FALSE) AS b FROM customer_model AS cm)"
    )
    row = _run(store, sql, {**ca.params, **cb.params}, {"all": [a_clean, b_clean]})[0]
    keys = ("a", "b", "both", "a_only", "b_only", "either", "total")
    return {k: int(v) for k, v in zip(keys, row)}


def export_frame(store: Store, rule: Any, opted_in_only: bool = False) -> pd.DataFrame:
    """Every matching customer with the export columns under Japanese headers.

    Booleans become はい / いいえ, dates ``YYYY-MM-DD``, amounts whole yen;
    highest lifetime revenue first.  With ``opted_in_only`` only customers who
    allowed e-mail and have an address are included (特定電子メール法, FACTS.md §4).
    """
    c = compile_rule(store, rule)
    where = c.where
    if opted_in_only:
        where = f"({where}) AND {channels.reach_sql(channels.MAIL_LIST.key)}"
    # the shop's own customer number (a generic file's or Shopify's customer id) goes out too
    sql = (
        "SELECT " + _select(EXPORT_COLUMNS) + ", (SELECT k.customer_key FROM customers AS k "  # noqa: S608 - allowlisted
        "WHERE k.customer_id = cm.customer_id) AS customer_key FROM customer_model AS cm WHERE " + where
        + " ORDER BY cm.revenue DESC NULLS LAST, cm.customer_id"
    )
    df = _run(store, sql, c.params, c.rule, how="df")
    for col in ("email_opt_in", "has_line"):
        df[col] = df[col].map({True: "はい", False: "いいえ"}).astype("object")
    for col in ("revenue", "aov"):
        df[col] = df[col].map(lambda v: None if pd.isna(v) else round(float(v))).astype("Int64")
    for col in ("birthday",):
        df[col] = pd.to_datetime(df[col]).dt.strftime("%Y-%m-%d")
    for col in ("first_order_at", "last_order_at"):
        df[col] = pd.to_datetime(df[col]).dt.strftime("%Y-%m-%d %H:%M:%S")
    df["age"] = df["age"].astype("Int64")
    return df.rename(columns={**labels(EXPORT_COLUMNS), "customer_key": "ショップの顧客番号"})


def _export_columns() -> list[tuple[str, str]]:
    """(SQL expression, Japanese header) of each segment export column, formatted as :func:`export_frame` does."""
    names = labels(EXPORT_COLUMNS)
    cols = []
    for name in EXPORT_COLUMNS:
        ref = "cm." + quote_ident(name, COLUMNS)
        if name in ("email_opt_in", "has_line"):
            expr = f"CASE WHEN {ref} THEN 'はい' WHEN NOT {ref} THEN 'いいえ' END"
        elif name in ("revenue", "aov"):  # whole yen, halves to even as Python's round()
            expr = f"CAST(round_even({ref}, 0) AS BIGINT)"
        elif name == "birthday":
            expr = f"strftime({ref}, '%Y-%m-%d')"
        elif name in ("first_order_at", "last_order_at"):
            expr = f"strftime({ref}, '%Y-%m-%d %H:%M:%S')"
        else:
            expr = ref
        cols.append((expr, names[name]))
    cols.append(("(SELECT k.customer_key FROM customers AS k WHERE k.customer_id = cm.customer_id)", "ショップの顧客番号"))
    return cols


def export_csv(store: Store, rule: Any, path: str | Path, encoding: str = "utf-8-sig", opted_in_only: bool = False) -> dict[str, Any]:
    """Write the segment as CSV for Excel / R-Mail (formulas neutralised, FACTS.md §2).

    The file :func:`csv_bytes` would give, but neutralised in SQL and written
    by DuckDB's ``COPY`` (:func:`crm_core.export.copy_csv`): seconds for
    millions of customers, memory flat, the file complete or absent.

    Returns
    -------
    dict
        ``rows`` written and ``unencodable``: characters cp932 could not carry
        (written as ``?``), empty for UTF-8.
    """
    from crm_core.export import ENCODINGS, copy_csv

    if encoding not in ENCODINGS:
        raise InputError("文字コードは utf-8-sig（UTF-8 BOM付き）か cp932（Shift_JIS）を選んでください。", f"encoding={encoding!r}")
    c = compile_rule(store, rule)
    where = c.where
    if opted_in_only:
        where = f"({where}) AND {channels.reach_sql(channels.MAIL_LIST.key)}"
    from_sql = "FROM customer_model AS cm WHERE " + where + " ORDER BY cm.revenue DESC NULLS LAST, cm.customer_id"
    bad: set[str] = set()
    try:
        rows = copy_csv(store, _export_columns(), from_sql, c.params, path, encoding, bad)
    except (duckdb.CatalogException, duckdb.BinderException):
        problem = _explain_missing(store, c.rule)
        if problem is not None:
            raise problem from None
        raise
    return {"rows": rows, "unencodable": sorted(bad)}


def csv_bytes(store: Store, rule: Any, encoding: str = "utf-8-sig", opted_in_only: bool = False) -> bytes:
    """The segment as CSV bytes (see :func:`export_csv`)."""
    from crm_core.export import ENCODINGS, to_csv_bytes

    if encoding not in ENCODINGS:
        raise InputError("文字コードは utf-8-sig（UTF-8 BOM付き）か cp932（Shift_JIS）を選んでください。", f"encoding={encoding!r}")
    return to_csv_bytes(export_frame(store, rule, opted_in_only), encoding)


def line_user_ids(store: Store, rule: Any) -> list[str]:
    """Distinct LINE user ids of the segment (for a LINE audience upload), sorted."""
    c = compile_rule(store, rule)
    sql = (
        "SELECT DISTINCT trim(cm.line_user_id) AS id FROM customer_model AS cm WHERE (" + c.where  # noqa: S608
        + ") AND coalesce(trim(cm.line_user_id), '') <> '' ORDER BY id"
    )
    return [r[0] for r in _run(store, sql, c.params, c.rule)]


def line_ids_text(store: Store, rule: Any) -> str:
    """LINE user ids one per line (the plain-text audience file LINE accepts)."""
    ids = line_user_ids(store, rule)
    return "".join(i + "\n" for i in ids)


# ---------------------------------------------------------------------------
# Choices for the page
# ---------------------------------------------------------------------------


def field_choices(store: Store, field_key: str, limit: int = 500) -> list[tuple[Any, str]]:
    """(value, Japanese label) pairs a field's value widget offers, most common first."""
    f = FIELDS.get(field_key)
    if f is None:
        raise InputError(f"「{_short(field_key)}」という項目はありません。", "unknown field")
    if f.type == "month":
        return [(m, f"{m}月") for m in range(1, 13)]
    if f.choices:
        return [(c, f.value_labels.get(c, c)) for c in f.choices]
    if f.type == "products" or field_key == "last_product_id":
        rows = store.fetchall(
            """
            WITH l AS (SELECT product_id, arg_max(product_name, line_no) AS name, count(*) AS n FROM order_lines
                       WHERE coalesce(trim(product_id), '') <> '' GROUP BY product_id),
            m AS (SELECT product_id, arg_max(product_name, coalesce(import_id, 0)) AS name FROM products
                  WHERE coalesce(trim(product_id), '') <> '' GROUP BY product_id)
            SELECT coalesce(m.product_id, l.product_id) AS id, coalesce(m.name, l.name) AS name
            FROM m FULL JOIN l ON l.product_id = m.product_id
            ORDER BY coalesce(l.n, 0) DESC, id LIMIT $limit
            """,
            {"limit": limit},
        )
        return [(pid, f"{name}（{pid}）" if name else pid) for pid, name in rows]
    if f.type == "categories":
        rows = store.fetchall(
            """
            WITH m AS (SELECT product_id, arg_max(category, coalesce(import_id, 0)) AS category FROM products
                       WHERE product_id IS NOT NULL GROUP BY product_id),
            c AS (SELECT coalesce(m.category, l.category) AS category FROM order_lines l
                  LEFT JOIN m ON m.product_id = l.product_id
                  UNION ALL SELECT category FROM m)
            SELECT category FROM c WHERE coalesce(trim(category), '') <> ''
            GROUP BY category ORDER BY count(*) DESC, category LIMIT $limit
            """,
            {"limit": limit},
        )
        return [(r[0], r[0]) for r in rows]
    if f.column and f.type in ("choice", "text"):
        col = quote_ident(f.column, COLUMNS)
        sql = (
            "SELECT " + col + " AS v FROM customer_model WHERE coalesce(trim(" + col + "), '') <> '' "  # noqa: S608
            "GROUP BY v ORDER BY count(*) DESC, v LIMIT $limit"
        )
        rows = _run(store, sql, {"limit": limit}, {"field": field_key})
        return [(r[0], f.value_labels.get(r[0], r[0])) for r in rows]
    return []


def model_as_of(store: Store) -> dt.date | None:
    """The ``as_of`` day of ``customer_model`` (None if it is missing or empty; :func:`crm_core.model.stored_as_of`)."""
    from crm_core import model

    return model.stored_as_of(store)



