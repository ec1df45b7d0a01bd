"""AppTest for シナリオ（ステップ配信）: switch a preset on and see the dry run of a day; results after a run."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from crm_core import opsdb
from crm_core.db import Store
from crm_core.scenarios import engine
from tests.sample_store import sample_db

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/automation/scenarios.py"
JST = dt.timezone(dt.timedelta(hours=9))


def open_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
    parts += [s.value for s in at.success] + [e.value for e in at.error] + [str(m.label) for m in at.metric]
    return "\n".join(str(p) for p in parts)


def test_switch_a_preset_on_and_see_the_days_dry_run(tmp_path, monkeypatch):
    path = sample_db(tmp_path / "crm.duckdb")
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    monkeypatch.delenv("CRM_OPS_DB", raising=False)
    at = open_page()
    assert "オンになっているシナリオがありません" in texts(at)
    at.toggle(key="scenario_on_thanks").set_value(True).run()
    assert not at.exception, at.exception
    assert "「サンクス（初回購入）」をオンにしました。" in texts(at)
    store = Store(path)
    with opsdb.connect(opsdb.ops_path(path)) as ops:
        day = max((dt.date(2026, 10, d) for d in range(1, 32)),
                  key=lambda d: sum(r["state"] == "queued" for r in engine.plan(store, ops, d, names=["thanks"]).rows))
    at.date_input(key="scenario_day").set_value(day).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    with opsdb.connect(opsdb.ops_path(path)) as ops:
        expected = engine.dry_run(store, ops, day)
    row = table[table["シナリオ"] == "サンクス（初回購入）"].iloc[0]
    assert row["送信"] == expected["steps"][0]["queued"] > 0
    assert at.metric[0].value == f"{expected['total']:,}通"
    shown = "\n".join(m.value for m in at.markdown)
    assert "顧客番号" in shown and not re.search(r"[0-9a-f]{32}", shown)  # samples named as the shop knows them
    # after the real run the results table shows the sends
    with opsdb.connect(opsdb.ops_path(path)) as ops:
        engine.record(store, ops, day, now=dt.datetime.combine(day, dt.time(20), tzinfo=JST))
    store.close()
    at.run()
    assert not at.exception, at.exception
    assert "まだシナリオで送ったメッセージがありません。" not in texts(at)


def _page(tmp_path, monkeypatch):
    path = sample_db(tmp_path / "crm.duckdb")
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    monkeypatch.delenv("CRM_OPS_DB", raising=False)
    return path, open_page()


def _audit(path, action):
    from crm_core.messaging import audit

    with opsdb.connect(opsdb.ops_path(path)) as ops:
        return [e for e in audit.entries(ops) if e["action"] == action]


def _open_editor(at, name: str) -> None:
    """Open the scenario's 「編集」 expander, as a click does (its state is kept under its key)."""
    at.session_state[f"scenario_editor_{name}"] = True
    at.run()
    assert not at.exception, at.exception


def test_the_editors_run_only_when_opened(tmp_path, monkeypatch):
    """About 20 inputs per scenario: a closed editor draws none of them, an opened one all of its own."""
    _, at = _page(tmp_path, monkeypatch)
    assert len(at.expander) >= 6
    assert not [w for w in at.number_input if w.key.startswith("scenario_priority_")]
    _open_editor(at, "f2")
    assert [w.key for w in at.number_input if w.key.startswith("scenario_priority_")] == ["scenario_priority_f2"]
    assert at.number_input(key="scenario_f2_0_day").value == 30


