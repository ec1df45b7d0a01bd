"""Plan, dry-run and run scenarios for a day: each (scenario, step, customer, trigger event) at most once.

A day's work, in this order (the dry run does exactly the same reads and stops before writing):

1. trigger events of each enabled scenario's steps (:mod:`crm_core.scenarios.triggers`, DuckDB SQL);
2. events already recorded for that step (``scenario_occurrences``) are dropped;
3. exit (bought again since the trigger → ``exited``), the step's condition
   (a segment rule on the send day → ``not_matched``);
4. the channel and address (LINE, e-mail, or LINE else e-mail); opt-outs
   (:mod:`crm_core.messaging.consent`) and Rakuten relay addresses → ``suppressed``;
   the shop's global holdout → ``global_holdout``; the scenario's holdout (stable
   hash, recorded once per customer and trigger) → ``held_out``;
5. per customer and day the most important scenario first (priority) up to the
   daily cap → else ``daily_cap``; the 7-day frequency cap over every send of the
   ledger (:func:`crm_core.messaging.ledger.recently_sent`) → ``capped``;
6. (real run) in one ``BEGIN IMMEDIATE`` transaction of the operations store:
   ``INSERT OR IGNORE`` the occurrence rows (UNIQUE), and for each newly inserted
   ``queued`` row its send-ledger row (state ``queued``, rendered content, LINE
   batch with a retry key, e-mail Message-ID) in the ledger campaign of
   (scenario, step, day, channel);
7. (real run) delivery of every due scenario campaign through the live-send
   sender (:func:`crm_core.results.live.run`: quiet hours, one sender per
   campaign, LINE retry keys, e-mail resume).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from crm_core import clock, opsdb
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.messaging import audit, choice
from crm_core.messaging import ledger as L
from crm_core.messaging import templates as T
from crm_core.messaging.delivery import UNSUBSCRIBE_SENTINEL
from crm_core.scenarios import definitions as D
from crm_core.scenarios import triggers

JST = ZoneInfo("Asia/Tokyo")
CAP_WINDOW_DAYS = 7
CATCH_UP_DAYS = 1
"""A step also takes trigger events this many days older than its own day that no run has recorded yet."""
SAMPLES = 3
MISSING = {"line": "LINEの送信設定（チャネルアクセストークン）がないため、送信を待っています。",
           "email": "メールの送信設定（SMTPサーバーと配信停止リンクの設定）がないため、送信を待っています。"}


@dataclasses.dataclass
class Plan:
    day: dt.date
    rows: list[dict[str, Any]]  # scenario, step, customer_id, trigger_key, trigger_day, state, channel, address
    scenarios: dict[str, D.Scenario]

    def counts(self) -> list[dict[str, Any]]:
        """Per scenario and step: how many customers per state."""
        out: dict[tuple[str, int], dict[str, Any]] = {}
        for name, s in self.scenarios.items():
            for i, step in enumerate(s.steps):
                out[(name, i)] = {"scenario": name, "title": s.title, "step": i + 1, "day": step.day, "template": step.template,
                                  **dict.fromkeys(D.STATES, 0)}
        for r in self.rows:
            out[(r["scenario"], r["step"])][r["state"]] += 1
        return [v for v in out.values()]

    def keys(self) -> set[tuple]:
        return {(r["scenario"], r["step"], r["customer_id"], r["trigger_key"], r["state"], r["channel"]) for r in self.rows}


def _hash_share(*parts: str) -> float:
    h = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def in_holdout(scenario: str, customer_id: str, trigger_key: str, share: float) -> bool:
    """The stable holdout draw of one (scenario, customer, trigger event)."""
    return _hash_share("scenario-holdout", scenario, customer_id, trigger_key) < share


def _exited(store: Store, evs: list[dict[str, Any]], day: dt.date) -> set[tuple[str, str]]:
    """(customer, trigger key) with a counted order after the trigger, before the end of the day."""
    if not evs:
        return set()
    rows = store.fetchall(
        "WITH e AS (SELECT unnest($c) AS customer_id, unnest($k) AS trigger_key, unnest($t) AS trigger_at)"
        " SELECT DISTINCT e.customer_id, e.trigger_key FROM e JOIN orders o ON o.customer_id = e.customer_id"
        " WHERE NOT coalesce(o.cancelled, FALSE) AND o.ordered_at > e.trigger_at AND o.ordered_at < $end",
        {"c": [e["customer_id"] for e in evs], "k": [e["trigger_key"] for e in evs],
         "t": [e["trigger_at"] for e in evs], "end": dt.datetime.combine(day + dt.timedelta(days=1), dt.time())})
    return {(r[0], r[1]) for r in rows}


def _matching(store: Store, rule: dict[str, Any], ids: Sequence[str], day: dt.date) -> set[str]:
    from crm_core.audience import segments

    c = segments.compile_rule(store, rule, as_of=day, prefix="c")
    sql = ("SELECT cm.customer_id FROM customer_model AS cm WHERE cm.customer_id IN (SELECT unnest($ids)) AND ("  # noqa: S608
           + c.where + ")")
    return {r[0] for r in store.fetchall(sql, {**c.params, "ids": list(ids)})}


def _choose(person: dict[str, Any] | None, wanted: str, blocked: dict[str, set[str]]) -> tuple[str, str | None, str]:
    """(state, channel, address) for one customer and a step's channel (:func:`crm_core.messaging.choice.choose`)."""
    c = choice.choose(person, wanted, blocked)
    return ("queued", c.channel, c.address) if c.state == "queued" else ("suppressed", None, "")


