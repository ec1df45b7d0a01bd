"""Switching on a segment-trigger scenario (issue 15, item 5).

Like Klaviyo segment flows and LINE ステップ配信: by default only customers who enter the segment after
the switch enter the scenario; the current members enter only when the person switching it on asks for it.
"""

from __future__ import annotations

import datetime as dt

from crm_core.messaging import audit
from crm_core.scenarios import definitions as D
from crm_core.scenarios import engine
from tests.test_scenarios import _occurrences, at, shop  # noqa: F401 - the fixture

LINE_FRIENDS = {"all": [{"field": "has_line", "op": "is_true"}]}
D0 = dt.date(2026, 10, 10)


def _welcome(ops):
    D.save(ops, D.parse({"name": "line_welcome", "title": "LINE友だち追加のお礼", "priority": 5, "holdout": 0,
                         "trigger": {"type": "segment", "rule": LINE_FRIENDS},
                         "steps": [{"day": 0, "template": "thanks_first", "channel": "line"}]}))


def _friends(store) -> set[str]:
    return {r[0] for r in store.fetchall("SELECT customer_id FROM customer_model WHERE has_line AND trim(line_user_id) <> ''")}


def test_switching_on_enters_only_customers_who_join_the_segment_afterwards(shop):  # noqa: F811
    store, ops, _ = shop
    _welcome(ops)
    before = _friends(store)
    assert before
    engine.enable(store, ops, "line_welcome", actor="tester", day=D0)
    assert engine.plan(store, ops, D0).rows == []  # the members of the day it was switched on do not enter
    engine.record(store, ops, D0, now=at(D0))
    newcomers = [r[0] for r in store.fetchall("SELECT customer_id FROM customer_model WHERE NOT has_line ORDER BY customer_id LIMIT 2")]
    store.execute("UPDATE customer_model SET has_line = TRUE, line_user_id = 'U' || md5(customer_id) WHERE customer_id IN (?, ?)",
                  newcomers)
    d1 = D0 + dt.timedelta(days=1)
    rows = engine.plan(store, ops, d1).rows
    assert {r["customer_id"] for r in rows} == set(newcomers)  # nobody of the old members, not even as a late catch-up
    engine.record(store, ops, d1, now=at(d1))
    d2 = d1 + dt.timedelta(days=1)
    assert engine.plan(store, ops, d2).rows == []
    assert set(_occurrences(ops, scenario="line_welcome", state="queued").customer_id) == set(newcomers)
    assert any(e["action"] == "scenario_on" and e["actor"] == "tester" for e in audit.entries(ops))


def test_including_the_current_members_enters_everyone_once(shop):  # noqa: F811
    store, ops, _ = shop
    _welcome(ops)
    engine.enable(store, ops, "line_welcome", include_current=True, day=D0)
    rows = engine.plan(store, ops, D0).rows
    assert {r["customer_id"] for r in rows} == _friends(store)
    engine.record(store, ops, D0, now=at(D0))
    assert engine.plan(store, ops, D0 + dt.timedelta(days=1)).rows == []
    assert engine.plan(store, ops, D0 + dt.timedelta(days=2)).rows == []


def test_switching_off_and_on_again_does_not_send_to_those_who_joined_meanwhile(shop):  # noqa: F811
    store, ops, _ = shop
    _welcome(ops)
    engine.enable(store, ops, "line_welcome", day=D0)
    engine.record(store, ops, D0, now=at(D0))
    engine.disable(ops, "line_welcome")
    joined = store.fetchone("SELECT min(customer_id) FROM customer_model WHERE NOT has_line")[0]
    store.execute("UPDATE customer_model SET has_line = TRUE, line_user_id = 'U' || md5(customer_id) WHERE customer_id = ?", [joined])
    d5 = D0 + dt.timedelta(days=5)
    engine.enable(store, ops, "line_welcome", day=d5)
    assert engine.plan(store, ops, d5).rows == []
    # asking for the current members afterwards takes in exactly those who never entered
    engine.disable(ops, "line_welcome")
    engine.enable(store, ops, "line_welcome", include_current=True, day=d5)
    assert {r["customer_id"] for r in engine.plan(store, ops, d5).rows} == _friends(store)


def test_command_line_switches_on_with_or_without_the_current_members(shop, capsys, monkeypatch):  # noqa: F811
    from crm_core import cli

    store, ops, tmp = shop
    db = str(tmp / "shop.duckdb")
    store.close()
    monkeypatch.delenv("CRM_OPS_DB", raising=False)
    assert cli.main(["--db", db, "scenario", "enable", "rank_near", "--by", "ops-person"]) == 0
    assert cli.main(["--db", db, "scenario", "disable", "rank_near"]) == 0
    assert cli.main(["--db", db, "scenario", "enable", "rank_near", "--include-current"]) == 0
    ons = [e for e in audit.entries(ops) if e["action"] == "scenario_on"]
    assert [(e["actor"], e["detail"]["include_current"]) for e in reversed(ons)] == [("ops-person", False), ("cli", True)]
