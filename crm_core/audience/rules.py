"""Segment rules as JSON data: limits, validation with Japanese messages that say what to fix, reading rule files."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import unicodedata
from pathlib import Path
from typing import Any

from crm_core.audience.fields import (
    DAYS_RANGE,
    ELEMENT,
    FIELDS,
    OPERATORS,
    WINDOW_TYPES,
    Field,
    Operator,
    field_label,
    operator_choices,
    operators_for,
    resolve_operator,
)
from crm_core.errors import InputError

MAX_DEPTH = 8
"""Most nested groups and NOTs (the root group is level 1)."""
TOO_DEEP_MESSAGE = f"条件の入れ子が深すぎます。グループや「当てはまらない」の入れ子は{MAX_DEPTH}段までにしてください。"
MAX_CONDITIONS = 100
MAX_TEXT = 200
MAX_LIST = 1000
CYCLE_MIN_INTERVALS = 3
CYCLE_PERSONAL_MIN = 2
"""Repurchase-cycle settings (the defaults of :mod:`crm_core.analytics.cycles`)."""


_COND_KEYS = frozenset({"field", "op", "value", "window"})
_WINDOW_KEYS = frozenset({"days", "from", "to"})


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
    given = node.get("op")
    op_key = resolve_operator(given)
    allowed = operators_for(key)
    if op_key not in allowed:
        raise at.error(
            f"「{field_label(key)}」に「{_short(given)}」という条件は使えません。"
            f"使える条件: {operator_choices(allowed)}（括弧内は \"op\" に書けるキーと記号）",
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
            raise at.error(TOO_DEEP_MESSAGE, "too deep")
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
    except RecursionError:
        raise InputError(TOO_DEEP_MESSAGE, "JSON nested too deeply") from None
    except (ValueError, TypeError):
        raise InputError("セグメントの条件をJSONとして読めません。ファイルの内容を確認してください。", "invalid JSON") from None
    return validate(data)


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
    except RecursionError:
        raise InputError(f"条件ファイル「{p.name}」の{TOO_DEEP_MESSAGE}", "JSON nested too deeply") from None
    except ValueError:
        raise InputError(f"条件ファイル「{p.name}」をJSONとして読めません。", "invalid JSON") from None
    if isinstance(data, dict) and set(data) >= {"rule"} and not (set(data) & {"all", "any", "not", "field"}):
        data = data["rule"]
    return validate(data)