def candidates(store: Store, ops: sqlite3.Connection, day: dt.date, scenarios: Sequence[D.Scenario]) -> list[dict[str, Any]]:
    """Steps 1–4: every new (scenario, step, customer, trigger event) of the day with its state before the caps."""
    from crm_core.results import campaigns as C

    blocked = choice.blocked(ops)
    rows: list[dict[str, Any]] = []
    for s in scenarios:
        for i, step in enumerate(s.steps):
            if not step.enabled:
                continue  # a step switched off on the scenario page: nobody enters it (nothing is recorded)
            # the step's event day, and CATCH_UP_DAYS before it for events the last runs could not see yet
            # (orders imported a day late, a worker that was down); the latest event per customer wins
            latest: dict[str, dict[str, Any]] = {}
            for back in range(CATCH_UP_DAYS, -1, -1):
                event_day = day - dt.timedelta(days=step.day + back)
                for e in triggers.events(store, s, event_day, day):
                    latest[e["customer_id"]] = e
            evs = list(latest.values())
            if not evs:
                continue
            done = {(r[0], r[1]) for r in ops.execute(
                "SELECT customer_id, trigger_key FROM scenario_occurrences WHERE scenario = ? AND step = ?"
                " AND customer_id IN (SELECT value FROM json_each(?))",
                [s.name, i, json.dumps(sorted({e["customer_id"] for e in evs}))])}
            evs = [e for e in evs if (e["customer_id"], e["trigger_key"]) not in done]
            exited = _exited(store, evs, day) if step.exit == "ordered" else set()
            ids = [e["customer_id"] for e in evs]
            matching = _matching(store, step.condition, ids, day) if step.condition else set(ids)
            people = choice.people(store, ids)
            _kept, global_held = C.split_global_holdout(store, ids)
            global_held_set = set(global_held)
            for e in evs:
                cid, key = e["customer_id"], e["trigger_key"]
                row = {"scenario": s.name, "step": i, "customer_id": cid, "trigger_key": key,
                       "trigger_day": _iso_day(e["trigger_day"]), "priority": s.priority, "channel": None, "address": ""}
                if (cid, key) in exited:
                    row["state"] = "exited"
                elif cid not in matching:
                    row["state"] = "not_matched"
                else:
                    state, channel, address = _choose(people.get(cid), step.channel, blocked)
                    row.update(state=state, channel=channel, address=address)
                    if state == "queued" and cid in global_held_set:
                        row.update(state="global_holdout")
                    elif state == "queued":
                        row["holdout_share"] = s.holdout
                rows.append(row)
    return rows


