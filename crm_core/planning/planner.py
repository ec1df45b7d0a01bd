"""Campaign plans for sale events: phased sends, recipient counts and frequency conflicts.

A campaign plan is segment + template(s) + coupon + channel + send times.  For
an event (see :mod:`crm_core.events.calendar`) :func:`propose_phases` proposes the
sends the CRM practice in FACTS.md §7 describes, each in a recommended time
slot (:data:`WEEKDAY_SLOTS`, :data:`DAY_OFF_SLOTS`; public holidays count as
days off):

=============  ==========================================  =========================
phase          day                                         time
=============  ==========================================  =========================
予告           14 days before the start day                evening slot*
前日クーポン   the day before the start day                evening slot*
開始           the start day                               at the start, or the day's next slot
                                                           (never before the start)
最終日         the last full day (an end before 06:00       evening slot*
               belongs to the previous day)
LINE友だち先行 7–14 days before the start day (one click)  evening slot*
=============  ==========================================  =========================

\\* weekday 18:00 (18:00–19:00), day off 14:00 (14:00–16:00).

Plans live in ``campaign_plans`` and their sends in ``planned_sends``
(created by a migration in :mod:`crm_core.db`).  Recipient counts come from the customer
model through :func:`audience_sql` — the one place that knows how a segment
becomes customers, so that the segment builder (:mod:`crm_core.audience.segments`) can
take over there.  :func:`send_counts` walks all planned sends in time order and
finds customers who would get more than N messages in any 7 days; a send
marked ``exclude_conflicts`` leaves those customers out.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from crm_core import clock
from crm_core.audience import reach
from crm_core.audience.reach import REACH_FIXES as REACH_FIXES  # re-exported: pages read them from the planner
from crm_core.audience.reach import ReachNote as ReachNote
from crm_core.audience.reach import explain_reach as explain_reach
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.events import calendar as cal

CHANNELS = reach.labels()
"""``{key: short label}`` of the channel table (:data:`crm_core.audience.reach.CHANNELS`)."""
CHANNEL_NAMES = {k: c.name for k, c in reach.CHANNELS.items()}
TEMPLATE_CHANNEL = {k: c.template_channel for k, c in reach.CHANNELS.items()}
"""The channel of :mod:`crm_core.messaging.templates` whose text a send uses."""

PHASE_LABELS = {
    "announce": "予告",
    "coupon_eve": "前日クーポン",
    "start": "開始",
    "last_day": "最終日",
    "line_presale": "LINE友だち先行",
    "custom": "追加配信",
}
PHASE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "announce": ("セール予告",),
    "coupon_eve": ("前日クーポン",),
    "start": ("セール開始",),
    "last_day": ("最終日",),
    "line_presale": ("LINE友だち先行", "VIP先行案内"),
    "custom": (),
}
"""Scenario names a phase's template is looked up by, in order of preference (the scenarios
of :mod:`crm_core.messaging.templates`; the first name is proposed when no template matches)."""

WEEKDAY_SLOTS = ((dt.time(12, 0), dt.time(13, 0)), (dt.time(18, 0), dt.time(19, 0)))
DAY_OFF_SLOTS = ((dt.time(14, 0), dt.time(16, 0)),)
ANNOUNCE_DAYS = 14
PRESALE_DAYS = (7, 14)
MAX_PER_WEEK_SETTING = "calendar_max_messages_7d"
DEFAULT_MAX_PER_WEEK = 2
WINDOW = dt.timedelta(days=7)

SEND_COLUMNS = ("send_id", "plan_id", "phase", "label", "send_at", "channel", "template", "segment", "coupon",
                "exclude_conflicts")


# --------------------------------------------------------------------------
# Send times
# --------------------------------------------------------------------------


def slots_for(day: dt.date) -> tuple[tuple[dt.time, dt.time], ...]:
    """The recommended send slots of a day (weekday lunch / evening, or the day-off afternoon)."""
    return DAY_OFF_SLOTS if cal.is_day_off(day) else WEEKDAY_SLOTS


def in_recommended_slot(when: dt.datetime | pd.Timestamp) -> bool:
    """True when ``when`` lies inside one of its day's slots (ends included)."""
    when = pd.Timestamp(when).to_pydatetime()
    return any(a <= when.time() <= b for a, b in slots_for(when.date()))


