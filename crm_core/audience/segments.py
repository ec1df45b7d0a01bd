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
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from crm_core.audience.fields import (
    COLUMNS,
    DAYS_RANGE,
    ELEMENT,
    FIELDS,
    OPERATORS,
    WINDOW_TYPES,
    Field,
    Operator,
    field_label,
    operators_for,
)
from crm_core.db import Store, quote_ident
from crm_core.errors import InputError

TABLE = "customer_model"
MAX_DEPTH = 8
"""Most nested groups and NOTs (the root group is level 1)."""
MAX_CONDITIONS = 100
MAX_TEXT = 200
MAX_LIST = 1000
CYCLE_MIN_INTERVALS = 3
CYCLE_PERSONAL_MIN = 2
"""Repurchase-cycle settings (the defaults of :mod:`crm_core.analytics.cycles`)."""

ALL_CUSTOMERS = "すべての顧客"
_COND_KEYS = frozenset({"field", "op", "value", "window"})
_WINDOW_KEYS = frozenset({"days", "from", "to"})
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _short(value: Any, limit: int = 30) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else "?" for ch in text)
    return text if len(text) <= limit else text[:limit] + "…"


class _Where:
    """Where in the rule a problem is: 「条件2-1：」."""

    def __init__(self, path: tuple[int, ...]) -> None:
        self.path = path

    def error(self, message: str, detail: str = "") -> InputError:
        prefix = f"条件{'-'.join(str(i + 1) for i in self.path)}：" if self.path else ""
        return InputError(prefix + message, detail or f"segment rule invalid at {self.path}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_text(value: Any, label: str, at: _Where) -> str:
    if not isinstance(value, str):
        raise at.error(f"「{label}」には文字を入力してください。", f"expected str, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise at.error(f"「{label}」の値を入力してください。", "empty text")
    if len(text) > MAX_TEXT:
        raise at.error(f"「{label}」の値は{MAX_TEXT}文字以内にしてください。", "text too long")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in text):
        raise at.error(f"「{label}」の値に使えない文字（制御文字など）が含まれています。", "control or surrogate character")
    return text


def _check_date(value: Any, label: str, at: _Where) -> str:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        day = value
    elif isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            day = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise at.error(f"「{label}」の日付「{_short(value)}」は存在しない日付です。", "bad date") from None
    else:
        raise at.error(f"「{label}」には日付を YYYY-MM-DD の形（例: 2026-01-31）で指定してください。", "bad date")
    if not 1900 <= day.year <= 2200:
        raise at.error(f"「{label}」の日付は1900年から2200年の間で指定してください。", "date out of range")
    return day.isoformat()


def _check_number(value: Any, f: Field, at: _Where, integer: bool) -> int | float:
    label = field_label(f.key)
    if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        kind = "整数" if integer else "数値"
        raise at.error(f"「{label}」には{kind}を入力してください（「{_short(value)}」は使えません）。", "not a number")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise at.error(f"「{label}」には整数を入力してください（{value}）。", "not an integer")
        value = int(value)
    if (f.minimum is not None and value < f.minimum) or (f.maximum is not None and value > f.maximum):
        raise at.error(
            f"「{label}」には{_plain(f.minimum)}から{_plain(f.maximum)}までの値を入力してください。",
            "number out of range",
        )
    return value


def _plain(x: float | None) -> str:
    if x is None:
        return ""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _check_scalar(f: Field, value: Any, at: _Where) -> Any:
    kind = ELEMENT[f.type]
    label = field_label(f.key)
    if kind == "int":
        return _check_number(value, f, at, integer=True)
    if kind == "number":
        return _check_number(value, f, at, integer=False)
    if kind == "date":
        return _check_date(value, label, at)
    text = _check_text(value, label, at)
    if f.type == "sale" and text not in f.choices:
        names = "、".join(f.value_labels[c] for c in f.choices)
        raise at.error(f"「{label}」は次から選んでください: {names}", f"unknown sale kind {text!r}")
    return text


def _check_days(op: Operator, value: Any, label: str, at: _Where) -> int:
    lo, hi = DAYS_RANGE[op.key]
    if not _is_number(value) or (isinstance(value, float) and not (math.isfinite(value) and value.is_integer())):
        raise at.error(f"「{label}」の日数は整数で入力してください。", "days not an integer")
    if not lo <= value <= hi:
        raise at.error(f"「{label}」の日数は{lo}から{hi:,}までで入力してください。", "days out of range")
    return int(value)


def _check_value(f: Field, op: Operator, value: Any, at: _Where) -> Any:
    label = field_label(f.key)
    shape = op.value
    if shape == "none":
        if value is not None:
            raise at.error(f"「{label}」の「{op.label}」には値を指定しません。", "value given for a no-value operator")
        return None
    if shape == "scalar":
        return _check_scalar(f, value, at)
    if shape == "pair":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise at.error(f"「{label}」の範囲は「下限」と「上限」の2つの値で指定してください。", "pair expected")
        lo, hi = (_check_scalar(f, v, at) for v in value)
        if lo > hi:
            raise at.error(f"「{label}」の範囲は下限を上限以下にしてください。", "lo > hi")
        return [lo, hi]
    if shape == "list":
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value:
            raise at.error(f"「{label}」の値を1つ以上選んでください。", "non-empty list expected")
        if len(value) > MAX_LIST:
            raise at.error(f"「{label}」の値は{MAX_LIST:,}個までにしてください。", "list too long")
        out: list[Any] = []
        for v in value:
            checked = _check_scalar(f, v, at)
            if checked not in out:
                out.append(checked)
        return out
    if shape == "days":
        return _check_days(op, value, label, at)
    if shape == "text":
        return _check_text(value, label, at)
    if shape == "optional_text":
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return _check_text(value, label, at)
    if shape in ("percent", "factor"):
        top = 100 if shape == "percent" else 1000
        if not _is_number(value) or not math.isfinite(value) or not 0 < value <= top:
            what = "割合（%）" if shape == "percent" else "倍率"
            raise at.error(f"「{label}」の{what}は0より大きく{top}以下の数値で入力してください。", f"bad {shape}")
        return value
    raise AssertionError(f"unknown value shape {shape}")  # pragma: no cover - table is static


def _check_window(f: Field, window: Any, at: _Where) -> dict[str, Any] | None:
    if window is None:
        return None
    label = field_label(f.key)
    if f.type not in WINDOW_TYPES:
        raise at.error(f"「{label}」には期間を指定できません。", "window on a non-window field")
    if not isinstance(window, dict) or not window or not set(window) <= _WINDOW_KEYS:
        raise at.error(
            "期間は「直近N日」（{\"days\": 90}）か日付の範囲（{\"from\": \"2026-01-01\", \"to\": \"2026-03-31\"}）で指定してください。",
            "bad window",
        )
    if "days" in window:
        if set(window) != {"days"}:
            raise at.error("期間は「直近N日」か日付の範囲のどちらか一方で指定してください。", "days with from/to")
        days = window["days"]
        if not _is_number(days) or not math.isfinite(days) or not float(days).is_integer() or not 1 <= days <= 36500:
            raise at.error("期間の日数は1から36,500までの整数で入力してください。", "bad window days")
        return {"days": int(days)}
    out = {k: _check_date(window[k], "期間", at) for k in ("from", "to") if window.get(k) is not None}
    if not out:
        return None
    if "from" in out and "to" in out and out["from"] > out["to"]:
        raise at.error("期間の開始日は終了日以前にしてください。", "from > to")
    return out


def _check_condition(node: dict, at: _Where) -> dict[str, Any]:
    extra = set(node) - _COND_KEYS
    if extra:
        raise at.error(f"条件に使えないキー「{_short(sorted(map(str, extra))[0])}」があります。", "unknown key")
    key = node.get("field")
    if not isinstance(key, str) or key not in FIELDS:
        raise at.error(f"「{_short(key)}」という項目はありません。項目は一覧から選んでください。", "unknown field")
    f = FIELDS[key]
    op_key = node.get("op")
    allowed = operators_for(key)
    if not isinstance(op_key, str) or op_key not in allowed:
        names = "、".join(OPERATORS[k].label for k in allowed)
        raise at.error(
            f"「{field_label(key)}」に「{_short(op_key)}」という条件は使えません。使える条件: {names}",
            "unknown or inapplicable operator",
        )
    op = OPERATORS[op_key]
    out: dict[str, Any] = {"field": key, "op": op_key}
    value = _check_value(f, op, node.get("value"), at)
    if op.value != "none":
        out["value"] = value
    window = _check_window(f, node.get("window"), at)
    if window:
        out["window"] = window
    return out


def validate(rule: Any) -> dict[str, Any]:
    """Check a rule and return its normalised copy.

    Parameters
    ----------
    rule : dict
        The JSON rule (see the module docstring).

    Returns
    -------
    dict
        The same rule with values normalised (dates as ``YYYY-MM-DD``,
        whole numbers as ints, duplicates removed from lists, text stripped).

    Raises
    ------
    InputError
        With a Japanese message naming the condition (「条件2-1：…」) for
        unknown fields or operators, wrong value types, out-of-range values,
        control characters, too deep nesting or too many conditions.
    """
    counter = [0]

    def node(x: Any, path: tuple[int, ...], depth: int) -> dict[str, Any]:
        at = _Where(path)
        if not isinstance(x, dict) or not x:
            raise at.error('条件の形式が正しくありません。{"all": [...]}・{"any": [...]}・{"not": ...}・{"field", "op", "value"} のいずれかで指定してください。', "not a dict")
        if "field" in x or "op" in x:
            counter[0] += 1
            if counter[0] > MAX_CONDITIONS:
                raise InputError(f"条件は{MAX_CONDITIONS}個までにしてください。", "too many conditions")
            return _check_condition(x, at)
        if len(x) != 1:
            raise at.error('グループは {"all": [...]}・{"any": [...]}・{"not": ...} のどれか1つで指定してください。', "bad group keys")
        (key, inner), = x.items()
        if key not in ("all", "any", "not"):
            raise at.error(f"「{_short(key)}」という指定はありません（all / any / not / field が使えます）。", "unknown group key")
        if depth >= MAX_DEPTH:
            raise at.error(f"グループや「当てはまらない」の入れ子は{MAX_DEPTH}段までにしてください。", "too deep")
        if key == "not":
            return {"not": node(inner, path, depth + 1)}
        if not isinstance(inner, (list, tuple)):
            raise at.error("グループの中身は条件のリストで指定してください。", "group body not a list")
        return {key: [node(child, path + (i,), depth + 1) for i, child in enumerate(inner)]}

    return node(rule, (), 0)


def check(rule: Any) -> str | None:
    """The Japanese reason a rule is invalid, or None (for live previews)."""
    try:
        validate(rule)
    except InputError as exc:
        return exc.message
    return None


def load_rule(text: str | bytes) -> dict[str, Any]:
    """Parse and validate a rule from JSON text (saved segments, files, the command line)."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        raise InputError("セグメントの条件をJSONとして読めません。ファイルの内容を確認してください。", "invalid JSON") from None
    return validate(data)


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
        from crm_core.analytics.cycles import _cycles_sql

        sql = _cycles_sql(level)
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
        "count(*) FILTER (WHERE cm.email_opt_in IS TRUE AND coalesce(trim(cm.email), '') <> ''), "
        "count(*) FILTER (WHERE cm.has_line IS TRUE), (SELECT max(as_of) FROM customer_model) "
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
        where = f"({where}) AND cm.email_opt_in IS TRUE AND coalesce(trim(cm.email), '') <> ''"
    sql = (
        "SELECT " + _select(EXPORT_COLUMNS) + " FROM customer_model AS cm WHERE " + where  # noqa: S608 - allowlisted
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
    return df.rename(columns=labels(EXPORT_COLUMNS))


def export_csv(store: Store, rule: Any, path: str | Path, encoding: str = "utf-8-sig", opted_in_only: bool = False) -> dict[str, Any]:
    """Write the segment as CSV for Excel / R-Mail (formulas neutralised, FACTS.md §2).

    Returns
    -------
    dict
        ``rows`` written and ``unencodable``: characters cp932 could not carry
        (written as ``?``), empty for UTF-8.
    """
    from crm_core.export import ENCODINGS, cp932_unencodable, to_csv_bytes

    if encoding not in ENCODINGS:
        raise InputError("文字コードは utf-8-sig（UTF-8 BOM付き）か cp932（Shift_JIS）を選んでください。", f"encoding={encoding!r}")
    df = export_frame(store, rule, opted_in_only)
    bad = sorted(cp932_unencodable(df)) if encoding == "cp932" else []
    Path(path).write_bytes(to_csv_bytes(df, encoding))
    return {"rows": len(df), "unencodable": bad}


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


# ---------------------------------------------------------------------------
# Presets (FACTS.md §7)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A ready-made segment that opens as an editable rule."""

    key: str
    name: str
    why: str
    rule: dict[str, Any] = field(default_factory=dict)


PRESETS: tuple[Preset, ...] = (
    Preset("dormant_90", "休眠（90日以上購入なし）", "3か月購入のない顧客。掘り起こしクーポン（15%前後）や新商品のお知らせに。",
           {"all": [{"field": "recency_days", "op": "gte", "value": 90}]}),
    Preset("dormant_180", "休眠（180日以上購入なし）", "半年購入のない長期休眠顧客。アンケートやリニューアル情報で再訪のきっかけを。",
           {"all": [{"field": "recency_days", "op": "gte", "value": 180}]}),
    Preset("vip_top", "優良顧客（直近12か月の購入金額 上位20%）", "年間購入額の上位10〜20%。先行案内や限定のご案内に（上位10%にするには値を10に）。",
           {"all": [{"field": "revenue_12m", "op": "top_pct", "value": 20},
                    {"field": "revenue_12m", "op": "gte", "value": 1}]}),
    Preset("high_aov", "高単価（平均購入単価がショップ平均の2倍以上）", "客単価の高い顧客。特別感のある案内（「〇〇様だけにご案内」）に。",
           {"all": [{"field": "aov", "op": "gte_avg_times", "value": 2}]}),
    Preset("f2_pending", "初回購入者 F2未転換（購入1回・30〜60日前）", "1回目の購入から30〜60日。2回目の購入（F2転換）を後押しするタイミング。",
           {"all": [{"field": "orders", "op": "eq", "value": 1},
                    {"field": "recency_days", "op": "between", "value": [30, 60]}]}),
    Preset("birthday", "誕生月", "今月が誕生月の顧客。バースデークーポンに。",
           {"all": [{"field": "birthday_month", "op": "this_month"}]}),
    Preset("reorder", "そろそろ買い替え（購入周期から）", "商品ごとの再購入周期から、今後14日以内に買い替え時期を迎える顧客。",
           {"all": [{"field": "reorder_due", "op": "due_within", "value": 14}]}),
    Preset("rank_up", "ランクアップ間近（あと5,000円以内／あと1回）",
           "次の会員ランクまであと少しの顧客（金額で決まるランクはあと5,000円以内、回数で決まるランクはあと1回）。"
           "「あと〇〇円でゴールド」のご案内に。",
           {"all": [{"any": [{"field": "gap_to_next_rank", "op": "between", "value": [1, 5000]},
                             {"field": "orders_to_next_rank", "op": "eq", "value": 1}]},
                    {"field": "recency_days", "op": "lte", "value": 365}]}),
    Preset("churn_risk", "離反予備軍（離反リスク高・購入2回以上）", "これまで複数回購入したのに、離反の可能性が高まっている顧客。",
           {"all": [{"field": "churn_risk", "op": "eq", "value": "高"},
                    {"any": [{"field": "orders", "op": "gte", "value": 2},
                             {"field": "revenue", "op": "gte_avg_times", "value": 1}]}]}),
    Preset("sale_only", "セール時のみ購入", "スーパーSALE・お買い物マラソンでしか買わない顧客。セール前の予告に。",
           {"all": [{"field": "sale_only_buyer", "op": "is_true"}]}),
    Preset("sub_active", "定期継続中", "定期購入を続けている顧客。継続特典やクロスセルに。",
           {"all": [{"field": "subscription_status", "op": "eq", "value": "継続中"}]}),
    Preset("sub_cancelled", "定期解約", "定期購入をやめた顧客。再開のご案内に。",
           {"all": [{"field": "subscription_status", "op": "eq", "value": "解約"}]}),
)
PRESETS_BY_KEY = {p.key: p for p in PRESETS}


def preset_rule(key: str) -> dict[str, Any]:
    """A fresh copy of a preset's rule (to edit)."""
    if key not in PRESETS_BY_KEY:
        raise InputError(f"「{_short(key)}」というプリセットはありません。", "unknown preset")
    return json.loads(json.dumps(PRESETS_BY_KEY[key].rule))


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def read_rule_file(path: str | Path) -> dict[str, Any]:
    """A rule from a JSON file (a bare rule, or a saved segment with a ``rule`` key)."""
    p = Path(path)
    try:
        if p.stat().st_size > 1_000_000:
            raise InputError("条件ファイルが大きすぎます（1MBまで）。", "rule file too large")
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"条件ファイル「{p.name}」が見つかりません。", "rule file missing") from None
    except (OSError, UnicodeDecodeError):
        raise InputError(f"条件ファイル「{p.name}」を読めません（UTF-8のJSONで保存してください）。", "rule file unreadable") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise InputError(f"条件ファイル「{p.name}」をJSONとして読めません。", "invalid JSON") from None
    if isinstance(data, dict) and set(data) >= {"rule"} and not (set(data) & {"all", "any", "not", "field"}):
        data = data["rule"]
    return validate(data)
