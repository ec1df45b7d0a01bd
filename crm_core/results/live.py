"""Live campaigns: create → audience funnel → test send → approve → send (the functions pages, CLI and worker call).

A live campaign lives in the operations store (``send_campaigns``, see
:mod:`crm_core.messaging.ledger`) until it is sent; at send time its
recipients, holdout and variants are frozen into the DuckDB ``campaigns``
tables (:func:`crm_core.results.campaigns.freeze_campaign`, same campaign id),
so the results page shows it like any other campaign, and one ledger row per
recipient is written with its state.

This module sits in ``results`` because it freezes campaigns and prices the
send (``planning.costs``); the parts that need no DuckDB (ledger, consent,
delivery, endpoints) are in ``messaging``.

Times: ``now`` arguments are timezone-aware (UTC or JST); send times the user
enters are JST.  Quiet hours (default 21:00–08:00 JST) move a send scheduled
inside them to the next allowed minute and pause a running send until then.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from crm_core import clock, opsdb
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.messaging import audit, choice, consent
from crm_core.messaging import ledger as L
from crm_core.messaging import templates as T
from crm_core.messaging.channels.email_bulk import RAKUTEN_REFUSAL
from crm_core.messaging.delivery import UNSUBSCRIBE_SENTINEL, Outcome, deliver
from crm_core.results import campaigns as C

JST = ZoneInfo("Asia/Tokyo")
DEFAULT_QUIET_HOURS = "21-08"
DEFAULT_FREQUENCY_CAP = 3
CAP_WINDOW_DAYS = 7
PERSONAL_PLACEHOLDERS = frozenset({k for k, p in T.PLACEHOLDERS.items() if p.group == "お客様"} | {"coupon_code", "review_url"})
"""Placeholders whose value depends on the customer (``review_url`` falls back to the last product's page)."""
FUNNEL_LABELS = {
    "segment": "セグメントの人数",
    "reachable": "このチャネルで届く人",
    "suppressed": "配信停止・ブロック・宛先不明",
    "rakuten_relay": "楽天の中継アドレス（R-Mailへ）",
    "capped": "送信回数の上限（7日間）",
    "holdout": "比較用に送らない人",
    "will_receive": "送信する人数",
}
CHANNEL_FUNNEL_LABELS = {
    "reachable_line": "うちLINEで届く人",
    "reachable_email": "うちメールで届く人",
    "will_receive_line": "送信する人数（LINE）",
    "will_receive_email": "送信する人数（メール）",
}
"""The per-channel counts of a ``line_or_email`` send (shown after the funnel)."""
SEND_CHANNELS = ("line", "email", "rmail", "line_or_email")
"""A live campaign's channel setting: one channel, or LINE（なければメール） chosen per customer."""
MIXED = ("line_or_email",)


def now_utc() -> dt.datetime:
    return clock.now_utc()


def open_ops(store_or_path: Store | str) -> sqlite3.Connection:
    """The operations store beside a DuckDB store (or its path)."""
    path = store_or_path.path if isinstance(store_or_path, Store) else str(store_or_path)
    return opsdb.connect(opsdb.ops_path(path))


# -- quiet hours ---------------------------------------------------------------------------
def parse_quiet_hours(text: str | None) -> tuple[int, int] | None:
    """``"21-08"`` → (21, 8); ``"off"`` / empty → None."""
    text = (text or "").strip().lower()
    if text in ("", "off", "none", "なし"):
        return None
    try:
        start, end = (int(p) for p in text.split("-"))
    except ValueError:
        raise InputError("配信しない時間帯は「21-08」のように時で入力してください（なしは off）。", f"bad quiet hours {text!r}") from None
    if not (0 <= start <= 23 and 0 <= end <= 23) or start == end:
        raise InputError("配信しない時間帯は0〜23時の範囲で、開始と終了を変えてください。", "quiet hours out of range")
    return start, end


def in_quiet_hours(when: dt.datetime, quiet: tuple[int, int] | None) -> bool:
    if quiet is None:
        return False
    hour = when.astimezone(JST).hour
    start, end = quiet
    return start <= hour or hour < end if start > end else start <= hour < end


def next_allowed(when: dt.datetime, quiet: tuple[int, int] | None) -> dt.datetime:
    """``when`` itself, or the end of the quiet hours it falls in (JST)."""
    if not in_quiet_hours(when, quiet):
        return when
    assert quiet is not None
    local = when.astimezone(JST)
    candidate = local.replace(hour=quiet[1], minute=0, second=0, microsecond=0)
    if candidate <= local:
        candidate += dt.timedelta(days=1)
    return candidate


def _jst(when: dt.datetime | str | None, default: dt.datetime) -> dt.datetime:
    if when is None or when == "":
        return default.astimezone(JST)
    if isinstance(when, str):
        when = C.parse_datetime(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=JST)
    return when.astimezone(JST)


# -- the audience funnel ---------------------------------------------------------------------
@dataclasses.dataclass
class Funnel:
    counts: dict[str, int]
    rows: list[dict[str, Any]]  # customer_id, address, state, reason, variant

    def to_dict(self) -> dict[str, Any]:
        return dict(self.counts)


def _addresses(store: Store, ids: Sequence[str], channel: str) -> dict[str, str]:
    column = "line_user_id" if channel == "line" else "email"
    if not ids:
        return {}
    rows = store.fetchall("SELECT customer_id, trim(" + column + ") FROM customer_model WHERE customer_id IN (SELECT unnest(?))",  # noqa: S608 - fixed column
                          [list(ids)])
    return {r[0]: r[1] for r in rows if r[1]}


def funnel(store: Store, ops: sqlite3.Connection, *, rule: Any, channel: str, campaign_id: int, holdout: float,
           variants: Sequence[str], frequency_cap: int = DEFAULT_FREQUENCY_CAP, now: dt.datetime | None = None) -> Funnel:
    """Segment size → reachable → minus suppressed → minus frequency-capped → minus holdout → will receive.

    Each row carries its ``channel``.  With ``line_or_email`` the channel is chosen per customer
    (:func:`crm_core.messaging.choice.choose`) and the counts also say, per channel, who is reachable
    (``reachable_line``/``reachable_email``, a customer may be on both) and who will receive it
    (``will_receive_line`` + ``will_receive_email`` = ``will_receive``).  The holdout is each
    customer's draw (:func:`crm_core.results.campaigns.assign`), independent of the channel, so it is
    one random share of the whole audience whichever channel a customer would get; a held-out row
    keeps the channel it would have had, so results can also be compared per channel.
    """
    from crm_core.audience import segments

    now = now or now_utc()
    size = segments.count(store, rule)
    recent = L.recently_sent(ops, now - dt.timedelta(days=CAP_WINDOW_DAYS))
    mixed = channel in MIXED
    counts = dict.fromkeys(FUNNEL_LABELS, 0)
    if mixed:
        counts |= dict.fromkeys(channel_keys(channel), 0)
    counts["segment"] = size
    if channel == "rmail":
        reachable = C.audience_ids(store, rule, channel)["ids"]
        addresses = _addresses(store, reachable, "email")
        blocked = consent.suppressed(ops, "email")
        chosen = {cid: choice.Choice("suppressed" if consent.normalise("email", a) in blocked else "queued", "rmail", a,
                                     "opt_out" if consent.normalise("email", a) in blocked else None)
                  for cid, a in addresses.items()}
    else:
        reachable = list(dict.fromkeys(cid for ch in choice.modes_of(channel) for cid in C.audience_ids(store, rule, ch)["ids"]))
        people = choice.people(store, reachable)
        blocked_by = choice.blocked(ops)
        chosen = {cid: choice.choose(people.get(cid), channel, blocked_by) for cid in reachable}
        if mixed:
            for cid in reachable:
                for ch in choice.modes_of(channel):
                    counts[f"reachable_{ch}"] += bool((people.get(cid) or {}).get(ch))
    rows = []
    for cid in reachable:
        pick = chosen.get(cid)
        if pick is None or pick.state == "unreachable":
            continue
        counts["reachable"] += 1
        variant, held = C.assign(campaign_id, cid, holdout, variants)
        row = {"customer_id": cid, "address": pick.address, "variant": variant, "state": "queued", "reason": None,
               "channel": pick.channel}
        if pick.state == "suppressed" and pick.reason == "rakuten_relay":
            row.update(state="suppressed", reason="rakuten_relay")
            counts["rakuten_relay"] += 1
        elif pick.state == "suppressed":
            row.update(state="suppressed", reason="opt_out")
            counts["suppressed"] += 1
        elif frequency_cap and recent.get(cid, 0) >= frequency_cap:
            row.update(state="capped", reason=f"{recent[cid]} in {CAP_WINDOW_DAYS} days")
            counts["capped"] += 1
        elif held:
            row.update(state="held_out", variant=None)
            counts["holdout"] += 1
        else:
            counts["will_receive"] += 1
            if mixed:
                counts[f"will_receive_{pick.channel}"] += 1
        rows.append(row)
    return Funnel(counts, rows)


def channel_keys(channel: str) -> list[str]:
    """The per-channel funnel counts of a multi-channel send (``reachable_line`` … ``will_receive_email``)."""
    chans = choice.modes_of(channel) if channel in MIXED else ()
    return [f"reachable_{ch}" for ch in chans] + [f"will_receive_{ch}" for ch in chans]


def used_channels(channel: str, counts: dict[str, int]) -> list[str]:
    """The channels a send goes out on: its own, or (``line_or_email``) those with someone to receive it."""
    if channel not in MIXED:
        return [channel]
    return [ch for ch in choice.modes_of(channel) if counts.get(f"will_receive_{ch}")]


def shop_frequency_cap(store: Store) -> int:
    """The shop's one 7-day limit per customer (:func:`crm_core.planning.frequency.max_per_week`): the default cap of
    a live campaign, the cap of scenario sends and the calendar planner's limit."""
    from crm_core.planning import frequency

    return frequency.max_per_week(store)


def funnel_table(counts: dict[str, int]) -> list[dict[str, Any]]:
    """The funnel as rows for the screen: 段階, 人数 (then the per-channel counts of a multi-channel send)."""
    return ([{"段階": FUNNEL_LABELS[k], "人数": int(counts.get(k, 0))} for k in FUNNEL_LABELS]
            + [{"段階": label, "人数": int(counts[k])} for k, label in CHANNEL_FUNNEL_LABELS.items() if k in counts])


# -- create ---------------------------------------------------------------------------------
def next_campaign_id(store: Store, ops: sqlite3.Connection, kind: str, now: dt.datetime | None = None) -> int:
    """The one campaign-id allocator (:func:`crm_core.results.campaigns.next_campaign_id`)."""
    return C.next_campaign_id(store, ops, kind, now)


def _content_hash(store: Store, template_keys: dict[str, str], coupon_id: str | None, channel: str) -> str:
    tpls = {v: T.get_template(store, k).to_dict() for v, k in sorted(template_keys.items())}
    return L.digest({"templates": tpls, "coupon": coupon_id or "", "channel": channel})


def create(
    store: Store,
    ops: sqlite3.Connection,
    *,
    name: str,
    channel: str,
    rule: Any,
    template: str,
    actor: str,
    coupon_id: str | None = None,
    holdout: float = C.DEFAULT_HOLDOUT,
    variants: Sequence[str] = ("A",),
    variant_templates: dict[str, str] | None = None,
    send_at: dt.datetime | str | None = None,
    quiet_hours: str = DEFAULT_QUIET_HOURS,
    frequency_cap: int | None = None,
    ab: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Create a draft live campaign; returns ``campaign_id``, the funnel, the send time and lint findings.

    Raises
    ------
    InputError
        Bad inputs, an unknown template or coupon, nobody to send to, or an
        e-mail that fails the compliance lint (特定電子メール法 display items).
    """
    now = now or now_utc()
    if channel not in SEND_CHANNELS:
        raise InputError("チャネルは LINE・メール・R-Mail・LINE（なければメール）から選んでください。", f"unknown channel {channel!r}")
    names = C._check(name, channel, holdout, C.DEFAULT_ATTRIBUTION_DAYS, variants, C.CHANNEL_LABELS)
    if rule is None:
        raise InputError("配信対象（セグメント）を選んでください。", "no rule")
    quiet = parse_quiet_hours(quiet_hours)
    if frequency_cap is None:
        frequency_cap = shop_frequency_cap(store)
    if not 0 <= int(frequency_cap) <= 100:
        raise InputError("送信回数の上限は0〜100回にしてください（0は上限なし）。", "bad cap")
    keys = {v: (variant_templates or {}).get(v, template) for v in names}
    for key in set(keys.values()):
        T.get_template(store, key)
    if coupon_id:
        from crm_core.messaging import coupons

        coupons.get_coupon(store, coupon_id)
    wanted = _jst(send_at, now)
    scheduled = next_allowed(wanted, quiet)
    campaign_id = next_campaign_id(store, ops, "live", now)
    f = funnel(store, ops, rule=rule, channel=channel, campaign_id=campaign_id, holdout=holdout, variants=names,
               frequency_cap=frequency_cap, now=now)
    if channel != "rmail" and f.counts["will_receive"] == 0:
        raise InputError("送信できるお客様が0人です（配信停止・送信回数の上限・比較用グループを除いた結果）。条件かチャネルを見直してください。",
                         "nobody to send to")
    findings = lint(store, channel, keys, f.rows, coupon_id)
    errors = [x for x in findings if x["severity"] == "error" and x.get("channel") == "email"]
    if errors:
        raise InputError("このメールは送信できません: " + " / ".join(x["message"] for x in errors[:3])
                         + (f" 直し方: {errors[0]['fix']}" if errors[0].get("fix") else ""), "lint errors")
    with opsdb.transaction(ops):
        ops.execute(
            "INSERT INTO send_campaigns (campaign_id, name, channel, rule, template, coupon_id, holdout, variants, variant_templates,"
            " send_at, quiet_hours, frequency_cap, status, content_hash, created_by, created_at, funnel, ab)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?, ?, ?, ?)",
            [campaign_id, name.strip(), channel, json.dumps(rule, ensure_ascii=False), template, coupon_id or None, float(holdout),
             json.dumps(names, ensure_ascii=False), json.dumps(keys, ensure_ascii=False), scheduled.isoformat(),
             quiet_hours if quiet else "off", int(frequency_cap), _content_hash(store, keys, coupon_id, channel), actor,
             L.iso(now), json.dumps(f.counts), json.dumps(ab or {}, ensure_ascii=False)],
        )
        audit.log(ops, actor, "create", campaign_id, now=now, name=name, channel=channel, will_receive=f.counts["will_receive"])
    note = ""
    if scheduled != wanted:
        note = (f"配信しない時間帯（{quiet[0]}:00〜{quiet[1]:02d}:00）にかかるため、{scheduled:%m月%d日 %H:%M}に送信します。"
                if quiet else "")
    return {"campaign_id": campaign_id, "funnel": f.counts, "send_at": scheduled.isoformat(), "send_at_note": note,
            "lint": findings}


def lint(store: Store, channel: str, keys: dict[str, str], rows: list[dict[str, Any]], coupon_id: str | None) -> list[dict[str, str]]:
    """Compliance findings for the first recipient of each variant on each channel used (R-Mail / e-mail / LINE rules).

    Each finding carries the ``channel`` whose message it is about (a ``line_or_email`` send is
    linted as a LINE message and as an e-mail).
    """
    from crm_core.messaging import compliance

    shop = T.shop_profile(store)
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for ch in dict.fromkeys(r.get("channel") or channel for r in rows if r["state"] == "queued"):
        sample = next(r["customer_id"] for r in rows if r["state"] == "queued" and (r.get("channel") or channel) == ch)
        for key in dict.fromkeys(keys.values()):
            rendered = T.render_for_customer(store, key, sample, ch, _campaign_values(store, coupon_id, sample))
            for finding in compliance.lint(rendered, shop):
                d = {**finding.to_dict(), "channel": ch}
                if (ch, d["message"]) not in seen:
                    seen.add((ch, d["message"]))
                    out.append(d)
    return out


def _campaign_values(store: Store, coupon_id: str | None, customer_id: str, utm: str = "") -> T.Campaign:
    values = T.Campaign(utm_campaign=utm)
    if coupon_id:
        from crm_core.messaging import coupons

        coupon = coupons.get_coupon(store, coupon_id)
        for k, v in coupons.placeholder_values(store, coupon, customer_id).items():
            setattr(values, k, v)
    return values


def previews(store: Store, ops: sqlite3.Connection, campaign_id: int, count: int = 3) -> list[dict[str, Any]]:
    """The message as three real recipients would get it (customer id, variant, channel, rendered), per channel used."""
    c = _get(ops, campaign_id)
    f = funnel(store, ops, rule=c["rule"], channel=c["channel"], campaign_id=campaign_id, holdout=c["holdout"],
               variants=c["variants"], frequency_cap=c["frequency_cap"])
    out = []
    queued = [r for r in f.rows if r["state"] == "queued"]
    chosen = [r for ch in dict.fromkeys(r["channel"] for r in queued) for r in [q for q in queued if q["channel"] == ch][:count]]
    keys = "(SELECT k.customer_key FROM customers AS k WHERE k.customer_id = cm.customer_id LIMIT 1)" if store.has_table("customers") else "NULL"
    who = {r[0]: (r[1], r[2]) for r in store.fetchall(
        "SELECT customer_id, name, " + keys + " FROM customer_model AS cm WHERE customer_id IN (SELECT unnest(?))",  # noqa: S608 - fixed fragments
        [[r["customer_id"] for r in chosen]])}
    for row in chosen:
        key = c["variant_templates"].get(row["variant"], c["template"])
        rendered = T.render_for_customer(store, key, row["customer_id"], row["channel"],
                                         _campaign_values(store, c["coupon_id"], row["customer_id"], f"crm{campaign_id}"))
        name, customer_key = who.get(row["customer_id"], (None, None))
        out.append({"customer_id": row["customer_id"], "name": name, "customer_key": customer_key, "variant": row["variant"],
                    "channel": row["channel"], "rendered": rendered})
    return out


def cost(store: Store, channel: str, messages: int, used_this_month: int = 0) -> dict[str, Any]:
    """The message cost of a send: LINE against the plan on top of this month's use, R-Mail ¥1 per mail, e-mail by the ESP.

    ``blocked`` LINE messages cannot be sent on the plan (no extra messages);
    ``yen`` is the overage this send adds.
    """
    from crm_core.planning import costs

    if channel == "line":
        plan = costs.line_plan_setting(store)
        rate = costs.beyond_rate_setting(store)
        before = costs.line_cost(used_this_month, plan, rate)
        after = costs.line_cost(used_this_month + messages, plan, rate)
        return {"channel": channel, "messages": messages, "used_this_month": used_this_month, "plan": plan,
                "yen": float(after.overage_cost - before.overage_cost), "blocked": after.blocked - before.blocked,
                "warnings": list(after.warnings)}
    if channel == "rmail":
        return {"channel": channel, "messages": messages, "yen": float(costs.rmail_cost(messages)), "warnings": []}
    return {"channel": channel, "messages": messages, "yen": None, "warnings": ["メールの費用は契約中の配信サービス（ESP）の料金によります。"]}


def send_cost(store: Store, channel: str, counts: dict[str, int], used_this_month: int = 0) -> dict[str, Any]:
    """The cost of a campaign from its funnel: :func:`cost` of its channel, or of each channel of a
    ``line_or_email`` send (``parts``: the LINE part against the plan, the e-mail part by the ESP; ``yen``
    their known sum)."""
    if channel not in MIXED:
        return cost(store, channel, int(counts.get("will_receive", 0)), used_this_month)
    parts = [cost(store, ch, int(counts.get(f"will_receive_{ch}", 0)), used_this_month) for ch in choice.modes_of(channel)]
    return {"channel": channel, "messages": int(counts.get("will_receive", 0)), "parts": parts,
            "yen": float(sum(p["yen"] for p in parts if p["yen"] is not None)),
            "blocked": sum(int(p.get("blocked", 0)) for p in parts),
            "warnings": [w for p in parts for w in p["warnings"]]}


# -- reading ------------------------------------------------------------------------------------
def _get(ops: sqlite3.Connection, campaign_id: int) -> dict[str, Any]:
    c = L.get(ops, campaign_id)
    if c is None:
        raise InputError(f"施策番号 {campaign_id} の配信は見つかりません。", "unknown live campaign")
    return c


def status(ops: sqlite3.Connection, campaign_id: int) -> dict[str, Any]:
    """Status, ledger counts by state, the approval and the latest note."""
    c = _get(ops, campaign_id)
    return {"campaign_id": campaign_id, "name": c["name"], "channel": c["channel"], "status": c["status"],
            "status_label": L.CAMPAIGN_STATUS.get(c["status"], c["status"]), "send_at": c["send_at"],
            "approved_by": c["approved_by"], "approved_at": c["approved_at"], "tested": c["tested_hash"] == c["content_hash"],
            "funnel": c["funnel"], "ledger": L.counts(ops, campaign_id), "note": c["note"], "ab": c["ab"],
            "channels": used_channels(c["channel"], c["funnel"]), "tested_channels": tested_channels(c),
            "by_channel": channel_counts(ops, campaign_id)}


def channel_counts(ops: sqlite3.Connection, campaign_id: int) -> dict[str, dict[str, int]]:
    """Ledger rows by channel and state (``{"line": {"sent": …}, "email": {…}}``; only channels with rows)."""
    out: dict[str, dict[str, int]] = {}
    for ch, state, _rest, n in L.tally(ops, campaign_id):
        out.setdefault(ch, dict.fromkeys(L.STATES, 0))[state] += n
    return out


def results_by_channel(store: Store, ops: sqlite3.Connection, campaign_id: int) -> list[dict[str, Any]]:
    """A ``line_or_email`` campaign's results per channel (the results page's チャネル別): for each channel, those sent on
    it against the holdout customers who would have got it (each ledger row keeps its channel, the holdout's too).

    Rows: ``channel``, ``label``, ``recipients``, ``buyers``, ``conversion``, ``holdout``, ``holdout_buyers``,
    ``holdout_conversion``, ``diff`` (None without a holdout on that channel), ``verdict`` (Japanese).
    Empty for one-channel campaigns (their whole result is the channel's).
    """
    from crm_core.results import attribution as R

    c = L.get(ops, campaign_id)
    if c is None or c["channel"] not in MIXED:
        return []
    channel_of = {r[0]: r[1] for r in ops.execute("SELECT customer_id, channel FROM send_ledger_now WHERE campaign_id = ?"
                                                  " AND state IN ('sent', 'held_out')", [campaign_id])}
    table = R.recipient_table(store, campaign_id)
    table = table.assign(channel=table["customer_id"].map(channel_of))
    out = []
    for ch in choice.modes_of(c["channel"]):
        mine = table[table["channel"] == ch]
        treat, control = mine[~mine["holdout"].astype(bool)], mine[mine["holdout"].astype(bool)]
        if treat.empty and control.empty:
            continue
        lift = R.compare(treat, control) if len(treat) and len(control) else None
        out.append({"channel": ch, "label": choice.LABELS[ch], "recipients": len(treat), "buyers": int((treat["orders"] > 0).sum()),
                    "conversion": (treat["orders"] > 0).mean() if len(treat) else None, "holdout": len(control),
                    "holdout_buyers": int((control["orders"] > 0).sum()),
                    "holdout_conversion": (control["orders"] > 0).mean() if len(control) else None,
                    "diff": None if lift is None else lift["conversion_diff"],
                    "verdict": R.VERDICT_NO_HOLDOUT if lift is None else lift["verdict"]})
    return out


def tested_channels(c: dict[str, Any]) -> list[str]:
    """The channels whose test send covers the campaign's current content."""
    if c["channel"] not in MIXED:
        return used_channels(c["channel"], c["funnel"]) if c["tested_hash"] == c["content_hash"] else []
    return [ch for ch, h in (c.get("tested_channels") or {}).items() if h == c["content_hash"]]


def list_live(ops: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = ops.execute("SELECT campaign_id FROM send_campaigns ORDER BY campaign_id DESC").fetchall()
    return [status(ops, r[0]) for r in rows]


# -- test send and approval --------------------------------------------------------------------
def record_test_send(ops: sqlite3.Connection, campaign_id: int, actor: str, ok: bool, now: dt.datetime | None = None,
                     channel: str | None = None) -> None:
    """Remember a successful test send of the campaign's current content.

    A ``line_or_email`` send counts as tested only when every channel it goes out on
    (:func:`used_channels`) had a test send of this content.
    """
    c = _get(ops, campaign_id)
    with opsdb.transaction(ops):
        if ok and c["channel"] in MIXED:
            done = {**(c.get("tested_channels") or {}), str(channel): c["content_hash"]}
            ops.execute("UPDATE send_campaigns SET tested_channels = ? WHERE campaign_id = ?", [json.dumps(done), campaign_id])
            ok_all = all(done.get(ch) == c["content_hash"] for ch in used_channels(c["channel"], c["funnel"]))
            if ok_all:
                ops.execute("UPDATE send_campaigns SET tested_hash = ?, tested_at = ?, tested_by = ? WHERE campaign_id = ?",
                            [c["content_hash"], L.iso(now or now_utc()), actor, campaign_id])
        elif ok:
            ops.execute("UPDATE send_campaigns SET tested_hash = ?, tested_at = ?, tested_by = ? WHERE campaign_id = ?",
                        [c["content_hash"], L.iso(now or now_utc()), actor, campaign_id])
        audit.log(ops, actor, "test_send", campaign_id, now=now, ok=ok, **({"channel": channel} if channel else {}))


def test_send(store: Store, ops: sqlite3.Connection, campaign_id: int, *, settings: Any, recipient: str, actor: str,
              sender: Any = None, now: dt.datetime | None = None, channel: str | None = None) -> Any:
    """Send exactly this campaign's content (every variant, a real recipient's data) to a registered test recipient.

    ``channel``: for a ``line_or_email`` send, the channel to test (``line`` or ``email``), rendered for a
    real recipient who gets it on that channel; each channel used needs its own test send.
    """
    from crm_core.messaging import sends

    c = _get(ops, campaign_id)
    if c["channel"] in MIXED:
        if channel not in choice.modes_of(c["channel"]):
            raise InputError("テスト送信するチャネル（LINEかメール）を選んでください。", f"test channel {channel!r}")
    else:
        channel = "email" if c["channel"] == "rmail" else c["channel"]
    f = funnel(store, ops, rule=c["rule"], channel=c["channel"], campaign_id=campaign_id, holdout=c["holdout"],
               variants=c["variants"], frequency_cap=c["frequency_cap"])
    sample = next((r for r in f.rows if r["state"] == "queued" and (c["channel"] not in MIXED or r["channel"] == channel)), None)
    if sample is None:
        raise InputError("テスト送信に使うお客様がいません" + (f"（{choice.LABELS[channel]}で送るお客様がいません）。"
                                                          if c["channel"] in MIXED else "。"), "no sample")
    result = None
    for variant in c["variants"]:
        key = c["variant_templates"].get(variant, c["template"])
        result = sends.test_send(store, settings, channel=channel, recipient=recipient, template_key=key,
                                 customer_id=sample["customer_id"], actor=actor, sender=sender,
                                 campaign=_campaign_values(store, c["coupon_id"], sample["customer_id"], f"crm{campaign_id}"))
        if not result.ok:
            break
    record_test_send(ops, campaign_id, actor, bool(result and result.ok), now, channel if c["channel"] in MIXED else None)
    return result


test_send.__test__ = False  # not a pytest test despite the name


def approve(ops: sqlite3.Connection, campaign_id: int, *, by: str, confirm_count: int | None = None, role: str = "",
            accept_overage: bool = False, now: dt.datetime | None = None) -> dict[str, Any]:
    """Approve a tested draft.

    Someone other than the creator needs the approver role; the creator alone
    (the single user of a small shop) confirms by typing the number of
    recipients.  ``accept_overage`` lets a LINE send go beyond the month's
    quota (the extra messages are paid); without it the send pauses first.

    Raises
    ------
    InputError
        Not a draft, content not test-sent, missing role, or the typed count differs.
    """
    c = _get(ops, campaign_id)
    by = (by or "").strip()
    if not by:
        raise InputError("承認する人の名前を入力してください。", "no approver")
    if c["status"] != "draft":
        raise InputError(f"この配信は「{L.CAMPAIGN_STATUS.get(c['status'], c['status'])}」のため承認できません。", "not a draft")
    if c["tested_hash"] != c["content_hash"]:
        missing = [choice.LABELS[ch] for ch in used_channels(c["channel"], c["funnel"]) if ch not in tested_channels(c)]
        raise InputError("承認の前に、この内容のテスト送信が必要です（内容を変えた場合はもう一度テスト送信してください）。"
                         + (f"まだテスト送信していないチャネル: {'・'.join(missing)}。" if c["channel"] in MIXED and missing else ""),
                         "not tested")
    n = int(c["funnel"].get("will_receive", 0))
    if by == c["created_by"]:
        if confirm_count is None or int(confirm_count) != n:
            raise InputError(f"作成者自身が承認するときは、送信する人数（{n:,}人）を数字で入力して確認してください。", "count not confirmed")
    elif role not in ("approver", "admin"):
        raise InputError("承認には承認者の権限が必要です。", "not an approver")
    when = now or now_utc()
    with opsdb.transaction(ops):
        ops.execute("UPDATE send_campaigns SET status = 'approved', approved_by = ?, approved_at = ?, approved_count = ?, accept_overage = ?"
                    " WHERE campaign_id = ?", [by, L.iso(when), n, int(bool(accept_overage)), campaign_id])
        audit.log(ops, by, "approve", campaign_id, now=when, count=n, accept_overage=bool(accept_overage))
    schedule_send(ops, campaign_id, actor=by, now=when)  # the worker sends at the send time; nobody needs to press "send"
    return status(ops, campaign_id)


def pause(ops: sqlite3.Connection, campaign_id: int, actor: str, now: dt.datetime | None = None) -> dict[str, Any]:
    c = _get(ops, campaign_id)
    if c["status"] in ("done", "cancelled"):
        raise InputError("送信が終わった配信は一時停止できません。", "finished")
    with opsdb.transaction(ops):
        L.set_status(ops, campaign_id, "paused", "一時停止しました。")
        audit.log(ops, actor, "pause", campaign_id, now=now)
    return status(ops, campaign_id)


def resume(ops: sqlite3.Connection, campaign_id: int, actor: str, now: dt.datetime | None = None) -> dict[str, Any]:
    c = _get(ops, campaign_id)
    if c["status"] != "paused":
        raise InputError("一時停止中の配信だけ再開できます。", "not paused")
    with opsdb.transaction(ops):
        L.set_status(ops, campaign_id, "approved" if c["approved_by"] else "draft", None)
        audit.log(ops, actor, "resume", campaign_id, now=now)
    schedule_send(ops, campaign_id, actor=actor, now=now)
    return status(ops, campaign_id)


def cancel(ops: sqlite3.Connection, campaign_id: int, actor: str, now: dt.datetime | None = None) -> dict[str, Any]:
    c = _get(ops, campaign_id)
    if c["status"] in ("done", "cancelled"):
        raise InputError("この配信はすでに終わっています。", "finished")
    with opsdb.transaction(ops):
        L.set_status(ops, campaign_id, "cancelled", "中止しました。送信済みの分は取り消せません。")
        audit.log(ops, actor, "cancel", campaign_id, now=now)
    return status(ops, campaign_id)


# -- prepare (freeze) ---------------------------------------------------------------------------
def _customer_rows(store: Store, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Placeholder fields of many customers in two queries (what ``customer_fields`` reads for one)."""
    cur = store.execute("SELECT * FROM customer_model WHERE customer_id IN (SELECT unnest(?))", [list(ids)])
    cols = [d[0] for d in cur.description]
    out = {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}
    if store.has_table("customer_recommendations"):
        price = "(SELECT median(unit_price) FROM order_lines o WHERE o.product_id = r.product_id)" if store.has_table("order_lines") else "NULL"
        recs = store.fetchall(
            "SELECT customer_id, product_id, product_name, reason, " + price + " FROM customer_recommendations r"  # noqa: S608 - fixed fragments
            " WHERE customer_id IN (SELECT unnest(?)) QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY score DESC, product_id) = 1",
            [list(ids)])
        for cid, pid, pname, reason, p in recs:
            if cid in out:
                out[cid].update(rec_product_id=pid, rec_product_name=pname, rec_reason=reason, rec_price=p)
    return out


def render_many(store: Store, template_key: str, channel: str, customer_ids: Sequence[str], *, utm: str, shop: T.ShopProfile,
                coupon: Any = None, expiry: str = "") -> dict[str, T.Rendered]:
    """One template rendered for many customers, set-based: their fields in two queries, coupon codes in one,
    and one render per distinct set of the placeholder values the template uses (once for a non-personal message).

    ``expiry``: the coupon expiry to show to a customer without a code yet (a dry run of a step whose codes
    are valid N days from the send).
    """
    from crm_core.messaging import coupons

    ids = list(dict.fromkeys(customer_ids))
    if not ids:
        return {}
    tpl = T.get_template(store, template_key)
    people = _customer_rows(store, ids)
    values_of = coupons.placeholder_values_many(store, coupon, ids) if coupon is not None else {}
    used = sorted({n for text in tpl.texts().values() for n in T.analyse(text).names})
    out: dict[str, T.Rendered] = {}
    cache: dict[tuple, T.Rendered] = {}
    for cid in ids:
        values = T.Campaign(utm_campaign=utm)
        for k, v in values_of.get(cid, {}).items():
            setattr(values, k, v)
        if coupon is not None and not values.coupon_code:
            values.coupon_code = "（お客様ごとのコード）"
            values.coupon_expiry = expiry or values.coupon_expiry
        ctx = T.build_context(people.get(cid), values, shop, channel, tpl.key)
        key = tuple(ctx.get(n, "") for n in used)
        if key not in cache:
            cache[key] = T.render(tpl, ctx, channel, utm)
        out[cid] = cache[key]
    return out


def _ab_sample(campaign_id: int, customer_id: str, share: float) -> bool:
    """Whether a recipient is in the A/B sample (a third hash, independent of holdout and variant)."""
    import hashlib

    digest = hashlib.sha256(f"{campaign_id}|{customer_id}|ab".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _write_rows(store: Store, ops: sqlite3.Connection, c: dict[str, Any], rows: list[dict[str, Any]], *, from_addr: str,
                now: dt.datetime, insert: bool, variant_override: str | None = None) -> None:
    """Render queued rows and write their ledger rows, contents and LINE batches (inside the caller's transaction)."""
    campaign_id = int(c["campaign_id"])
    channel = c["channel"]
    todo = [r for r in rows if r["state"] == "queued" and r.get("reason") != "ab_rest"]
    shop = dataclasses.replace(T.shop_profile(store), unsubscribe_url=UNSUBSCRIBE_SENTINEL)
    people = _customer_rows(store, [r["customer_id"] for r in todo]) if channel != "rmail" and todo else {}
    by_channel: dict[str, list[dict[str, Any]]] = {}  # each recipient's own channel (line_or_email mixes them)
    templates = {v: T.get_template(store, k) for v, k in c["variant_templates"].items()}
    default_tpl = T.get_template(store, c["template"])
    coupon_obj = None
    if c["coupon_id"]:
        from crm_core.messaging import coupons

        coupon_obj = coupons.get_coupon(store, c["coupon_id"])
    cache: dict[str, int] = {}
    rendered_cache: dict[tuple, int] = {}  # (template, values of the placeholders it uses) -> content id
    used = {key: sorted({n for text in t.texts().values() for n in T.analyse(text).names})
            for key, t in {**{default_tpl.key: default_tpl}, **{t.key: t for t in templates.values()}}.items()}
    personal = {k: bool(set(names) & PERSONAL_PLACEHOLDERS) or (coupon_obj is not None and coupon_obj.code_mode == "unique")
                for k, names in used.items()}
    for r in rows:
        content_id = None
        variant = variant_override or r["variant"]
        ch = r.get("channel") or channel
        if r["state"] == "queued" and r.get("reason") != "ab_rest" and ch in ("line", "email"):
            values = T.Campaign(utm_campaign=f"crm{campaign_id}")
            if coupon_obj is not None:
                from crm_core.messaging import coupons

                for k, v in coupons.placeholder_values(store, coupon_obj, r["customer_id"]).items():
                    setattr(values, k, v)
            tpl = templates.get(variant, default_tpl)
            key = (ch, tpl.key) if not personal[tpl.key] else None
            content_id = rendered_cache.get(key) if key else None
            if content_id is None:
                ctx = T.build_context(people.get(r["customer_id"]), values, shop, ch, tpl.key)
                key = key or (ch, tpl.key, *(ctx.get(n, "") for n in used[tpl.key]))
                content_id = rendered_cache.get(key)
            if content_id is None:  # render once per distinct set of placeholder values (once for a non-personal message)
                rendered = T.render(tpl, ctx, ch, values.utm_campaign)
                body = rendered.line_messages if ch == "line" else {
                    "subject": rendered.subject, "preheader": rendered.preheader, "text": rendered.text, "html": rendered.html}
                content_id = rendered_cache[key] = L.store_content(ops, campaign_id, body, cache)
        by_channel.setdefault(ch, []).append({"customer_id": r["customer_id"], "variant": variant, "address": r["address"],
                                              "state": r["state"], "reason": r.get("reason"), "content_id": content_id})
    for ch, out in by_channel.items():
        L.write_rows(ops, campaign_id, ch, out, from_addr=from_addr, now=now, insert=insert)


def prepare(store: Store, ops: sqlite3.Connection, campaign_id: int, *, from_addr: str = "", now: dt.datetime | None = None,
            actor: str = "sender") -> dict[str, int]:
    """Freeze recipients (DuckDB) and write the ledger, contents and LINE batches (operations store).

    With an automatic A/B test (``ab`` with ``sample_share``), only the
    samples (each variant's share of the recipients) and the holdout are
    frozen and sent now; the rest wait (ledger reason ``ab_rest``) for
    :func:`decide_ab`.  Idempotent: a prepared campaign is left as it is.
    """
    c = _get(ops, campaign_id)
    if c["prepared_at"]:
        return L.counts(ops, campaign_id)
    if c["status"] not in ("approved", "waiting"):
        raise InputError("承認された配信だけ送信できます。", "not approved")
    now = now or now_utc()
    channel = c["channel"]
    f = funnel(store, ops, rule=c["rule"], channel=channel, campaign_id=campaign_id, holdout=c["holdout"], variants=c["variants"],
               frequency_cap=c["frequency_cap"], now=now)
    untested = [ch for ch in dict.fromkeys(r["channel"] for r in f.rows if r["state"] == "queued")
                if channel in MIXED and ch not in tested_channels(c)]
    if untested:  # a channel nobody was to get at creation has recipients now: its content was never test-sent
        names = "・".join(choice.LABELS[ch] for ch in untested)
        with opsdb.transaction(ops):
            L.set_status(ops, campaign_id, "paused", f"承認の後に、{names}で送るお客様が加わりました。{names}ではまだこの内容をテスト送信して"
                                                     f"いないため、送信を一時停止しました。{names}でテスト送信してから「再開」してください。")
            audit.log(ops, actor, "pause", campaign_id, now=now, reason="untested channel", channels=untested)
        return L.counts(ops, campaign_id)
    if not sender_address_ok(from_addr) and any(r["state"] == "queued" and (r.get("channel") or channel) == "email" for r in f.rows):
        with opsdb.transaction(ops):  # nothing frozen yet: 再開 after 送信設定 prepares with the address
            L.set_status(ops, campaign_id, "paused", NO_SENDER_ADDRESS)
            audit.log(ops, actor, "pause", campaign_id, now=now, reason="no sender address")
        return L.counts(ops, campaign_id)
    share = float(c["ab"].get("sample_share") or 0) if len(c["variants"]) > 1 else 0.0
    if share:
        for r in f.rows:
            if r["state"] == "queued" and not _ab_sample(campaign_id, r["customer_id"], share * len(c["variants"])):
                r["reason"] = "ab_rest"
    frozen = [r for r in f.rows if r["state"] == "held_out" or (r["state"] == "queued" and r.get("reason") != "ab_rest")]
    if not frozen:
        raise InputError("送信できるお客様が0人になりました。", "nobody left")
    coupon_code = ""
    queued_ids = [r["customer_id"] for r in f.rows if r["state"] == "queued"]
    if c["coupon_id"]:
        from crm_core.messaging import coupons

        coupon = coupons.get_coupon(store, c["coupon_id"])
        coupon_code = coupon.shared_code if coupon.code_mode == "shared" else f"{c['coupon_id']}（お客様ごと）"
        if coupon.code_mode == "unique":
            coupons.issue_unique_codes(store, c["coupon_id"], queued_ids)
    sent_at = now.astimezone(JST).replace(tzinfo=None, microsecond=0)
    C.freeze_campaign(store, c["name"], channel, sent_at, customer_ids=[r["customer_id"] for r in frozen], template=c["template"],
                      coupon_code=coupon_code, holdout_share=c["holdout"], variants=c["variants"], campaign_id=campaign_id,
                      now=sent_at, cost_per_message=_mixed_rate(store, channel, f.counts))
    shop_real = T.shop_profile(store)
    with opsdb.transaction(ops):
        _write_rows(store, ops, c, f.rows, from_addr=from_addr, now=now, insert=True)
        ops.execute("UPDATE send_campaigns SET prepared_at = ?, funnel = ?, sender = ? WHERE campaign_id = ?",
                    [L.iso(now), json.dumps(f.counts), json.dumps({"from_addr": from_addr,
                                                                   "from_name": shop_real.sender_name or shop_real.shop_name}, ensure_ascii=False),
                     campaign_id])
        audit.log(ops, actor, "send", campaign_id, now=now, queued=len(queued_ids), ab_rest=sum(r.get("reason") == "ab_rest" for r in f.rows))
    return L.counts(ops, campaign_id)


def _mixed_rate(store: Store, channel: str, counts: dict[str, int]) -> float | None:
    """The results page's yen per message of a ``line_or_email`` send: the LINE rate (plan) weighted by the LINE share of the
    recipients (own e-mail costs ¥0 there); None (the channel's own rate) for one-channel sends."""
    if channel not in MIXED or not counts.get("will_receive"):
        return None
    from crm_core.planning import costs
    from crm_core.results import attribution

    rate = attribution.message_rate("line", costs.line_plan_setting(store))
    return float(rate) * int(counts.get("will_receive_line", 0)) / int(counts["will_receive"])


def decide_ab(store: Store, ops: sqlite3.Connection, campaign_id: int, *, now: dt.datetime | None = None,
              actor: str = "sender") -> dict[str, Any]:
    """After ``wait_hours``, pick the winner of the samples (only when significant, else the default) and queue the rest with it.

    The decision reuses :func:`crm_core.results.attribution.ab_test` (purchase
    rate, two-proportion z-test with Newcombe's interval) on the orders
    attributed to the samples so far.

    Returns
    -------
    dict
        ``decided`` (bool), ``winner``, ``significant``, ``message`` (Japanese), ``rest``.
    """
    from crm_core.results import attribution as R

    c = _get(ops, campaign_id)
    rest = [dict(r) for r in ops.execute("SELECT customer_id, address, state, reason, variant, channel FROM send_ledger_now"
                                         " WHERE campaign_id = ? AND reason = 'ab_rest' ORDER BY seq", [campaign_id])]
    if not rest:
        return {"decided": False, "winner": c["ab"].get("winner"), "message": "A/Bテストの残りの送信先はありません。", "rest": 0}
    now = now or now_utc()
    ready = dt.datetime.fromisoformat(c["prepared_at"]) + dt.timedelta(hours=float(c["ab"].get("wait_hours", 24)))
    if now < ready:
        return {"decided": False, "winner": None, "rest": len(rest),
                "message": f"{ready.astimezone(JST):%m月%d日 %H:%M}にサンプルの結果から勝ちパターンを決め、残り{len(rest):,}人に送ります。"}
    table = R.recipient_table(store, campaign_id)
    treat = table[~table["holdout"]]
    result = R.ab_test(treat, list(c["variants"]))
    default = c["ab"].get("default") or c["variants"][0]
    winner = result["winner"] or default
    significant = result["winner"] is not None
    message = (result["message"] + f" 残り{len(rest):,}人にパターン{winner}を送ります。" if significant
               else result["message"] + f" 勝ちパターンが決まらないため、標準のパターン{default}を残り{len(rest):,}人に送ります。")
    frame = pd.DataFrame({"campaign_id": campaign_id, "customer_id": [r["customer_id"] for r in rest], "variant": winner, "holdout": False})
    with store.transaction() as cur:
        cur.register("ab_rest_rows", frame)
        cur.execute("INSERT INTO campaign_recipients SELECT campaign_id, customer_id, variant, holdout FROM ab_rest_rows")
        cur.unregister("ab_rest_rows")
    with opsdb.transaction(ops):
        for r in rest:
            r["reason"] = None
        _write_rows(store, ops, c, rest, from_addr=c["sender"].get("from_addr", ""), now=now, insert=False, variant_override=winner)
        ab = {**c["ab"], "winner": winner, "significant": significant, "message": message, "decided_at": L.iso(now)}
        ops.execute("UPDATE send_campaigns SET ab = ?, status = 'approved', note = ? WHERE campaign_id = ?",
                    [json.dumps(ab, ensure_ascii=False, default=str), message, campaign_id])
        audit.log(ops, actor, "ab_winner", campaign_id, now=now, winner=winner, significant=significant, p=result.get("p"))
    return {"decided": True, "winner": winner, "significant": significant, "message": message, "rest": len(rest)}


# -- send ---------------------------------------------------------------------------------------
def due(ops: sqlite3.Connection, campaign_id: int, now: dt.datetime) -> str | None:
    """None when the campaign may send now, else a Japanese reason (not yet, quiet hours)."""
    c = _get(ops, campaign_id)
    send_at = dt.datetime.fromisoformat(c["send_at"])
    if now < send_at:
        return f"{send_at.astimezone(JST):%m月%d日 %H:%M}に送信します（予約）。"
    quiet = parse_quiet_hours(c["quiet_hours"])
    if in_quiet_hours(now, quiet):
        assert quiet is not None
        return (f"配信しない時間帯（{quiet[0]}:00〜{quiet[1]:02d}:00）のため待機しています。"
                f"{next_allowed(now, quiet):%m月%d日 %H:%M}に続きを送ります。")
    return None


def run(
    ops: sqlite3.Connection,
    campaign_id: int,
    *,
    store: Store | Callable[[], Store] | None = None,
    line: Any = None,
    smtp: Any = None,
    unsubscribe: Any = None,
    from_addr: str = "",
    clock: Callable[[], dt.datetime] = now_utc,
    progress: Callable[[dict[str, int]], None] | None = None,
    narrowcast_from: int = 0,
) -> Outcome:
    """Send a campaign if it is due: prepare once (needs the DuckDB store), then deliver from the ledger.

    ``store`` may be a callable opening the store, so that a resumed send
    (already prepared) never opens the DuckDB file.  ``narrowcast_from``: LINE
    sends to at least this many recipients go as audience + narrowcast (0: multicast only).
    """
    c = _get(ops, campaign_id)
    if c["status"] in ("draft",):
        return Outcome("draft", "承認されていない配信は送信できません。", L.counts(ops, campaign_id))
    if c["status"] in ("paused", "cancelled", "done"):
        return Outcome(c["status"], L.CAMPAIGN_STATUS[c["status"]], L.counts(ops, campaign_id))
    if c["status"] == "ab_waiting":
        if store is None:
            raise InputError("A/Bテストの判定にはデータベースが必要です。", "no store")
        s = store() if callable(store) else store
        try:
            decision = decide_ab(s, ops, campaign_id, now=clock())
        finally:
            if callable(store):
                s.close()
        if not decision["decided"]:
            return Outcome("ab_waiting", decision["message"], L.counts(ops, campaign_id))
    reason = due(ops, campaign_id, clock())
    if reason:
        if c["status"] == "sending":
            L.set_status(ops, campaign_id, "waiting", reason)
        return Outcome("waiting" if c["prepared_at"] else c["status"], reason, L.counts(ops, campaign_id))
    if not c["prepared_at"]:
        if store is None:
            raise InputError("送信の準備にはデータベースが必要です。", "no store")
        s = store() if callable(store) else store
        try:
            prepare(s, ops, campaign_id, from_addr=from_addr, now=clock())
        finally:
            if callable(store):
                s.close()
        after = _get(ops, campaign_id)
        if after["status"] == "paused":  # stopped before freezing (a channel without its test send)
            return Outcome("paused", after["note"] or L.CAMPAIGN_STATUS["paused"], L.counts(ops, campaign_id))
    if c["channel"] == "rmail":
        return Outcome(c["status"], "R-Mailは書き出したファイルをRMSから送信し、「送信済みにする」で記録してください。", L.counts(ops, campaign_id))
    mail_left = ops.execute("SELECT 1 FROM send_ledger WHERE campaign_id = ? AND channel = 'email' AND state IN ('queued', 'sending')"
                            " AND content_id IS NOT NULL LIMIT 1", [campaign_id]).fetchone()
    if mail_left and not complete_sender(ops, campaign_id, from_addr):
        with opsdb.transaction(ops):  # frozen without a usable address: nothing is sent until 送信設定 has one
            L.set_status(ops, campaign_id, "paused", NO_SENDER_ADDRESS)
            audit.log(ops, "sender", "pause", campaign_id, now=clock(), reason="no sender address")
        return Outcome("paused", NO_SENDER_ADDRESS, L.counts(ops, campaign_id))
    return deliver(ops, campaign_id, line=line, smtp=smtp, unsubscribe=unsubscribe, clock=clock,
                   allowed=lambda now: due(ops, campaign_id, now), progress=progress, narrowcast_from=narrowcast_from)


def rmail_export(ops: sqlite3.Connection, campaign_id: int) -> list[dict[str, str]]:
    """Who the R-Mail send reaches: Rakuten relay addresses refused for e-mail, or an R-Mail campaign's recipients (holdout and suppressed removed)."""
    c = _get(ops, campaign_id)
    if c["channel"] == "rmail":
        rows = ops.execute("SELECT customer_id, address FROM send_ledger_now WHERE campaign_id = ? AND state = 'queued' ORDER BY seq",
                           [campaign_id])
    else:
        rows = ops.execute("SELECT customer_id, address FROM send_ledger WHERE campaign_id = ? AND reason = 'rakuten_relay' ORDER BY seq",
                           [campaign_id])
    return [{"顧客ID": r[0], "メールアドレス": r[1]} for r in rows]


def mark_rmail_sent(ops: sqlite3.Connection, campaign_id: int, sent_at: dt.datetime | str, actor: str) -> dict[str, Any]:
    """R-Mail: the marketer sent the export from RMS; record the time they enter."""
    c = _get(ops, campaign_id)
    if c["channel"] != "rmail":
        raise InputError("「送信済みにする」はR-Mailの配信だけです。", "not rmail")
    when = _jst(sent_at, now_utc())
    with opsdb.transaction(ops):
        ops.execute("UPDATE send_ledger SET state = 'sent', sent_at = ?, updated_at = ? WHERE campaign_id = ? AND state = 'queued'",
                    [L.iso(when), L.iso(when), campaign_id])
        ops.execute("UPDATE send_campaigns SET status = 'done', finished_at = ? WHERE campaign_id = ?", [L.iso(when), campaign_id])
        audit.log(ops, actor, "mark_sent", campaign_id, sent_at=when.isoformat())
    return status(ops, campaign_id)


RAKUTEN_NOTE = RAKUTEN_REFUSAL


def send_due(db_path: str, ops: sqlite3.Connection, campaign_id: int,
             store: Store | Callable[[], Store] | None = None) -> Outcome:
    """Send a campaign if it is due, with the channels of the send settings (送信設定, secrets, environment).

    What the command line (``campaign send``) and the worker's ``campaign_send`` job both call.
    """
    from crm_core.messaging.delivery import channel_objects
    from crm_core.messaging.sends import console_settings, secrets_file_settings

    secrets = secrets_file_settings()
    objs = channel_objects(console_settings(secrets, db_path), secrets)
    try:
        return run(ops, campaign_id, store=store if store is not None else (lambda: Store(db_path)), line=objs["line"],
                   smtp=objs["smtp"], unsubscribe=objs["unsubscribe"], from_addr=objs["from_addr"],
                   narrowcast_from=objs["narrowcast_from"])
    finally:
        if objs["smtp"] is not None:
            objs["smtp"].close()


# -- the worker's schedule ----------------------------------------------------------------------
def next_send_time(ops: sqlite3.Connection, campaign_id: int, now: dt.datetime | None = None) -> dt.datetime | None:
    """When the worker should try the campaign next: its send time, the end of quiet hours, the A/B decision.

    None when nothing happens until a person acts (a draft, paused,
    cancelled or finished campaign).  A send still running is looked at again
    a minute later.
    """
    c = _get(ops, campaign_id)
    now = now or now_utc()
    status = c["status"]
    if status == "ab_waiting":
        if not c["prepared_at"]:
            return None
        ready = dt.datetime.fromisoformat(c["prepared_at"]) + dt.timedelta(hours=float(c["ab"].get("wait_hours", 24)))
        return next_allowed(max(now, ready), parse_quiet_hours(c["quiet_hours"]))
    if status not in ("approved", "waiting", "sending"):
        return None
    at = max(now + dt.timedelta(minutes=1) if status == "sending" else now, dt.datetime.fromisoformat(c["send_at"]))
    return next_allowed(at, parse_quiet_hours(c["quiet_hours"]))


def schedule_send(ops: sqlite3.Connection, campaign_id: int, *, actor: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """Queue the worker's ``campaign_send`` job for :func:`next_send_time` (once per time); return that time or None.

    Called on approval and resume (the page, the command line) and by the job
    itself when a run ends before the campaign is finished (not yet due,
    quiet hours, waiting for the A/B decision), so an approved campaign goes
    out at its time with nobody pressing anything.
    """
    from crm_core import jobs

    when = next_send_time(ops, campaign_id, now)
    if when is None:
        return None
    with opsdb.transaction(ops):
        jobs.enqueue_on(ops, "campaign_send", {"campaign_id": int(campaign_id)}, run_at=when,
                        dedupe_key=f"campaign_send:{int(campaign_id)}@{L.iso(when)}", max_attempts=1, created_by=actor)
    return when


def pending_send(ops: sqlite3.Connection, campaign_id: int) -> dt.datetime | None:
    """When the worker will next run the campaign's send (a queued or running ``campaign_send`` job), or None."""
    row = ops.execute("SELECT min(run_at) FROM jobs WHERE kind = 'campaign_send' AND status IN ('queued', 'running')"
                      " AND json_extract(args, '$.campaign_id') = ?", [int(campaign_id)]).fetchone()
    return dt.datetime.fromisoformat(row[0]).astimezone(JST) if row and row[0] else None


NO_SENDER_ADDRESS = ("メールの送信元アドレスが設定されていないか正しくないため、送信できません"
                     "（「送信設定」ページの「送信元メールアドレス」で設定します）。")


def complete_sender(ops: sqlite3.Connection, campaign_id: int, from_addr: str, from_name: str = "") -> bool:
    """Whether the campaign's stored sender has a usable address; a missing one (and a missing name) is filled from the
    current settings when those are usable.  Campaigns frozen without an address (a scenario recorded before
    ``SMTP_FROM`` was set, a send of an earlier version) take it here instead of failing inside the mail library."""
    row = ops.execute("SELECT sender FROM send_campaigns WHERE campaign_id = ?", [campaign_id]).fetchone()
    sender = json.loads(row[0] or "{}") if row else {}
    if sender_address_ok(sender.get("from_addr", "")):
        return True
    if not sender_address_ok(from_addr):
        return False
    filled = {**sender, "from_addr": from_addr}
    if not filled.get("from_name") and from_name:
        filled["from_name"] = from_name
    with opsdb.transaction(ops):
        ops.execute("UPDATE send_campaigns SET sender = ? WHERE campaign_id = ?", [json.dumps(filled, ensure_ascii=False), campaign_id])
    return True


def sender_address_ok(address: str | None) -> bool:
    """Whether the e-mail sender address (``SMTP_FROM``) can stand in a From header."""
    from crm_core.messaging.channels.email import EMAIL_RE

    return bool(address and EMAIL_RE.match(address))


def readiness(channel: str, settings: Any, secrets: Any = None, environ: Any = None) -> list[str]:
    """What stops a live send of ``channel`` with these send settings (Japanese, empty when nothing does).

    The same checks the sender makes before it pauses (missing LINE token,
    SMTP server, or the signed one-click unsubscribe link RFC 8058 needs),
    shown to the marketer before approval.
    """
    from crm_core.messaging.delivery import live_setting

    problems = []
    if channel in MIXED:
        return [p for ch in choice.modes_of(channel) for p in readiness(ch, settings, secrets, environ)]
    if channel == "line" and not settings.line_token:
        problems.append("LINEのチャネルアクセストークンが設定されていないため、送信できません（「送信設定」ページで設定します）。")
    if channel == "email":
        if not settings.smtp_host:
            problems.append("メールの送信サーバー（SMTP）が設定されていないため、送信できません（「送信設定」ページで設定します）。")
        if not sender_address_ok(settings.smtp_from):
            problems.append(NO_SENDER_ADDRESS)
        secret = live_setting("CRM_UNSUBSCRIBE_SECRET", secrets, environ)
        public = live_setting("CRM_PUBLIC_URL", secrets, environ)
        if len(secret) < 16 or not public.startswith("https://"):
            problems.append("配信停止リンク（ワンクリック）の設定がないため、本番のメールは送れません（送信は一時停止します）。"
                            "運用担当の方に CRM_UNSUBSCRIBE_SECRET と https で始まる CRM_PUBLIC_URL の設定を依頼してください。")
    return problems