def evening_slot(day: dt.date) -> dt.datetime:
    """The evening slot's start on a weekday (18:00), the afternoon slot's on a day off (14:00)."""
    return dt.datetime.combine(day, slots_for(day)[-1][0])


def nearest_slot(day: dt.date, near: dt.time) -> dt.datetime:
    """The slot start of ``day`` closest to the time ``near`` (ties: the earlier)."""
    minutes = near.hour * 60 + near.minute
    best = min((a for a, _ in slots_for(day)), key=lambda t: (abs(t.hour * 60 + t.minute - minutes), t))
    return dt.datetime.combine(day, best)


def start_send_time(starts_at: dt.datetime) -> dt.datetime:
    """When the 開始 message goes out: never before the event starts.

    At the start itself when it falls inside a recommended slot or after the
    day's last slot (スーパーSALE and お買い物マラソン start at 20:00, after the
    18:00–19:00 slot: the message goes out at 20:00, when the sale opens);
    otherwise at the next slot of the start day (an event opening at 10:00 on a
    weekday is announced at 12:00).
    """
    at = starts_at.replace(second=0, microsecond=0)
    if at < starts_at:  # a start such as 19:59:30 is announced at 20:00, not before
        at += dt.timedelta(minutes=1)
    day, t = at.date(), at.time()
    if any(a <= t <= b for a, b in slots_for(day)):
        return at
    later = [a for a, _ in slots_for(day) if a > t]
    return dt.datetime.combine(day, later[0]) if later else at


def last_full_day(ends_at: dt.datetime) -> dt.date:
    """The last day of an event for a "last day" message: an end before 06:00 belongs to the night before."""
    return (ends_at - dt.timedelta(hours=6)).date() if ends_at.hour < 6 else ends_at.date()


# --------------------------------------------------------------------------
# Templates (crm_core.messaging.templates when present)
# --------------------------------------------------------------------------


def template_for(phase: str, channel: str = "line", store: Store | None = None) -> str:
    """The template a phase proposes: the preset whose label or scenario names the phase's scenario.

    Falls back to the first scenario name of :data:`PHASE_TEMPLATES` when no
    template matches.
    """
    names = PHASE_TEMPLATES.get(phase, ())
    if not names:
        return ""
    from crm_core.messaging import templates as tpl

    available = tpl.list_templates(store)
    for name in names:
        for t in available:
            if name in (t.scenario, t.key):
                return t.key
        for t in available:
            if name in t.label:
                return t.key
    return names[0]


def template_options(store: Store | None = None) -> list[str]:
    """Template names the planner can propose (keys of the message templates when present)."""
    from crm_core.messaging import templates as tpl

    return [t.key for t in tpl.list_templates(store)]


def template_labels(store: Store | None = None) -> dict[str, str]:
    """Template key → Japanese label, for every template."""
    from crm_core.messaging import templates as tpl

    return {t.key: t.label for t in tpl.list_templates(store)}


def template_label(key: str, store: Store | None = None) -> str:
    """A template's Japanese label (the key itself when unknown)."""
    from crm_core.messaging import templates as tpl

    for t in tpl.list_templates(store):
        if t.key == key:
            return t.label
    return key


# --------------------------------------------------------------------------
# Phase proposals
# --------------------------------------------------------------------------


