"""Scenario results as 施策の効果 shows them: every zero says why (issue 15, item 2)."""

from __future__ import annotations

from crm_core.messaging.channels.line_bulk import LineBulk
from crm_core.scenarios import definitions as D
from crm_core.scenarios import engine, report
from tests.servers.line_mock import LineMock
from tests.test_scenarios import TOKEN, at, busy_day, shop  # noqa: F401 - the fixture


def _row(store, ops, title):
    t = report.table(store, ops)
    return t[t["シナリオ"] == title].iloc[0]


def test_zero_counts_say_why(shop):  # noqa: F811
    store, ops, _ = shop
    off = _row(store, ops, "サンクス（初回購入）")
    assert (off["状態"], off["送信"], off["説明"]) == ("オフ", "0人", "シナリオがオフのため、まだ送っていません。")
    engine.enable(store, ops, "thanks")
    assert "まだきっかけに当てはまるお客様がいません" in _row(store, ops, "サンクス（初回購入）")["説明"]
    day = busy_day(store, ops, "thanks")
    recorded = engine.record(store, ops, day, now=at(day))  # recorded, but no LINE / SMTP settings: nothing delivered
    waiting = _row(store, ops, "サンクス（初回購入）")
    assert waiting["送信"] == "0人" and f"{recorded['queued']:,}人分が送信待ちです" in waiting["説明"]
    # a scenario without a holdout has no lift, and says so
    engine.update(store, ops, "arrival", {"holdout": 0, "steps": [{"channel": "line"}]}, actor="tester")
    engine.enable(store, ops, "arrival")
    day = busy_day(store, ops, "arrival")
    with LineMock(TOKEN) as line:
        engine.run_scenarios(store, ops, day, now=at(day), line=LineBulk(TOKEN, line.url, sleep=lambda s: None))
    res = report.results(store, ops, "arrival")["steps"][0]
    assert res["sent"] > 0 and res["held_out"] == 0 and res["lift"] is None
    assert res["why"] == "比較用に送らない割合が0%のため、効果（差）は出せません。"
    # a step switched off
    engine.update(store, ops, "review", {"steps": [{"enabled": False}]}, actor="tester")
    assert _row(store, ops, "レビュー依頼（購入7日後）")["説明"] == "シナリオがオフのため、まだ送っていません。"
    engine.enable(store, ops, "review")
    assert _row(store, ops, "レビュー依頼（購入7日後）")["説明"] == "このステップはオフです。"


def test_everyone_suppressed_is_explained_with_the_counts(shop):  # noqa: F811
    store, ops, _ = shop
    D.save(ops, D.parse({"name": "mail_only", "title": "メールだけ", "trigger": {"type": "any_order"},
                         "steps": [{"day": 0, "template": "thanks_first", "channel": "email"}]}))
    engine.enable(store, ops, "mail_only")
    store.execute("UPDATE customer_model SET email_opt_in = FALSE")  # nobody may get marketing mail
    day = busy_day(store, ops, "thanks")
    recorded = engine.record(store, ops, day, now=at(day))
    why = report.results(store, ops, "mail_only")["steps"][0]["why"]
    assert recorded.get("queued", 0) == 0 and why == f"送った人はいません: {D.STATES['suppressed']} {recorded['suppressed']:,}人。"


def test_the_journey_chart_names_templates_in_japanese():
    """The timeline shows each step's template by its Japanese name; a key without a template stays as it is."""
    presets = {s.name: s for s in D.load_presets()}
    df = report.timeline([presets["f2"], presets["winback"]], {"winback": "休眠のお客様へ"})
    assert list(df["テンプレート"]) == ["休眠のお客様へ"] * 3
    assert list(report.timeline([presets["thanks"]], {})["テンプレート"]) == [presets["thanks"].steps[0].template]
    spec = report.journey_chart(df).to_dict()
    assert spec["layer"][0]["encoding"]["y"]["axis"]["labelLimit"] >= 200  # titles like 「F2促進（初回購入30日後・クーポン付き）」
