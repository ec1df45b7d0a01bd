"""Trigger events in DuckDB SQL, set-based over ``orders`` / ``customer_model`` (never a loop over customers).

:func:`events` answers "which (customer, trigger event) happened on day E"
for one scenario's trigger.  A step ``day`` after the trigger fires on run
day D for the events of E = D − day.  Every event has a stable key (the
order, the subscription delivery, the due date, the year of the birthday …)
so that importing the same orders again yields the same keys.

Only counted orders (not cancelled, with a customer) placed before the end
of the evaluated day are read, so a dry run for a past day sees what was
known that day.

Segment and rank triggers need to know what was true before: the table
``scenario_watch`` (DuckDB) keeps, per scenario and customer, the current
value (``in`` for a segment, the rank name) and since when; only a real run
moves it forward (:func:`advance_watch`), after its sends are committed.
Switching a segment scenario on records today's members as already there
(``prev = value``, :func:`baseline_watch`), so only customers who enter the
segment afterwards enter the scenario, unless the person switching it on
asks to include the current members (:func:`include_current`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb

from crm_core.db import Store

WATCH_DDL = """CREATE TABLE IF NOT EXISTS scenario_watch (
    scenario VARCHAR NOT NULL, customer_id VARCHAR NOT NULL, value VARCHAR, prev VARCHAR, since DATE NOT NULL,
    PRIMARY KEY (scenario, customer_id))"""

_COUNTED = "NOT coalesce(o.cancelled, FALSE) AND o.customer_id IS NOT NULL AND o.ordered_at < $end"

# order-based triggers: (customer_id, trigger_key, trigger_day, trigger_at) of orders placed on $event
_ORDERS = """
    WITH counted AS (
        SELECT o.source, o.order_id, o.customer_id, o.ordered_at, o.subscription_id, o.subscription_seq,
               row_number() OVER (PARTITION BY o.customer_id ORDER BY o.ordered_at, o.source, o.order_id) AS nth
        FROM orders AS o WHERE """ + _COUNTED + """
    )
    SELECT customer_id, {key} AS trigger_key, CAST(ordered_at AS DATE) AS trigger_day, ordered_at AS trigger_at
    FROM counted c
    WHERE CAST(ordered_at AS DATE) = $event AND {where}
    QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC, source DESC, order_id DESC) = 1
"""  # noqa: S608 - fixed fragments of this module
_ORDER_KEY = "'order:' || source || ':' || order_id"
_HAS_PRODUCT = """EXISTS (SELECT 1 FROM order_lines l WHERE l.source = c.source AND l.order_id = c.order_id
                          AND list_contains($products, l.product_id))"""
_HAS_CATEGORY = """EXISTS (SELECT 1 FROM order_lines l
                           LEFT JOIN (SELECT product_id, arg_max(category, coalesce(import_id, 0)) AS category FROM products
                                      WHERE product_id IS NOT NULL GROUP BY product_id) m ON m.product_id = l.product_id
                           WHERE l.source = c.source AND l.order_id = c.order_id
                             AND list_contains($categories, coalesce(m.category, l.category)))"""

_NO_ORDER = """
    WITH days AS (
        SELECT DISTINCT o.customer_id, CAST(o.ordered_at AS DATE) AS d FROM orders AS o WHERE """ + _COUNTED + """
    ), gaps AS (
        SELECT customer_id, d, lead(d) OVER (PARTITION BY customer_id ORDER BY d) AS next_d FROM days
    )
    SELECT customer_id, 'lapse:' || CAST($days AS VARCHAR) || ':' || CAST(d AS VARCHAR) AS trigger_key,
           $event AS trigger_day, CAST(d AS TIMESTAMP) + INTERVAL 1 DAY AS trigger_at
    FROM gaps
    WHERE d + CAST($days AS INTEGER) = $event AND (next_d IS NULL OR next_d > $event)
"""  # noqa: S608 - fixed fragments

_BIRTHDAY = """
    SELECT customer_id, 'birthday:' || CAST(year($event) AS VARCHAR) AS trigger_key, $event AS trigger_day,
           CAST($event AS TIMESTAMP) AS trigger_at
    FROM customer_model
    WHERE coalesce(birthday_month, month(birthday)) = month($event) AND day($event) = $dom
