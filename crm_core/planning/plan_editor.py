"""The plan editor's table (Japanese columns) to and from planned sends, warnings, and the audiences offered."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from crm_core.db import Store
from crm_core.events import calendar as cal
from crm_core.planning.planner import (
    CHANNELS,
    PHASE_LABELS,
    check_channel,
    in_recommended_slot,
    named_segment,
    saved_segment,
    segment_json,
    slots_for,
)

# --------------------------------------------------------------------------
# The page's editable table of sends
# --------------------------------------------------------------------------

EDITOR_COLUMNS = ("配信", "日付", "時刻", "チャネル", "テンプレート", "クーポン", "phase", "send_id", "exclude_conflicts")
"""The page's editable send table; the last three columns are kept hidden and carried through."""


def to_editor(sends: pd.DataFrame) -> pd.DataFrame:
    """Sends (``label, send_at, channel, template, coupon, phase`` and, when stored, ``send_id,
    exclude_conflicts``) as the page's editable table (:data:`EDITOR_COLUMNS`; ``日付`` a date,
    ``時刻`` a time, ``チャネル`` the Japanese label)."""
    if sends.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in EDITOR_COLUMNS})
    at = pd.to_datetime(sends.send_at)
    n = len(sends)
    return pd.DataFrame({
        "配信": sends.label.astype(str).to_numpy(),
        "日付": [t.date() for t in at],
        "時刻": [t.time() for t in at],
        "チャネル": sends.channel.map(CHANNELS).to_numpy(),
        "テンプレート": sends.template.astype(str).to_numpy(),
        "クーポン": sends.coupon.fillna("").astype(str).to_numpy(),
        "phase": sends.phase.astype(str).to_numpy(),
        "send_id": sends.send_id.astype(str).to_numpy() if "send_id" in sends else [None] * n,
        "exclude_conflicts": sends.exclude_conflicts.astype(bool).to_numpy() if "exclude_conflicts" in sends else [False] * n,
    }, columns=list(EDITOR_COLUMNS))


def _blank(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and pd.isna(value)) or value == ""


def from_editor(table: pd.DataFrame, segment: Any = None) -> pd.DataFrame:
    """The page's edited table back as sends (``phase, label, send_at, channel, template, coupon,
    segment, send_id, exclude_conflicts``).

    Rows without a date are dropped; a row without a time gets 12:00.  Raises
    an :class:`InputError` for an unknown channel.
    """
    by_label = {v: k for k, v in CHANNELS.items()}
    rows = []
    for r in table.to_dict(orient="records"):
        day = r.get("日付")
        if _blank(day):
            continue
        day = pd.Timestamp(day).date()
        t = r.get("時刻")
        if _blank(t):
            t = dt.time(12, 0)
        elif isinstance(t, str):
            t = dt.time.fromisoformat(t)
        channel = by_label.get(str(r.get("チャネル") or ""), str(r.get("チャネル") or ""))
        phase = r.get("phase")
        phase = str(phase) if isinstance(phase, str) and phase in PHASE_LABELS else "custom"
        rows.append({"phase": phase, "label": str(r.get("配信") or PHASE_LABELS[phase]), "send_at": dt.datetime.combine(day, t),
                     "channel": check_channel(channel), "template": str(r.get("テンプレート") or ""),
                     "coupon": str(r.get("クーポン") or ""), "segment": segment_json(segment),
                     "send_id": None if _blank(r.get("send_id")) else str(r["send_id"]),
                     "exclude_conflicts": False if _blank(r.get("exclude_conflicts")) else bool(r["exclude_conflicts"])})
    return pd.DataFrame(rows, columns=["phase", "label", "send_at", "channel", "template", "coupon", "segment", "send_id",
                                       "exclude_conflicts"])


def send_warnings(sends: pd.DataFrame, now: dt.datetime | None = None) -> list[str]:
    """Japanese notes for sends outside the recommended slots or in the past."""
    out = []
    for s in sends.itertuples(index=False):
        when = pd.Timestamp(s.send_at).to_pydatetime()
        if now is not None and when < now:
            out.append(f"「{s.label}」（{cal.format_datetime(when)}）は過去の日時です。")
        elif not in_recommended_slot(when) and getattr(s, "phase", "") != "start":  # 開始 goes out when the sale opens
            slots = "、".join(f"{a:%H:%M}〜{b:%H:%M}" for a, b in slots_for(when.date()))
            out.append(f"「{s.label}」（{cal.format_datetime(when)}）は推奨の時間帯（{slots}）の外です。")
    return out


def segment_choices(store: Store | None = None) -> list[tuple[str, str | None]]:
    """Audiences the page offers: everyone reachable, the saved segments, then the segment builder's presets.

    Returns ``(label, segment JSON or None)`` pairs.
    """
    from crm_core.audience import library as segment_library
    from crm_core.audience import segments

    out: list[tuple[str, str | None]] = [("全員（チャネルで届くお客様すべて）", None)]
    if store is not None:
        for seg in segment_library.list_segments(store):
            out.append((f"保存済み: {seg['name']}", segment_json(saved_segment(seg["segment_id"], seg["name"]))))
    for p in segments.PRESETS:
        out.append((f"プリセット: {p.name}", segment_json(named_segment(p.name, p.rule))))
    return out