def _iso_day(value: Any) -> str:
    return (value.date() if isinstance(value, dt.datetime) else value).isoformat()


def assign(ops: sqlite3.Connection, day: dt.date, rows: list[dict[str, Any]], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Step 5 (reads the operations store): holdout (recorded or drawn), priority + daily cap, frequency cap."""
    out = [dict(r) for r in rows]
    live = [r for r in out if r["state"] == "queued"]
    recorded = {}
    if live:
        for r in ops.execute("SELECT scenario, customer_id, trigger_key, held_out FROM scenario_holdout WHERE customer_id IN"
                             " (SELECT value FROM json_each(?))", [json.dumps(sorted({r["customer_id"] for r in live}))]):
            recorded[(r[0], r[1], r[2])] = bool(r[3])
    for r in live:
        key = (r["scenario"], r["customer_id"], r["trigger_key"])
        held = recorded.get(key)
        if held is None:
            held = in_holdout(r["scenario"], r["customer_id"], r["trigger_key"], r["holdout_share"])
            r["new_holdout"] = True
        r["held_out"] = held
        if held:
            r["state"] = "held_out"
    today = {c: int(n) for c, n in ops.execute(
        "SELECT customer_id, count(*) FROM scenario_occurrences WHERE day = ? AND state = 'queued' GROUP BY customer_id",
        [day.isoformat()])}
    since = dt.datetime.combine(day, dt.time(), tzinfo=JST) - dt.timedelta(days=CAP_WINDOW_DAYS)
    recent = L.recently_sent(ops, since)
    # scenario messages handed to the ledger but not sent yet count against the frequency cap too
    pending = {c: int(n) for c, n in ops.execute(
        "SELECT l.customer_id, count(*) FROM send_ledger_now l JOIN scenario_batches b USING (campaign_id)"
        " WHERE l.row_state IN ('queued', 'sending') AND l.state IN ('queued', 'sending') GROUP BY l.customer_id")}
    daily_cap, freq_cap = int(settings["daily_cap"]), int(settings["frequency_cap"])
    added: dict[str, int] = {}
    for r in sorted((r for r in out if r["state"] == "queued"), key=lambda r: (r["priority"], r["scenario"], r["step"])):
        cid = r["customer_id"]
        if daily_cap and today.get(cid, 0) + added.get(cid, 0) >= daily_cap:
            r["state"] = "daily_cap"
        elif freq_cap and recent.get(cid, 0) + pending.get(cid, 0) + added.get(cid, 0) >= freq_cap:
            r["state"] = "capped"
        else:
            added[cid] = added.get(cid, 0) + 1
    for r in out:
        if r["state"] != "queued":
            r["channel"] = r["channel"] if r["state"] in ("held_out", "daily_cap", "capped") else None
    return out


def _enabled(ops: sqlite3.Connection, names: Sequence[str] | None) -> list[D.Scenario]:
    all_ = D.list_scenarios(ops)
    if names:
        wanted = set(names)
        for n in wanted:
            D.get(ops, n)
        return [s for s in all_ if s.name in wanted]
    return [s for s in all_ if s.enabled]


def settings(store: Store, ops: sqlite3.Connection) -> dict[str, Any]:
    """The caps of scenario sends: ``daily_cap`` and ``quiet_hours`` (scenario settings) and ``frequency_cap``,
    the shop's one 7-day limit shared with live sends and the calendar (:func:`crm_core.results.live.shop_frequency_cap`)."""
    from crm_core.results import live

    return {**D.settings(ops), "frequency_cap": live.shop_frequency_cap(store)}


def set_caps(store: Store, ops: sqlite3.Connection, *, daily_cap: Any, frequency_cap: Any, actor: str) -> dict[str, Any]:
    """Change the per-customer daily cap of scenarios and the shop's 7-day limit (validated, audited with the user)."""
    from crm_core.planning import frequency

    before = settings(store, ops)
    try:
        freq = int(frequency_cap)
    except (TypeError, ValueError):
        raise InputError("7日間の上限は数字で入力してください。", f"bad frequency cap {frequency_cap!r}") from None
    with opsdb.transaction(ops):
        D.set_setting(ops, "daily_cap", daily_cap)
        frequency.set_max_per_week(store, freq)
        after = settings(store, ops)
        audit.log(ops, actor, "scenario_caps", None, before={k: before[k] for k in ("daily_cap", "frequency_cap")},
                  after={k: after[k] for k in ("daily_cap", "frequency_cap")})
    return after


EDITABLE_STEP = ("day", "slot", "channel", "template", "coupon", "enabled")


def _terms(spec: dict[str, Any]) -> dict[str, Any]:
    """A coupon's terms with their defaults (what decides whether the coupon itself must change)."""
    return {"name": str(spec.get("name", "")).strip(), "kind": spec.get("kind", "yen"), "value": float(spec.get("value", 0) or 0),
            "min_purchase": float(spec.get("min_purchase", 0) or 0)}


def _comparable(s: D.Scenario) -> dict[str, Any]:
    out = s.to_dict()
    for st in out["steps"]:
        if st.get("coupon"):
            st["coupon"] = {**_terms(st["coupon"]), "valid_days": st["coupon"].get("valid_days")}
    return out


def update(store: Store, ops: sqlite3.Connection, name: str, changes: dict[str, Any], actor: str) -> D.Scenario:
    """Edit a scenario from the page: ``priority``, ``holdout`` and per step ``steps[i]`` with :data:`EDITABLE_STEP`.

    Validated (Japanese messages), stored as data (the definition) and audited with the user and
    what changed.  A step whose coupon terms change gets a new coupon (the codes already sent keep
    theirs); a scenario that is on creates it at once.
    """

    before = D.get(ops, name)
    data = before.to_dict()
    for key in ("priority", "holdout"):
        if key in changes:
            data[key] = changes[key]
    new_steps = changes.get("steps")
    if new_steps is not None:
        if len(new_steps) != len(data["steps"]):
            raise InputError("ステップの数は変えられません。", "step count changed")
        for old, new, prev in zip(data["steps"], new_steps, before.steps):
            for key in EDITABLE_STEP:
                if key in new:
                    old[key] = new[key]
            if old.get("coupon"):
                # the same terms keep the coupon (valid_days is per code); new terms need a new coupon
                terms = _terms(old["coupon"])
                same = bool(prev.coupon) and terms == _terms(prev.coupon)
                old["coupon"] = {**terms, **({"valid_days": int(old["coupon"]["valid_days"])} if old["coupon"].get("valid_days") else {}),
                                 **({"coupon_id": prev.coupon["coupon_id"]} if same and prev.coupon.get("coupon_id") else {})}
    known = {t.key for t in T.list_templates(store)}
    for i, st in enumerate(data["steps"]):
        if st["template"] not in known:
            raise InputError(f"ステップ{i + 1}のテンプレート「{st['template']}」はありません。メッセージのページで作るか、一覧から選んでください。",
                             "unknown template")
    scenario = D.parse(data)
    scenario.enabled = before.enabled
    was, now_ = _comparable(before), _comparable(scenario)
    changed = {k: {"before": v, "after": now_[k]} for k, v in was.items() if now_[k] != v}
    if not changed:
        return before
    with opsdb.transaction(ops):
        D.save(ops, scenario, actor)
        audit.log(ops, actor, "scenario_edit", None, scenario=name, changes=changed)
    if scenario.enabled:
        ensure_coupons(store, ops, scenario, actor)
    return D.get(ops, name)


def plan(store: Store, ops: sqlite3.Connection, day: dt.date, *, names: Sequence[str] | None = None) -> Plan:
    """What a run for ``day`` would do now (no writes). ``names``: these scenarios even when switched off."""
    scenarios = _enabled(ops, names)
    rows = assign(ops, day, candidates(store, ops, day, scenarios), settings(store, ops))
    return Plan(day, rows, {s.name: s for s in scenarios})


# -- rendering -----------------------------------------------------------------------------------------------
def _coupon(store: Store, step: D.Step) -> Any:
    if not step.coupon or not step.coupon.get("coupon_id"):
        return None
    from crm_core.messaging import coupons

    return coupons.get_coupon(store, step.coupon["coupon_id"])


def coupon_valid_to(step: D.Step, send_at: dt.datetime) -> dt.datetime | None:
    """The expiry of the codes a step issues: the end of the ``valid_days``-th day after the send (None without)."""
    days = (step.coupon or {}).get("valid_days")
    if not days:
        return None
    from crm_core.messaging import coupons

    return coupons.valid_to_after(send_at, int(days))


def render_step(store: Store, step: D.Step, channel: str, customer_ids: Sequence[str], coupon: Any, shop: T.ShopProfile,
                utm: str, valid_to: dt.datetime | None = None) -> dict[str, T.Rendered]:
    """The messages of one step for many customers (set-based, the live sender's renderer; codes included when issued).

    ``valid_to``: the expiry the step's codes will have for this send (shown before they are issued, in a dry run).
    """
    from crm_core.messaging import coupons
    from crm_core.results import live

    return live.render_many(store, step.template, channel, customer_ids, utm=utm, shop=shop, coupon=coupon,
                            expiry=coupons.expiry_label(valid_to) if valid_to is not None else "")


def _utm(name: str, step: int) -> str:
    return f"scenario-{name}-{step + 1}"


def dry_run(store: Store, ops: sqlite3.Connection, day: dt.date, *, names: Sequence[str] | None = None,
            samples: int = SAMPLES) -> dict[str, Any]:
    """「この日だれに何が届くか」: counts per scenario and step, sample customers and their rendered messages."""
    p = plan(store, ops, day, names=names)
    shop = T.shop_profile(store)
    caps = settings(store, ops)
    out_steps = []
    for c in p.counts():
        s = p.scenarios[c["scenario"]]
        step = s.steps[c["step"] - 1]
        coupon = _coupon(store, step)
        valid_to = coupon_valid_to(step, _send_at(day, step.slot, caps["quiet_hours"]))
        picked = [r for r in p.rows if r["scenario"] == s.name and r["step"] == c["step"] - 1 and r["state"] == "queued"][:samples]
        c["samples"] = []
        rendered_by = {ch: render_step(store, step, ch, [r["customer_id"] for r in picked if r["channel"] == ch], coupon, shop,
                                       _utm(s.name, c["step"] - 1), valid_to) for ch in {r["channel"] for r in picked}}
        for r in picked:
            rendered = rendered_by[r["channel"]][r["customer_id"]]
            c["samples"].append({"customer_id": r["customer_id"], "channel": r["channel"], "trigger_key": r["trigger_key"],
                                 "subject": rendered.subject, "text": rendered.text if r["channel"] == "email" else
                                 "\n".join(m.get("text", json.dumps(m, ensure_ascii=False)) for m in rendered.line_messages)})
        out_steps.append(c)
    return {"day": day.isoformat(), "steps": out_steps, "rows": p.rows,
            "total": sum(1 for r in p.rows if r["state"] == "queued")}


# -- running ---------------------------------------------------------------------------------------------------
def _send_at(day: dt.date, slot: str, quiet: str) -> dt.datetime:
    from crm_core.results import live

    hour, minute = (int(x) for x in slot.split(":"))
    return live.next_allowed(dt.datetime.combine(day, dt.time(hour, minute), tzinfo=JST), live.parse_quiet_hours(quiet))


def _campaign_for(store: Store, ops: sqlite3.Connection, s: D.Scenario, step: int, day: dt.date, channel: str,
                  settings: dict[str, Any], now: dt.datetime, sender: dict[str, str]) -> int:
    """The ledger campaign of (scenario, step, day, channel), created on first use (inside the caller's transaction).

    ``sender``: the From of its mails (``from_addr``, ``from_name``), as a live campaign stores it at prepare.
    """
    row = ops.execute("SELECT campaign_id FROM scenario_batches WHERE scenario = ? AND step = ? AND day = ? AND channel = ?",
                      [s.name, step, day.isoformat(), channel]).fetchone()
    if row is not None:
        return int(row[0])
    from crm_core.results import live

    campaign_id = live.next_campaign_id(store, ops, "scenario", now)
    st = s.steps[step]
    ops.execute(
        "INSERT INTO send_campaigns (campaign_id, name, channel, template, coupon_id, holdout, send_at, quiet_hours, frequency_cap,"
        " status, created_by, created_at, approved_by, approved_at, prepared_at, sender)"
        " VALUES (?, ?, ?, ?, ?, 0, ?, ?, 0, 'approved', 'scenario', ?, 'scenario', ?, ?, ?)",
        [campaign_id, f"シナリオ「{s.title}」ステップ{step + 1}（{day:%Y-%m-%d}）", channel, st.template,
         (st.coupon or {}).get("coupon_id"), _send_at(day, st.slot, settings["quiet_hours"]).isoformat(),
         settings["quiet_hours"], L.iso(now), L.iso(now), L.iso(now), json.dumps(sender, ensure_ascii=False)])
    ops.execute("INSERT INTO scenario_batches VALUES (?, ?, ?, ?, ?)", [s.name, step, day.isoformat(), channel, campaign_id])
    return campaign_id


def _write_ledger(ops: sqlite3.Connection, campaign_id: int, channel: str, rows: list[tuple[str, str, Any]], from_addr: str,
                  now: dt.datetime) -> None:
    """Ledger rows (state queued) of newly queued recipients with their contents (inside the caller's transaction).

    The same ledger writer as live campaigns (:func:`crm_core.messaging.ledger.write_rows`); a
    scenario adds a few recipients to its day's campaign, so a finished campaign is opened again.
    """
    cache: dict[str, int] = {}
    L.write_rows(ops, campaign_id, channel,
                 [{"customer_id": cid, "address": address, "state": "queued", "variant": "A",
                   "content_id": L.store_content(ops, campaign_id, body, cache)} for cid, address, body in rows],
                 from_addr=from_addr, now=now)
    ops.execute("UPDATE send_campaigns SET status = CASE WHEN status IN ('done', 'sending') THEN 'approved' ELSE status END,"
                " finished_at = NULL WHERE campaign_id = ?", [campaign_id])


def record(store: Store, ops: sqlite3.Connection, day: dt.date, *, names: Sequence[str] | None = None,
           from_addr: str = "", now: dt.datetime | None = None) -> dict[str, Any]:
    """Steps 1–6: decide the day and write occurrences + ledger rows once. Returns counts of what was newly recorded."""
    now = now or clock.now_utc()
    scenarios = _enabled(ops, names)
    by_name = {s.name: s for s in scenarios}
    pre = candidates(store, ops, day, scenarios)
    # coupons (DuckDB) and bodies are prepared before the operations transaction; issuing codes is idempotent
    caps = settings(store, ops)
    guess = assign(ops, day, pre, caps)
    shop = dataclasses.replace(T.shop_profile(store), unsubscribe_url=UNSUBSCRIBE_SENTINEL)
    bodies: dict[tuple[str, int, str, str], Any] = {}
    for (name, i), group in _groups(r for r in guess if r["state"] == "queued").items():
        step = by_name[name].steps[i]
        coupon = _coupon(store, step)
        send_at = _send_at(day, step.slot, caps["quiet_hours"])
        if coupon is not None and coupon.code_mode == "unique":
            from crm_core.messaging import coupons

            days = (step.coupon or {}).get("valid_days")
            coupons.issue_unique_codes(store, coupon.coupon_id, [r["customer_id"] for r in group],
                                       valid_days=int(days) if days else None, sent_at=send_at)
        for channel in {r["channel"] for r in group}:
            members = [r for r in group if r["channel"] == channel]
            rendered_by = render_step(store, step, channel, [r["customer_id"] for r in members], coupon, shop, _utm(name, i))
            for r in members:
                rendered = rendered_by[r["customer_id"]]
                bodies[(name, i, r["customer_id"], r["trigger_key"])] = rendered.line_messages if channel == "line" else {
                    "subject": rendered.subject, "preheader": rendered.preheader, "text": rendered.text, "html": rendered.html}
    inserted: dict[str, int] = {}
    with opsdb.transaction(ops):
        final = assign(ops, day, pre, caps)  # again under the write lock: another run may have committed meanwhile
        ledger: dict[tuple[str, int, str], list[tuple[str, str, Any]]] = {}
        for r in final:
            if r.get("new_holdout") and r["state"] in ("held_out", "queued", "daily_cap", "capped"):
                ops.execute("INSERT OR IGNORE INTO scenario_holdout VALUES (?, ?, ?, ?, ?, ?)",
                            [r["scenario"], r["customer_id"], r["trigger_key"], int(r["held_out"]), r["holdout_share"], L.iso(now)])
            body = bodies.get((r["scenario"], r["step"], r["customer_id"], r["trigger_key"]))
            state = r["state"]
            if state == "queued" and body is None:
                continue  # became sendable only under the lock (another run sent something else): a later run decides
            cur = ops.execute("INSERT OR IGNORE INTO scenario_occurrences (scenario, step, customer_id, trigger_key, trigger_day, day, state,"
                              " channel, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                              [r["scenario"], r["step"], r["customer_id"], r["trigger_key"], r["trigger_day"], day.isoformat(), state,
                               r["channel"], L.iso(now)])
            if cur.rowcount != 1:
                continue
            inserted[state] = inserted.get(state, 0) + 1
            if state == "queued":
                ledger.setdefault((r["scenario"], r["step"], r["channel"]), []).append((r["customer_id"], r["address"], body))
        for (name, i, channel), members in ledger.items():
            campaign_id = _campaign_for(store, ops, by_name[name], i, day, channel, caps, now,
                                        {"from_addr": from_addr, "from_name": shop.from_name()})
            _write_ledger(ops, campaign_id, channel, members, from_addr, now)
            ops.executemany("UPDATE scenario_occurrences SET campaign_id = ? WHERE scenario = ? AND step = ? AND customer_id = ?"
                            " AND day = ?", [(campaign_id, name, i, m[0], day.isoformat()) for m in members])
    for s in scenarios:
        if s.trigger["type"] in ("segment", "rank_up", "rank_down"):
            triggers.advance_watch(store, s, day)
    return inserted