def _event_times(event: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    return pd.Timestamp(event["starts_at"]).to_pydatetime(), pd.Timestamp(event["ends_at"]).to_pydatetime()


def _send(phase: str, send_at: dt.datetime, channel: str, segment: Any, coupon: str, store: Store | None,
          now: dt.datetime | None, label: str | None = None) -> dict[str, Any]:
    return {
        "phase": phase,
        "label": label or PHASE_LABELS[phase],
        "send_at": send_at,
        "channel": channel,
        "template": template_for(phase, channel, store),
        "segment": segment_json(segment),
        "coupon": coupon or "",
        "in_slot": in_recommended_slot(send_at),
        "past": bool(now is not None and send_at < now),
    }


def propose_phases(event: Mapping[str, Any], channel: str = "line", segment: Any = None, coupon: str = "",
                   store: Store | None = None, now: dt.datetime | None = None) -> pd.DataFrame:
    """The sends to plan around an event (see the module table), each editable afterwards.

    Parameters
    ----------
    event : mapping
        An event row (``starts_at``, ``ends_at`` JST; see :func:`crm_core.events.calendar.list_events`).
    channel : str
        One of :data:`CHANNELS`.
    segment : dict, optional
        The audience rule (None: everyone reachable on the channel).
    coupon : str
        Coupon code or name, copied to every send.
    now : datetime, optional
        Sends before this moment are flagged ``past``.

    Returns
    -------
    DataFrame
        ``phase, label, send_at, channel, template, segment, coupon, in_slot, past``
        in time order.  予告, 前日クーポン and 開始 always; 最終日 when the
        event's last full day is after its start day.
    """
    check_channel(channel)
    starts_at, ends_at = _event_times(event)
    day0 = starts_at.date()
    rows = [
        _send("announce", evening_slot(day0 - dt.timedelta(days=ANNOUNCE_DAYS)), channel, segment, coupon, store, now),
        _send("coupon_eve", evening_slot(day0 - dt.timedelta(days=1)), channel, segment, coupon, store, now),
        _send("start", start_send_time(starts_at), channel, segment, coupon, store, now),
    ]
    last = last_full_day(ends_at)
    if last > day0:
        rows.append(_send("last_day", evening_slot(last), channel, segment, coupon, store, now))
    return pd.DataFrame(rows).sort_values("send_at", kind="stable").reset_index(drop=True)


def propose_line_presale(event: Mapping[str, Any], days_before: int = PRESALE_DAYS[0], segment: Any = None,
                         coupon: str = "", store: Store | None = None, now: dt.datetime | None = None) -> pd.DataFrame:
    """The LINE-friend pre-sale send for an event: ``days_before`` (7–14) days before its start day.

    Returns the same columns as :func:`propose_phases` (one row, channel ``line``).
    """
    if not PRESALE_DAYS[0] <= int(days_before) <= PRESALE_DAYS[1]:
        raise InputError("LINE友だち先行セールは本セールの7〜14日前で指定してください。", f"days_before={days_before}")
    starts_at, _ = _event_times(event)
    day = starts_at.date() - dt.timedelta(days=int(days_before))
    return pd.DataFrame([_send("line_presale", evening_slot(day), "line", segment, coupon, store, now)])


def check_channel(channel: str) -> str:
    """``channel`` when it is a key of the channel table, else a Japanese :class:`InputError`."""
    if channel not in reach.CHANNELS:
        raise InputError("配信チャネルは " + "・".join(CHANNELS.values()) + "から選んでください。", f"unknown channel {channel!r}")
    return channel


# --------------------------------------------------------------------------
# Segments (the one coupling point with crm_core.audience.segments)
# --------------------------------------------------------------------------

CHANNEL_REACH = {k: c.reach for k, c in reach.CHANNELS.items()}
"""Who a channel reaches in ``customer_model AS cm`` (the channel table, :mod:`crm_core.audience.reach`)."""

MAIL_LIST_REACH = reach.MAIL_LIST.reach
"""Who a mailing list (the segment builder's 「メールで届く」 and its CSV for R-Mail) reaches."""

def segment_json(segment: Any) -> str | None:
    """A send's audience as stored: JSON text, or None for "everyone reachable on the channel".

    The JSON is a segment rule of :mod:`crm_core.audience.segments` (``{"all": [...]}``),
    ``{"name": "...", "rule": {...}}`` (a named rule, e.g. a preset) or
    ``{"segment_id": N, "name": "..."}`` (a saved segment of
    :mod:`crm_core.audience.library`, followed when it is edited).
    """
    if segment is None or segment == "" or (isinstance(segment, float) and pd.isna(segment)):
        return None
    if isinstance(segment, str):
        try:
            segment = json.loads(segment)
        except json.JSONDecodeError:
            raise InputError("セグメントの条件を読めません。", "segment is not JSON") from None
    if not isinstance(segment, dict):
        raise InputError("セグメントの条件を読めません。", "segment is not an object")
    return json.dumps(segment, ensure_ascii=False, sort_keys=True)


def named_segment(name: str, rule: Mapping[str, Any]) -> dict[str, Any]:
    """A rule with the name it is shown under (e.g. a preset of the segment builder)."""
    return {"name": str(name), "rule": dict(rule)}


def _segment_obj(segment: Any) -> dict | None:
    text = segment_json(segment)
    return None if text is None else json.loads(text)


def saved_segment(segment_id: int, name: str) -> dict[str, Any]:
    """A reference to a saved segment (its current rule is used at counting time)."""
    return {"segment_id": int(segment_id), "name": str(name)}


def _rule_of(store: Store | None, obj: dict | None) -> dict | None:
    """The rule of a stored audience (None: everyone), through the one segment resolver."""
    from crm_core.audience import references

    return references.resolve(store, obj)


def audience_condition(store: Store, segment: Any, channel: str, prefix: str = "p") -> tuple[str, dict[str, Any]]:
    """A boolean SQL expression over ``customer_model AS cm``: "this customer is in the send's audience".

    The audience is the customers that match the segment (compiled by
    :func:`crm_core.audience.segments.compile_rule`, values bound as ``$<prefix>N``)
    and that the channel can reach (:data:`CHANNEL_REACH`).  This is the
    single place where the planner turns a segment into customers.
    """
    from crm_core.audience import segments

    check_channel(channel)
    rule = _rule_of(store, _segment_obj(segment))
    if rule is None:
        return f"({CHANNEL_REACH[channel]})", {}
    compiled = segments.compile_rule(store, rule, prefix=prefix)
    return f"({CHANNEL_REACH[channel]}) AND ({compiled.where})", compiled.params


def audience_sql(store: Store, segment: Any, channel: str) -> tuple[str, dict[str, Any]]:
    """SQL (with named parameters) selecting ``customer_id`` of a send's audience (see :func:`audience_condition`)."""
    cond, params = audience_condition(store, segment, channel)
    return f"SELECT cm.customer_id FROM customer_model AS cm WHERE {cond}", params  # noqa: S608 - fixed fragments, values bound


def model_ready(store: Store) -> bool:
    """True when the customer model table exists (recipient counts need it)."""
    return store.has_table("customer_model")


def recipients(store: Store, segment: Any, channel: str) -> int | None:
    """How many customers a send to ``segment`` on ``channel`` reaches (None without a customer model)."""
    if not model_ready(store):
        return None
    sql, params = audience_sql(store, segment, channel)
    return int(store.scalar(f"SELECT count(*) FROM ({sql})", params))  # noqa: S608 - built by audience_sql


def segment_text(segment: Any, channel: str | None = None, store: Store | None = None) -> str:
    """A short Japanese description of a send's audience (its name, or the rule's sentence)."""
    from crm_core.audience import segments

    obj = _segment_obj(segment)
    reach = f"{CHANNELS[channel]}で届くお客様" if channel in CHANNELS else "お客様"
    if obj is None:
        return f"全員（{reach}）"
    if "segment_id" in obj and store is not None:
        from crm_core.audience import library as segment_library

        try:
            return f"{segment_library.get_segment(store, int(obj['segment_id']))['name']}（{reach}）"
        except (InputError, TypeError, ValueError):
            return f"削除されたセグメント「{obj.get('name', '')}」（{reach}）"
    if isinstance(obj.get("name"), str) and obj["name"].strip():
        return f"{obj['name'].strip()}（{reach}）"
    try:
        return f"{segments.describe(_rule_of(store, obj), store)}（{reach}）"
    except InputError:
        return f"読めない条件（{reach}）"


# --------------------------------------------------------------------------
# Stored plans
# --------------------------------------------------------------------------



def _now() -> dt.datetime:
    return clock.now().replace(microsecond=0)


def _clean_send(row: Mapping[str, Any], plan_channel: str, plan_segment: str | None, plan_coupon: str) -> dict[str, Any]:
    phase = str(row.get("phase") or "custom")
    if phase not in PHASE_LABELS:
        phase = "custom"
    send_at = row.get("send_at")
    if send_at is None or (not isinstance(send_at, str) and pd.isna(send_at)):
        raise InputError("配信日時が空の行があります。日付と時刻を入力してください。", "missing send_at")
    try:
        when = pd.Timestamp(send_at).to_pydatetime().replace(second=0, microsecond=0, tzinfo=None)
    except (ValueError, TypeError):
        raise InputError(f"配信日時「{send_at}」を読めません。", "bad send_at") from None
    channel = check_channel(str(row.get("channel") or plan_channel))
    template = str(row.get("template") or "").strip()
    if not template:
        raise InputError(f"{cal.format_datetime(when)} の配信にテンプレートを選んでください。", "missing template")
    label = str(row.get("label") or PHASE_LABELS[phase]).strip()[:60]
    segment = row.get("segment", plan_segment)
    segment = plan_segment if segment is None or (isinstance(segment, float) and pd.isna(segment)) else segment_json(segment)
    coupon = row.get("coupon")
    coupon = plan_coupon if coupon is None or (isinstance(coupon, float) and pd.isna(coupon)) else str(coupon).strip()
    send_id = row.get("send_id")
    send_id = str(send_id) if send_id and not (isinstance(send_id, float) and pd.isna(send_id)) else uuid.uuid4().hex[:12]
    exclude = row.get("exclude_conflicts")
    exclude = bool(exclude) if exclude is not None and not (isinstance(exclude, float) and pd.isna(exclude)) else False
    return {"send_id": send_id, "phase": phase, "label": label, "send_at": when, "channel": channel,
            "template": template, "segment": segment, "coupon": coupon, "exclude_conflicts": exclude}


def save_plan(store: Store, name: str, sends: pd.DataFrame | Sequence[Mapping[str, Any]], event_id: str | None = None,
              channel: str = "line", segment: Any = None, coupon: str = "", note: str = "",
              plan_id: str | None = None) -> str:
    """Store a plan and its sends (replacing them when ``plan_id`` exists); returns the plan id.

    Parameters
    ----------
    sends : DataFrame or rows
        ``phase, label, send_at, channel, template`` and optionally ``segment,
        coupon, send_id, exclude_conflicts`` (missing ones come from the plan).
    """
    name = (name or "").strip()
    if not name:
        raise InputError("キャンペーン名を入力してください。", "empty plan name")
    check_channel(channel)
    rows = sends.to_dict(orient="records") if isinstance(sends, pd.DataFrame) else [dict(r) for r in sends]
    if not rows:
        raise InputError("配信が1件もありません。フェーズを提案するか、配信を追加してください。", "no sends")
    plan_segment = segment_json(segment)
    clean = [_clean_send(r, channel, plan_segment, (coupon or "").strip()) for r in rows]
    now = _now()
    plan_id = plan_id or "plan-" + uuid.uuid4().hex[:10]
    with store.transaction() as cur:
        created = cur.execute("SELECT created_at FROM campaign_plans WHERE plan_id = ?", [plan_id]).fetchone()
        cur.execute("DELETE FROM planned_sends WHERE plan_id = ?", [plan_id])
        cur.execute("DELETE FROM campaign_plans WHERE plan_id = ?", [plan_id])
        cur.execute(
            "INSERT INTO campaign_plans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [plan_id, name[:100], event_id, channel, plan_segment, (coupon or "").strip(), (note or "").strip(),
             created[0] if created else now, now],
        )
        cur.executemany(
            "INSERT INTO planned_sends VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[c["send_id"], plan_id, c["phase"], c["label"], c["send_at"], c["channel"], c["template"], c["segment"],
              c["coupon"], c["exclude_conflicts"]] for c in clean],
        )
    return plan_id


