"""Pure helpers the segment page uses to edit a rule tree (no Streamlit here).

The page keeps the rule as JSON in session state.  A node is addressed by a
*path*: the indexes of group children from the root group, e.g. ``(1, 0)``
is the first child of the second child.  A ``{"not": X}`` wrapper belongs to
the node it wraps: the path of ``X``'s children goes through it.

Every function returns a new rule and leaves its input unchanged.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from crm_core import clock
from crm_core.audience.fields import ELEMENT, FIELDS, OPERATORS, WINDOW_TYPES, operators_for

Path = tuple[int, ...]

DEFAULT_FIELD = "recency_days"
DEFAULT_VALUES: dict[str, Any] = {
    "recency_days": 90, "orders": 2, "revenue": 10000, "aov": 5000, "tenure_days": 365,
    "avg_days_between_orders": 60, "orders_12m": 2, "revenue_12m": 10000, "orders_in_window": 2,
    "spend_in_window": 10000, "subscription_deliveries": 3, "gap_to_next_rank": 5000, "orders_to_next_rank": 1, "r_score": 4,
    "f_score": 4, "m_score": 4, "churn_probability_90d": 0.66, "p_alive": 0.5, "expected_orders_365d": 1,
    "predicted_clv_365d": 10000, "age": 30,
}
DEFAULT_DAYS = {"within_last_days": 30, "before_last_days": 90, "within_next_days": 14, "due_within": 14,
                "overdue_within": 30}


def empty_rule() -> dict[str, Any]:
    """A rule with no conditions (every customer)."""
    return {"all": []}


def unwrap(node: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(inner node, negated) of a node that may be wrapped in ``{"not": ...}`` (double NOTs cancel)."""
    negated = False
    while isinstance(node, dict) and set(node) == {"not"}:
        node, negated = node["not"], not negated
    return node, negated


def wrap(node: dict[str, Any], negated: bool) -> dict[str, Any]:
    """``node`` or ``{"not": node}``."""
    return {"not": node} if negated else node


def mode(group: dict[str, Any]) -> str | None:
    """``all`` or ``any`` for a group, None for a condition."""
    return "all" if "all" in group else "any" if "any" in group else None


def as_root(rule: Any) -> dict[str, Any]:
    """The rule as an un-negated root group (a bare condition or NOT gets wrapped in ``all``)."""
    if not isinstance(rule, dict) or not rule:
        return empty_rule()
    rule = copy.deepcopy(rule)
    if mode(rule) is None:
        return {"all": [rule]}
    return rule


def get(rule: dict[str, Any], path: Path) -> dict[str, Any]:
    """The node at ``path`` (with its NOT wrapper, if any)."""
    node = rule
    for i in path:
        inner, _ = unwrap(node)
        node = inner[mode(inner)][i]
    return node