def _groups(rows: Any) -> dict[tuple[str, int], list[dict[str, Any]]]:
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault((r["scenario"], r["step"]), []).append(r)
    return out


def deliver_due(ops: sqlite3.Connection, *, line: Any = None, smtp: Any = None, unsubscribe: Any = None, from_addr: str = "",
                from_name: str = "", clock: Callable[[], dt.datetime] = clock.now_utc) -> list[dict[str, Any]]:
    """Send every scenario campaign that is due (quiet hours and send slot respected) through the live sender.

    ``from_addr`` (``SMTP_FROM``) and ``from_name`` complete the sender of a mail campaign recorded while it was not set;
    without a usable address the mails wait in the ledger, like mails without SMTP settings.
    """
    from crm_core.results import live

    now = clock()
    out = []
    rows = ops.execute("SELECT b.campaign_id, c.status, c.send_at, c.channel FROM scenario_batches b JOIN send_campaigns c"
                       " USING (campaign_id) WHERE c.status IN ('approved', 'sending', 'waiting') ORDER BY b.campaign_id").fetchall()
    for cid, _status, send_at, channel in rows:
        if dt.datetime.fromisoformat(send_at) > now:
            continue
        if (channel == "line" and line is None) or (channel == "email" and (smtp is None or unsubscribe is None)):
            # not configured: the rows wait in the ledger (never paused, never lost) until the settings exist
            out.append({"campaign_id": int(cid), "status": "approved", "message": MISSING[channel], "counts": L.counts(ops, int(cid))})
            continue
        if channel == "email" and not live.complete_sender(ops, int(cid), from_addr, from_name):
            out.append({"campaign_id": int(cid), "status": "approved", "message": live.NO_SENDER_ADDRESS, "counts": L.counts(ops, int(cid))})
            continue
        outcome = live.run(ops, int(cid), line=line, smtp=smtp, unsubscribe=unsubscribe, from_addr=from_addr, clock=clock)
        out.append({"campaign_id": int(cid), **outcome.to_dict()})
    return out