def list_plans(store: Store) -> pd.DataFrame:
    """Stored plans: ``plan_id, name, event_id, channel, segment, coupon, note, sends, first_send, last_send, updated_at``."""
    return store.df(
        """
        SELECT p.plan_id, p.name, p.event_id, p.channel, p.segment, p.coupon, p.note,
               count(s.send_id) AS sends, min(s.send_at) AS first_send, max(s.send_at) AS last_send, p.updated_at
        FROM campaign_plans AS p LEFT JOIN planned_sends AS s ON s.plan_id = p.plan_id
        GROUP BY ALL
        ORDER BY first_send NULLS LAST, p.name
        """
    )


def get_plan(store: Store, plan_id: str) -> dict[str, Any]:
    """One plan's row (see :func:`list_plans`)."""
    plans = list_plans(store)
    hit = plans[plans.plan_id == plan_id]
    if hit.empty:
        raise InputError("キャンペーン計画が見つかりません。", f"unknown plan {plan_id!r}")
    return hit.iloc[0].to_dict()


def delete_plan(store: Store, plan_id: str) -> None:
    """Delete a plan and its sends."""
    with store.transaction() as cur:
        cur.execute("DELETE FROM planned_sends WHERE plan_id = ?", [plan_id])
        cur.execute("DELETE FROM campaign_plans WHERE plan_id = ?", [plan_id])