"""


def _end(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time())


def _rows(store: Store, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    cur = store.execute(sql, params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def events(store: Store, scenario: Any, event_day: dt.date, run_day: dt.date | None = None) -> list[dict[str, Any]]:
    """Trigger events of ``scenario`` on ``event_day`` (orders known up to the end of ``run_day``).

    Returns dicts with ``customer_id``, ``trigger_key``, ``trigger_day`` and ``trigger_at``.
    """
    t = scenario.trigger
    kind = t["type"]
    run_day = run_day or event_day
    p: dict[str, Any] = {"event": event_day, "end": _end(run_day)}
    if not store.has_table("orders"):
        return []
    if kind in ("first_order", "any_order", "product_order", "category_order", "subscription_delivery"):
        key, where = _ORDER_KEY, "TRUE"
        if kind == "first_order":
            where = "nth = 1"
        elif kind == "product_order":
            where, p["products"] = _HAS_PRODUCT, [str(x) for x in t["products"]]
        elif kind == "category_order":
            where, p["categories"] = _HAS_CATEGORY, [str(x) for x in t["categories"]]
        elif kind == "subscription_delivery":
            key = "'sub:' || coalesce(subscription_id, customer_id) || ':' || CAST(subscription_seq AS VARCHAR)"
            where, p["number"] = "subscription_seq = CAST($number AS INTEGER)", int(t["number"])
        return _rows(store, _ORDERS.format(key=key, where=where), p)
    if kind == "no_order":
        p["days"] = int(t["days"])
        return _rows(store, _NO_ORDER, p)
    if kind == "birthday_month":
        if not store.has_table("customer_model"):
            return []
        return _rows(store, _BIRTHDAY, {"event": event_day, "dom": int(t.get("day", 1))})
    if kind == "reorder_due":
        return _reorder(store, t, event_day, run_day)
    if kind in ("segment", "rank_up", "rank_down"):
        return watch_events(store, scenario, event_day, run_day)
    raise ValueError(f"unknown trigger {kind}")


def _reorder(store: Store, t: dict[str, Any], event_day: dt.date, run_day: dt.date) -> list[dict[str, Any]]:
    from crm_core.analytics.cycles import cycles_sql
    from crm_core.audience.rules import CYCLE_MIN_INTERVALS, CYCLE_PERSONAL_MIN

    level = "category" if t.get("level") == "category" else "product"
    before = int(t.get("days_before", 7))
    sql = cycles_sql(level) + """
        SELECT customer_id, 'reorder:' || item || ':' || CAST(last_date AS VARCHAR) AS trigger_key,
               CAST($event AS DATE) AS trigger_day, CAST($event AS TIMESTAMP) AS trigger_at
        FROM due_dates WHERE due_date - CAST($before AS INTEGER) = $event
        QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY due_date, item) = 1"""  # noqa: S608 - fixed fragments
    params = {"end": _end(run_day), "as_of": run_day, "min_intervals": CYCLE_MIN_INTERVALS,
              "personal_min": CYCLE_PERSONAL_MIN, "event": event_day, "before": before}
    names = set(__import__("re").findall(r"\$([A-Za-z_]\w*)", sql))
    return _rows(store, sql, {k: v for k, v in params.items() if k in names})


# -- segment and rank triggers: what changed since the last real run -------------------------
def _segment_rule(store: Store, t: dict[str, Any]) -> dict[str, Any]:
    from crm_core.audience import library, presets

    if t.get("rule"):
        return t["rule"]
    if t.get("preset"):
        return presets.preset_rule(t["preset"])
    wanted = t["segment"]
    for seg in library.list_segments(store):
        if seg["name"] == wanted or str(seg.get("segment_id")) == str(wanted):
            return seg["rule"]
    from crm_core.errors import InputError

    raise InputError(f"保存済みセグメント「{wanted}」が見つかりません。", "unknown saved segment")


def _current(store: Store, scenario: Any, day: dt.date) -> tuple[str, dict[str, Any]]:
    t = scenario.trigger
    if t["type"] == "segment":
        from crm_core.audience import segments

        c = segments.compile_rule(store, _segment_rule(store, t), as_of=day, prefix="w")
        return "SELECT cm.customer_id, 'in' AS value FROM customer_model AS cm WHERE " + c.where, c.params  # noqa: S608 - compiled rule
    return "SELECT customer_id, rank AS value FROM customer_model WHERE rank IS NOT NULL", {}


def _rank_order(store: Store) -> list[str]:
    from crm_core import model

    return [r["name"] for r in model.rank_thresholds(store)][::-1]  # lowest first


def watch_events(store: Store, scenario: Any, event_day: dt.date, run_day: dt.date) -> list[dict[str, Any]]:
    """Entries (segment) or rank changes: new ones on the run day, recorded ones ``since`` an earlier day."""
    if not store.has_table("customer_model"):
        return []
    t = scenario.trigger
    order = _rank_order(store) if t["type"] != "segment" else []
    if event_day < run_day:
        if not store.has_table("scenario_watch"):
            return []
        rows = _rows(store, "SELECT customer_id, value, prev, since FROM scenario_watch WHERE scenario = $s AND since = $d",
                     {"s": scenario.name, "d": event_day})
    else:
        sql, params = _current(store, scenario, run_day)
        have = store.has_table("scenario_watch")
        watched = ("(SELECT customer_id, value FROM scenario_watch WHERE scenario = $s)" if have
                   else "(SELECT NULL::VARCHAR AS customer_id, NULL::VARCHAR AS value WHERE FALSE)")
        rows = _rows(store, "SELECT n.customer_id, n.value, w.value AS prev, CAST($d AS DATE) AS since FROM (" + sql + ") n"  # noqa: S608
                     " LEFT JOIN " + watched + " w ON w.customer_id = n.customer_id"
                     " WHERE w.value IS DISTINCT FROM n.value", {**params, **({"s": scenario.name} if have else {}), "d": run_day})
        if t["type"] != "segment":
            baseline = not have or not store.scalar("SELECT count(*) FROM scenario_watch WHERE scenario = ?", [scenario.name])
            if baseline:
                return []  # the first run records the ranks; changes count from then on
    out = []
    for r in rows:
        if t["type"] == "segment":
            if r["value"] != "in" or r["prev"] == "in":
                continue
            key = "enter:" + r["since"].isoformat()
        else:
            if r["prev"] is None or r["prev"] not in order or r["value"] not in order:
                continue
            up = order.index(r["value"]) > order.index(r["prev"])
            if up != (t["type"] == "rank_up"):
                continue
            key = f"rank:{r['prev']}>{r['value']}:{r['since'].isoformat()}"
        out.append({"customer_id": r["customer_id"], "trigger_key": key, "trigger_day": r["since"],
                    "trigger_at": dt.datetime.combine(r["since"], dt.time())})
    return out


def baseline_watch(store: Store, scenario: Any, day: dt.date) -> int:
    """Switching a segment scenario on: today's members are recorded as already there, so only customers who
    enter the segment afterwards enter the scenario (Klaviyo segment flows, LINE ステップ配信).  Set-based
    (one DuckDB statement pair); returns how many members were recorded.  Rank triggers record their baseline
    on the first run anyway."""
    if scenario.trigger["type"] != "segment" or not store.has_table("customer_model"):
        return 0
    advance_watch(store, scenario, day)
    cur = store.execute("UPDATE scenario_watch SET prev = value WHERE scenario = ? AND since = ? AND prev IS NULL",
                        [scenario.name, day])
    return int(cur.fetchone()[0]) if cur.description else 0


def include_current(store: Store, scenario: Any) -> None:
    """The explicit option: customers recorded as already in the segment when it was switched on enter on the next run."""
    if scenario.trigger["type"] == "segment" and store.has_table("scenario_watch"):
        store.execute("DELETE FROM scenario_watch WHERE scenario = ? AND prev = value", [scenario.name])


def advance_watch(store: Store, scenario: Any, day: dt.date) -> None:
    """Record today's segment members / ranks (a real run, after its sends are committed)."""
    if scenario.trigger["type"] not in ("segment", "rank_up", "rank_down") or not store.has_table("customer_model"):
        return
    for attempt in range(3):
        try:
            _advance(store, scenario, day)
            return
        except (duckdb.TransactionException, duckdb.ConstraintException):  # another run of the same day moved it meanwhile
            if attempt == 2:
                raise


def _advance(store: Store, scenario: Any, day: dt.date) -> None:
    sql, params = _current(store, scenario, day)
    if not store.has_table("scenario_watch"):
        store.execute(WATCH_DDL)
    with store.transaction() as cur:
        cur.execute("DELETE FROM scenario_watch WHERE scenario = $s AND customer_id NOT IN (SELECT customer_id FROM (" + sql + "))",  # noqa: S608
                    {**params, "s": scenario.name})
        cur.execute("INSERT INTO scenario_watch SELECT $s, n.customer_id, n.value, w.value, CAST($d AS DATE) FROM (" + sql + ") n"  # noqa: S608
                    " LEFT JOIN scenario_watch w ON w.scenario = $s AND w.customer_id = n.customer_id"
                    " WHERE w.value IS DISTINCT FROM n.value"
                    " ON CONFLICT (scenario, customer_id) DO UPDATE SET prev = scenario_watch.value, value = excluded.value,"
                    " since = excluded.since", {**params, "s": scenario.name, "d": day})
