"""Segment references: which audience a message, plan or campaign means, and the one resolver.

A reference is one of

``all``
    every customer (no condition);
``preset:<key>``
    a ready-made segment of :mod:`crm_core.audience.presets`;
``saved:<segment_id>`` or ``{"segment_id": N, "name": "…"}``
    a saved segment of :mod:`crm_core.audience.library`, read at use time (its current rule);
    the name is remembered so a deleted segment can be named in the error;
``{"rule": RULE}`` or a bare rule
    an inline rule (JSON, validated).

Each object spelling may also come as its JSON text (as :func:`crm_core.planning.planner.segment_json`
stores it and the calendar's segment choices hold it).

:func:`resolve` turns any of these into a validated rule (``None`` for everyone) or raises
one :class:`~crm_core.errors.InputError` in Japanese, e.g. when a saved segment was deleted.
The message templates, the campaign planner and the results page all resolve through here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from crm_core.audience import library
from crm_core.audience.presets import PRESETS_BY_KEY
from crm_core.audience.rules import validate
from crm_core.db import Store
from crm_core.errors import InputError

__all__ = ["SegmentRef", "resolve"]

_CHOOSE_AGAIN = "配信対象（セグメント）を選び直してください。"


@dataclass(frozen=True)
class SegmentRef:
    """A parsed segment reference (see the module docstring)."""

    kind: str  # "all" | "preset" | "saved" | "rule"
    key: str | None = None
    segment_id: int | None = None
    name: str | None = None
    rule: dict[str, Any] | None = None

    @classmethod
    def parse(cls, value: Any) -> SegmentRef:
        """Read any spelling of a reference; an :class:`InputError` when it cannot be read."""
        if isinstance(value, SegmentRef):
            return value
        if value is None or value == "all" or value == "":
            return cls("all")
        if isinstance(value, str) and value.lstrip().startswith("{"):  # the stored spelling (planner.segment_json)
            try:
                value = json.loads(value)
            except ValueError:
                raise InputError(f"配信対象の指定「{value[:40]}」を読めません。{_CHOOSE_AGAIN}", "bad segment JSON") from None
        if isinstance(value, str):
            kind, _, ref = value.partition(":")
            if kind == "preset" and ref:
                return cls("preset", key=ref)
            if kind == "saved" and ref.strip().isdigit():
                return cls("saved", segment_id=int(ref))
            raise InputError(f"配信対象の指定「{value[:40]}」を読めません。{_CHOOSE_AGAIN}", f"bad segment reference {value!r}")
        if isinstance(value, dict):
            if "segment_id" in value:
                try:
                    return cls("saved", segment_id=int(value["segment_id"]), name=value.get("name") or None)
                except (TypeError, ValueError):
                    raise InputError(f"保存済みセグメントの指定を読めません。{_CHOOSE_AGAIN}", "bad segment_id") from None
            if isinstance(value.get("rule"), dict):
                return cls("rule", rule=value["rule"], name=value.get("name") or None)
            return cls("rule", rule=value)
        raise InputError(f"配信対象の指定を読めません。{_CHOOSE_AGAIN}", f"bad segment reference type {type(value).__name__}")

    @property
    def text(self) -> str:
        """The short spelling (``all``, ``preset:<key>``, ``saved:<id>``); inline rules have none."""
        if self.kind == "preset":
            return f"preset:{self.key}"
        if self.kind == "saved":
            return f"saved:{self.segment_id}"
        return "all" if self.kind == "all" else ""


def resolve(store: Store | None, value: Any) -> dict[str, Any] | None:
    """The validated rule a reference stands for (``None``: every customer).

    Raises
    ------
    InputError
        In Japanese: a saved segment that was deleted (named when the reference remembers
        its name), an unknown preset, an unreadable reference or an invalid inline rule.
    """
    ref = SegmentRef.parse(value)
    if ref.kind == "all":
        return None
    if ref.kind == "preset":
        preset = PRESETS_BY_KEY.get(ref.key or "")
        if preset is None:
            raise InputError(f"おすすめのセグメント「{(ref.key or '')[:40]}」はありません。{_CHOOSE_AGAIN}", f"unknown preset {ref.key!r}")
        return validate(preset.rule)
    if ref.kind == "saved":
        if store is None:
            raise InputError("保存済みセグメントを読むにはデータベースが必要です。", "saved segment without store")
        try:
            return library.get_segment(store, int(ref.segment_id))["rule"]
        except InputError:
            named = f"「{ref.name}」" if ref.name else f"（番号 {ref.segment_id}）"
            raise InputError(
                f"保存済みセグメント{named}が見つかりません（削除されています）。{_CHOOSE_AGAIN}", f"saved segment {ref.segment_id} deleted"
            ) from None
    return validate(ref.rule)