def planned_sends(store: Store, start: dt.date | None = None, end: dt.date | None = None,
                  plan_id: str | None = None) -> pd.DataFrame:
    """Stored sends (optionally of one plan or within JST days ``start .. end``), in time order.

    Returns
    -------
    DataFrame
        :data:`SEND_COLUMNS` plus ``plan_name, event_id, channel_label, phase_label``.
    """
    lo = dt.datetime.combine(start, dt.time()) if start else dt.datetime(1900, 1, 1)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time()) if end else dt.datetime(9999, 1, 1)
    df = store.df(
        """
        SELECT s.send_id, s.plan_id, s.phase, s.label, s.send_at, s.channel, s.template, s.segment, s.coupon,
               s.exclude_conflicts, p.name AS plan_name, p.event_id
        FROM planned_sends AS s JOIN campaign_plans AS p ON p.plan_id = s.plan_id
        WHERE s.send_at >= ? AND s.send_at < ? AND (CAST(? AS VARCHAR) IS NULL OR s.plan_id = ?)
        ORDER BY s.send_at, s.send_id
        """,
        [lo, hi, plan_id, plan_id],
    )
    df["send_at"] = pd.to_datetime(df["send_at"]).astype("datetime64[us]")
    df["channel_label"] = df.channel.map(CHANNELS).fillna(df.channel)
    df["phase_label"] = df.phase.map(PHASE_LABELS).fillna(df.phase)
    return df