def run_scenarios(store: Store, ops: sqlite3.Connection, day: dt.date | None = None, *, now: dt.datetime | None = None,
                  line: Any = None, smtp: Any = None, unsubscribe: Any = None, from_addr: str = "",
                  names: Sequence[str] | None = None) -> dict[str, Any]:
    """The worker's entry point: record the day once, then deliver what is due.

    ``now`` (aware) is the injectable clock; ``day`` defaults to its JST date.
    Safe to call any number of times and concurrently (occurrences are UNIQUE,
    the ledger sends each row once).
    """
    now = now or clock.now_utc()
    if now.tzinfo is None:
        raise InputError("時刻はタイムゾーン付きで指定してください。", "naive now")
    day = day or now.astimezone(JST).date()
    recorded = record(store, ops, day, names=names, from_addr=from_addr, now=now)
    sent = deliver_due(ops, line=line, smtp=smtp, unsubscribe=unsubscribe, from_addr=from_addr,
                       from_name=T.shop_profile(store).from_name(), clock=lambda: now)
    return {"day": day.isoformat(), "recorded": recorded, "deliveries": sent,
            "summary": f"{day:%Y-%m-%d} のシナリオ: 新しく送信 {recorded.get('queued', 0)}件・比較用 {recorded.get('held_out', 0)}件"}