def replace(rule: dict[str, Any], path: Path, new: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of ``rule`` with the node at ``path`` replaced (or removed when ``new`` is None)."""
    if not path:
        return copy.deepcopy(new) if new is not None else empty_rule()
    out = copy.deepcopy(rule)
    parent = get(out, path[:-1])
    inner, _ = unwrap(parent)
    children = inner[mode(inner)]
    if new is None:
        del children[path[-1]]
    else:
        children[path[-1]] = copy.deepcopy(new)
    return out


def remove(rule: dict[str, Any], path: Path) -> dict[str, Any]:
    """A copy without the node at ``path``."""
    return replace(rule, path, None)


def append(rule: dict[str, Any], path: Path, node: dict[str, Any]) -> dict[str, Any]:
    """A copy with ``node`` added at the end of the group at ``path``."""
    out = copy.deepcopy(rule)
    inner, _ = unwrap(get(out, path))
    inner[mode(inner)].append(copy.deepcopy(node))
    return out


def set_negated(rule: dict[str, Any], path: Path, negated: bool) -> dict[str, Any]:
    """A copy where the node at ``path`` is (or is not) wrapped in NOT."""
    inner, _ = unwrap(get(rule, path))
    return replace(rule, path, wrap(inner, negated))


def set_mode(rule: dict[str, Any], path: Path, new_mode: str) -> dict[str, Any]:
    """A copy where the group at ``path`` combines its parts with ``all`` or ``any``."""
    node = get(rule, path)
    inner, negated = unwrap(node)
    if mode(inner) == new_mode:
        return copy.deepcopy(rule)
    return replace(rule, path, wrap({new_mode: inner[mode(inner)]}, negated))


def depth(rule: dict[str, Any]) -> int:
    """Levels of groups (the root group is 1)."""
    inner, _ = unwrap(rule)
    m = mode(inner)
    if m is None:
        return 0
    return 1 + max((depth(c) for c in inner[m]), default=0)


def default_value(field_key: str, op_key: str, as_of: dt.date | None = None, choices: list[Any] | None = None) -> Any:
    """A sensible starting value for a field and operator (the page then lets the user change it)."""
    f = FIELDS[field_key]
    op = OPERATORS[op_key]
    kind = ELEMENT[f.type]
    day = (as_of or clock.today()).isoformat()
    if op.value == "none":
        return None
    if op.value == "days":
        return DEFAULT_DAYS.get(op_key, 30)
    if op.value == "percent":
        return 20
    if op.value == "factor":
        return 2
    if op.value in ("text", "optional_text"):
        return "" if op.value == "text" else None
    if kind == "date":
        scalar: Any = day
    elif f.type == "month":
        scalar = (as_of or clock.today()).month
    elif kind in ("int", "number"):
        scalar = DEFAULT_VALUES.get(field_key, f.minimum if f.minimum is not None and f.minimum > 0 else 1)
    else:
        scalar = choices[0] if choices else ""
    if op.value == "list":
        return [] if kind == "str" else [scalar]
    if op.value == "pair":
        if kind == "date":
            start = (as_of or clock.today()) - dt.timedelta(days=30)
            return [start.isoformat(), day]
        if f.type == "month":
            return [scalar, min(12, scalar + 2)]
        hi = scalar * 2 if not f.maximum or scalar * 2 <= f.maximum else f.maximum
        return [scalar, hi]
    return scalar


PREFERRED_OPS = ("within_last_days", "this_month", "gte", "is_true", "contains")
"""The operator a new condition starts with, if the field has it (else the field's first)."""


def new_condition(field_key: str = DEFAULT_FIELD, op_key: str | None = None, as_of: dt.date | None = None,
                  choices: list[Any] | None = None) -> dict[str, Any]:
    """A fresh condition for a field (its first operator unless ``op_key`` is given)."""
    ops = operators_for(field_key)
    if op_key not in ops:
        op_key = next((o for o in PREFERRED_OPS if o in ops and FIELDS[field_key].type != "choice"), ops[0])
    cond: dict[str, Any] = {"field": field_key, "op": op_key}
    value = default_value(field_key, op_key, as_of, choices)
    if OPERATORS[op_key].value != "none":
        cond["value"] = value
    return cond


def change_field(cond: dict[str, Any], field_key: str, as_of: dt.date | None = None,
                 choices: list[Any] | None = None) -> dict[str, Any]:
    """The condition after the user picks another field: keep the operator if it still applies."""
    if cond.get("field") == field_key:
        return copy.deepcopy(cond)
    new = new_condition(field_key, cond.get("op"), as_of, choices)
    if "window" in cond and FIELDS[field_key].type in WINDOW_TYPES:
        new["window"] = copy.deepcopy(cond["window"])
    return new


def change_op(cond: dict[str, Any], op_key: str, as_of: dt.date | None = None,
              choices: list[Any] | None = None) -> dict[str, Any]:
    """The condition after the user picks another operator: keep a value of the same shape."""
    if cond.get("op") == op_key:
        return copy.deepcopy(cond)
    old_shape = OPERATORS[cond["op"]].value if cond.get("op") in OPERATORS else None
    new = {"field": cond["field"], "op": op_key}
    shape = OPERATORS[op_key].value
    if shape != "none":
        value = cond.get("value")
        if shape == old_shape:
            new["value"] = copy.deepcopy(value)
        elif old_shape == "scalar" and shape == "list" and value not in (None, ""):
            new["value"] = [value]
        elif old_shape == "list" and shape == "scalar" and isinstance(value, list) and value:
            new["value"] = value[0]
        else:
            new["value"] = default_value(cond["field"], op_key, as_of, choices)
    if "window" in cond:
        new["window"] = copy.deepcopy(cond["window"])
    return new