def set_exclude_conflicts(store: Store, send_id: str, exclude: bool) -> None:
    """Leave customers over the frequency limit out of this send (or put them back)."""
    store.execute("UPDATE planned_sends SET exclude_conflicts = ? WHERE send_id = ?", [bool(exclude), send_id])


def add_line_presale(store: Store, event_id: str, days_before: int = PRESALE_DAYS[0], segment: Any = None,
                     coupon: str = "", now: dt.datetime | None = None) -> str:
    """One click: a LINE-friend pre-sale before an event — a calendar band and a plan with its LINE send.

    The pre-sale runs from the send (``days_before`` days before the start
    day, evening slot) until the general sale starts.

    Returns
    -------
    str
        The new plan's id.
    """
    event = cal.get_event(store, event_id)
    send = propose_line_presale(event, days_before, segment, coupon, store, now)
    send_at = send.send_at.iloc[0].to_pydatetime() if hasattr(send.send_at.iloc[0], "to_pydatetime") else send.send_at.iloc[0]
    starts_at = pd.Timestamp(event["starts_at"]).to_pydatetime()
    cal.add_event(store, "line_presale", f"LINE友だち先行セール（{event['name']}）"[:100], send_at,
                  starts_at - dt.timedelta(seconds=1), status="user", source=f"自社登録: {event['name']} の先行セール")
    return save_plan(store, f"LINE友だち先行セール: {event['name']}"[:100], send, event_id=event_id, channel="line",
                     segment=segment, coupon=coupon)


