"""AppTest for シナリオ（ステップ配信）: switch a preset on and see the dry run of a day; results after a run."""

from __future__ import annotations

import datetime as dt
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
    # after the real run the results table shows the sends
    with opsdb.connect(opsdb.ops_path(path)) as ops:
        engine.record(store, ops, day, now=dt.datetime.combine(day, dt.time(20), tzinfo=JST))
    store.close()
    at.run()
    assert not at.exception, at.exception
    assert "まだシナリオで送ったメッセージがありません。" not in texts(at)