def ensure_coupons(store: Store, ops: sqlite3.Connection, scenario: D.Scenario, actor: str = "") -> D.Scenario:
    """Create the unique-code coupons a scenario's steps ask for (once) and store their ids in the definition."""
    from crm_core.messaging import coupons

    changed = False
    for step in scenario.steps:
        if step.coupon and not step.coupon.get("coupon_id"):
            spec = step.coupon
            c = coupons.Coupon(name=spec["name"], kind=spec.get("kind", "yen"), value=float(spec.get("value", 0)),
                               min_purchase=float(spec.get("min_purchase", 0)), code_mode="unique", channel="line")
            step.coupon = {**spec, "coupon_id": coupons.create_coupon(store, c)}
            changed = True
    if changed:
        D.save(ops, scenario, actor)
    return scenario


def enable(store: Store, ops: sqlite3.Connection, name: str, actor: str = "", *, include_current: bool = False,
           day: dt.date | None = None) -> D.Scenario:
    """Switch a scenario on (its coupons are created first; the worker's daily run is scheduled).

    A segment trigger enters only customers who enter the segment after ``day`` (today): the members of
    today are recorded as already there.  ``include_current``: they enter too, on the next run (all at once).
    """

    scenario = ensure_coupons(store, ops, D.get(ops, name), actor)
    if scenario.trigger["type"] == "segment" and not scenario.enabled:
        if include_current:
            triggers.include_current(store, scenario)
        else:
            triggers.baseline_watch(store, scenario, day or clock.today())
    out = D.set_enabled(ops, name, True, actor)
    audit.log(ops, actor or "unknown", "scenario_on", None, scenario=name, include_current=bool(include_current))
    path = ops.execute("PRAGMA database_list").fetchone()[2]
    if path:
        D.ensure_schedule(path)
    return out


def disable(ops: sqlite3.Connection, name: str, actor: str = "") -> D.Scenario:

    out = D.set_enabled(ops, name, False, actor)
    audit.log(ops, actor or "unknown", "scenario_off", None, scenario=name)
    return out
