"""Picking customers for the message preview and for unique coupon codes: basic filters, presets, saved segments."""

from __future__ import annotations

from typing import Any

from crm_core.db import Store
from crm_core.errors import InputError

# -- picking customers for the preview ---------------------------------------------------
# The one place the message page couples to segments (issue 4, crm_core.audience.segments):
# a choice is "all", a few channel filters, "preset:<key>" or "saved:<segment_id>".
_BASIC_RULES: dict[str, tuple[str, dict[str, Any]]] = {
    "all": ("すべてのお客様", {"all": []}),
    "line": ("LINE連携ありのお客様", {"all": [{"field": "has_line", "op": "is_true"}]}),
    "email": ("メール配信に同意したお客様", {"all": [{"field": "email_opt_in", "op": "is_true"}]}),
}
PREVIEW_FILTERS: dict[str, str] = {k: v[0] for k, v in _BASIC_RULES.items()}
"""Choices that exist without any saved segment (see :func:`segment_choices` for all)."""


def segment_choices(store: Store | None) -> dict[str, str]:
    """Segments to preview or target: basic filters, the segment presets and saved segments, with Japanese names."""
    from crm_core.audience import library as segment_library
    from crm_core.audience import segments

    out = dict(PREVIEW_FILTERS)
    out.update({f"preset:{p.key}": p.name for p in segments.PRESETS})
    if store is not None:
        out.update({f"saved:{s['segment_id']}": f"保存済み: {s['name']}" for s in segment_library.list_segments(store)})
    return out


FIT_PREFIX = "fit:"
"""``fit:<template key>``: the customers a template is written for (its ``fit`` conditions)."""


def fit_choice(template: Any) -> tuple[str, str] | None:
    """``(choice, Japanese name)`` of the customers ``template`` is written for; None when it declares nobody."""
    if not getattr(template, "fit", None):
        return None
    label = template.fit_label or "このテンプレートが想定するお客様"
    return FIT_PREFIX + template.key, f"このテンプレートの対象: {label}"


def fit_rule(fit: list[dict[str, Any]]) -> dict[str, Any]:
    """A template's ``fit`` conditions as a segment rule (the same fields and operators; ``is_set`` is 登録あり)."""
    conds = []
    for cond in fit:
        rule_cond = {"field": cond.get("field"), "op": {"is_set": "is_not_empty"}.get(cond.get("op"), cond.get("op"))}
        if "value" in cond:
            rule_cond["value"] = cond["value"]
        conds.append(rule_cond)
    return {"all": conds}


def segment_rule(store: Store, choice: str) -> dict[str, Any]:
    """The segment rule (JSON) of a choice from :func:`segment_choices` (a :func:`fit_choice` resolves in
    :func:`crm_core.messaging.templates.preview_rule`, where templates are read).

    Presets and saved segments resolve through :func:`crm_core.audience.references.resolve`
    (a deleted saved segment is a Japanese :class:`InputError`, never "everyone").
    """
    from crm_core.audience import references

    if choice in _BASIC_RULES:
        return _BASIC_RULES[choice][1]
    kind = (choice or "").partition(":")[0]
    if kind not in ("preset", "saved"):
        raise InputError("プレビューするお客様（セグメント）を選び直してください。", f"unknown segment choice {choice!r}")
    return references.resolve(store, choice)


def preview_customers(store: Store, segment: str = "all", limit: int = 50,
                      rule: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Customers of a segment to step through in the preview: ``customer_id, customer_key, name, rank, orders``.

    Uses :func:`crm_core.audience.segments.sample` (highest lifetime revenue first);
    ``customer_key`` is the shop's own customer number (None when the export had
    none); an empty list when there is no customer model yet.  ``rule``, when
    given, is the segment's rule already resolved (a template's own audience).
    """
    from crm_core.audience import segments

    rule = segment_rule(store, segment) if rule is None else rule
    if not store.has_table("customer_model"):
        return []
    df = segments.sample(store, rule, limit=limit, columns=("customer_id", "name", "rank", "orders"))
    keys = dict(store.fetchall(
        "SELECT customer_id, customer_key FROM customers WHERE customer_key IS NOT NULL AND customer_id IN (SELECT unnest(?))",
        [list(df["customer_id"])],
    )) if len(df) else {}
    return [
        {**{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}, "customer_key": keys.get(row["customer_id"])}
        for row in df.astype(object).to_dict("records")
    ]


def segment_size(store: Store, segment: str = "all") -> int:
    """How many customers a segment holds (:func:`segment_customer_ids` without fetching the ids)."""
    from crm_core.audience import segments

    rule = segment_rule(store, segment)
    if not store.has_table("customer_model"):
        return 0
    return segments.count(store, rule)


def customer_label(person: dict[str, Any]) -> str:
    """How a screen names a customer: the shop's own number when the export had one, else rank and orders.

    Never the console's internal id (a 32-digit hash that means nothing to a marketer).
    ``person``: ``name``, ``customer_key`` and optionally ``rank``, ``orders``.
    """
    name = person.get("name") or "（氏名なし）"
    if person.get("customer_key"):
        return f"{name}（顧客番号 {person['customer_key']}）"
    facts = ["顧客番号なし"]
    if person.get("rank"):
        facts.append(str(person["rank"]))
    if person.get("orders") is not None and person.get("orders") == person.get("orders"):
        facts.append(f"{int(person['orders']):,}回購入")
    return f"{name}（{'・'.join(facts)}）"


def customer_labels(store: Store, customer_ids: list[str]) -> dict[str, str]:
    """:func:`customer_label` for each id (a few at a time: previews and samples)."""
    if not customer_ids or not store.has_table("customer_model"):
        return {c: customer_label({}) for c in customer_ids}
    rows = store.fetchall(
        "SELECT m.customer_id, m.name, c.customer_key, m.rank, m.orders FROM customer_model m "
        "LEFT JOIN customers c ON c.customer_id = m.customer_id WHERE m.customer_id IN (SELECT unnest(?))",
        [list(customer_ids)],
    ) if store.has_table("customers") else store.fetchall(
        "SELECT customer_id, name, NULL, rank, orders FROM customer_model WHERE customer_id IN (SELECT unnest(?))",
        [list(customer_ids)],
    )
    found = {r[0]: customer_label(dict(zip(("name", "customer_key", "rank", "orders"), r[1:], strict=True))) for r in rows}
    return {c: found.get(c, customer_label({})) for c in customer_ids}


def segment_customer_ids(store: Store, segment: str = "all") -> list[str]:
    """Every customer id of a segment (for issuing unique coupon codes)."""
    from crm_core.audience import segments

    rule = segment_rule(store, segment)
    if not store.has_table("customer_model"):
        return []
    df = segments.sample(store, rule, limit=10**9, columns=("customer_id",))
    return sorted(str(c) for c in df["customer_id"])