def test_edit_priority_holdout_and_a_step_without_a_terminal(tmp_path, monkeypatch):
    from crm_core.scenarios import definitions as D

    path, at = _page(tmp_path, monkeypatch)
    _open_editor(at, "f2")
    at.number_input(key="scenario_priority_f2").set_value(3)
    at.number_input(key="scenario_holdout_f2").set_value(20)
    at.number_input(key="scenario_f2_0_day").set_value(28)
    at.text_input(key="scenario_f2_0_slot").set_value("19:30")
    at.selectbox(key="scenario_f2_0_channel").set_value("email")
    at.selectbox(key="scenario_f2_0_template").set_value("review")
    at.number_input(key="scenario_f2_0_value").set_value(800)
    at.number_input(key="scenario_f2_0_min").set_value(5000)
    at.number_input(key="scenario_f2_0_days").set_value(10)
    at.button(key="scenario_save_f2").click().run()
    assert not at.exception, at.exception
    assert "「F2促進（初回購入30日後・クーポン付き）」の変更を保存しました。" in texts(at)
    with opsdb.connect(opsdb.ops_path(path)) as ops:
        s = D.get(ops, "f2")
    step = s.steps[0]
    assert (s.priority, s.holdout, step.day, step.slot, step.channel, step.template) == (3, 0.2, 28, "19:30", "email", "review")
    assert step.coupon["value"] == 800 and step.coupon["min_purchase"] == 5000 and step.coupon["valid_days"] == 10
    edits = _audit(path, "scenario_edit")
    assert len(edits) == 1 and edits[0]["actor"] == at.session_state["auth_user"].email
    assert {"priority", "holdout", "steps"} <= set(edits[0]["detail"]["changes"])
    # switch the step off: nobody enters it any more
    at.checkbox(key="scenario_f2_0_on").set_value(False)
    at.button(key="scenario_save_f2").click().run()
    with opsdb.connect(opsdb.ops_path(path)) as ops:
        assert D.get(ops, "f2").steps[0].enabled is False


def test_bad_inputs_are_refused_in_japanese_and_nothing_changes(tmp_path, monkeypatch):
    from crm_core.scenarios import definitions as D

    path, at = _page(tmp_path, monkeypatch)
    _open_editor(at, "thanks")
    at.text_input(key="scenario_thanks_0_slot").set_value("25:00")
    at.button(key="scenario_save_thanks").click().run()
    assert not at.exception, at.exception
    assert any("送信時刻は「10:00」のように入力してください" in e.value for e in at.error)
    at.text_input(key="scenario_thanks_0_slot").set_value("18:00")
    at.checkbox(key="scenario_thanks_0_coupon").set_value(True)
    at.selectbox(key="scenario_thanks_0_kind").set_value("percent")
    at.number_input(key="scenario_thanks_0_value").set_value(150)
    at.button(key="scenario_save_thanks").click().run()
    assert any("割引率は1〜100%にしてください" in e.value for e in at.error)
    with opsdb.connect(opsdb.ops_path(path)) as ops:
        s = D.get(ops, "thanks")
    assert s.steps[0].slot == "18:00" and s.steps[0].coupon is None
    assert _audit(path, "scenario_edit") == []


def test_caps_are_set_on_the_page_and_shared_with_live_sends(tmp_path, monkeypatch):
    from crm_core.results import live
    from crm_core.scenarios import engine as E

    path, at = _page(tmp_path, monkeypatch)
    at.number_input(key="scenario_daily_cap").set_value(2)
    at.number_input(key="scenario_weekly_cap").set_value(4)
    at.button(key="scenario_caps_save").click().run()
    assert not at.exception, at.exception
    assert "上限を保存しました（1日2通・7日間で4通）。" in texts(at)
    store = Store(path)
    try:
        with opsdb.connect(opsdb.ops_path(path)) as ops:
            caps = E.settings(store, ops)
        assert (caps["daily_cap"], caps["frequency_cap"]) == (2, 4)
        assert live.shop_frequency_cap(store) == 4  # the default of a new live campaign
    finally:
        store.close()
    entry = _audit(path, "scenario_caps")[0]
    assert entry["detail"]["after"] == {"daily_cap": 2, "frequency_cap": 4} and entry["actor"] == at.session_state["auth_user"].email
    # the live-send page offers the same 7-day limit
    live_page = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    live_page.run()
    live_page.switch_page("pages/send/live_send.py").run()
    assert live_page.number_input(key="live_cap").value == 4


def test_segment_scenario_explains_who_enters_when_switched_on(tmp_path, monkeypatch):
    path, at = _page(tmp_path, monkeypatch)
    box = at.checkbox(key="scenario_include_rank_near")
    assert "新しくセグメントに入ったお客様だけ" in box.help
    at.toggle(key="scenario_on_rank_near").set_value(True).run()
    assert not at.exception, at.exception
    assert "これから新しくセグメントに入ったお客様に送ります。" in texts(at)
    assert _audit(path, "scenario_on")[0]["detail"] == {"scenario": "rank_near", "include_current": False}
