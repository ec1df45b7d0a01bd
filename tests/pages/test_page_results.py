"""AppTest for 施策の効果: empty states, the sample shop's past campaigns, freezing a campaign from a preset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from crm_core.db import Store
from crm_core.results import attribution as R
from crm_core.results import campaigns as C
from crm_core.sample.campaigns import load_sample_campaigns
from crm_core.sample.load import load_sample
from tests.segment_shop import fill_store

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/results/results.py"


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sample") / "crm.duckdb"
    store = Store(path)
    load_sample(store)  # the sample shop loads its past campaigns itself
    assert load_sample_campaigns(store) == []  # and only once
    ids = [r[0] for r in store.fetchall("SELECT campaign_id FROM campaigns ORDER BY 1")]
    assert len(ids) == 4
    store.close()
    return path


def _use(path: Path, tmp_path: Path, monkeypatch) -> Path:
    target = tmp_path / "crm.duckdb"
    shutil.copy(path, target)
    monkeypatch.setenv("CRM_DB", str(target))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    return target


def open_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info]
    parts += [w.value for w in at.warning] + [s.value for s in at.success] + [e.value for e in at.error]
    return "\n".join(str(p) for p in parts)


def test_empty_store_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_DB", str(tmp_path / "crm.duckdb"))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    at = open_page()
    assert "まだ注文データがありません" in texts(at)


def test_no_campaigns_then_freeze_from_preset(tmp_path, monkeypatch):
    path = tmp_path / "crm.duckdb"
    store = Store(path)
    fill_store(store)
    store.close()
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    at = open_page()
    assert "まだ施策の記録がありません" in texts(at)
    assert R.LAST_TOUCH_NOTE in texts(at)
    at.text_input(key="res_new_name").input("テスト施策")
    at.selectbox(key="res_new_channel").select("email")
    at.selectbox(key="res_new_source").select("all")
    at.slider(key="res_new_holdout").set_value(20)
    at.button[-1].click().run()  # the form's submit button
    assert not at.exception, at.exception
    assert "施策 No.1 を記録しました" in texts(at)
    assert len(at.dataframe) >= 2  # the list now shows the new campaign
    store = Store(path)
    camp = C.get_campaign(store, 1)
    assert camp["name"] == "テスト施策" and camp["holdout_share"] == 0.2 and camp["rule"] == {"all": []}
    store.close()


def test_sample_campaigns_page(sample_db, tmp_path, monkeypatch):
    _use(sample_db, tmp_path, monkeypatch)
    at = open_page()
    assert len(at.dataframe) >= 2
    labels = [m.label for m in at.metric]
    for label in ("配信した人数", "購入率", "上乗せ売上（推定）", "CPO（1注文あたり費用）", "ROI（上乗せ売上ベース）"):
        assert label in labels
    box = at.selectbox(key="res_campaign")
    index = next(i for i, o in enumerate(box.options) if "休眠" in o)
    box.select_index(index).run()
    assert not at.exception, at.exception
    body = texts(at)
    assert "ラストタッチ" in body and "Newcombe" in body
    assert R.VERDICT_YES in body


def test_each_sample_campaign_renders(sample_db, tmp_path, monkeypatch):
    _use(sample_db, tmp_path, monkeypatch)
    at = open_page()
    box = at.selectbox(key="res_campaign")
    seen = set()
    for i, option in enumerate(box.options):
        at.selectbox(key="res_campaign").select_index(i).run()
        assert not at.exception, (option, at.exception)
        body = texts(at)
        seen |= {v for v in (R.VERDICT_YES, R.VERDICT_NONE, R.VERDICT_SMALL, R.VERDICT_NEGATIVE) if v in body}
        if "A/B" in option:
            assert "パターン" in body
            assert "パターンごとの効果（送らないグループと比べて）" in body  # the test has a holdout
            assert len(at.dataframe) >= 3
    assert R.VERDICT_YES in seen


def test_campaign_without_holdout_and_delete(tmp_path, monkeypatch):
    path = tmp_path / "crm.duckdb"
    store = Store(path)
    fill_store(store)
    ids = [r[0] for r in store.fetchall("SELECT customer_id FROM customer_model")]
    C.freeze_campaign(store, "比較なし", "rmail", "2025-01-01 20:00", customer_ids=ids, holdout_share=0.0, marked_only=True)
    store.close()
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    at = open_page()
    assert R.VERDICT_NO_HOLDOUT in texts(at)
    assert "送信済みとして記録" in texts(at)
    at.checkbox(key="res_confirm_delete_1").check().run()
    at.button(key="res_delete").click().run()
    assert not at.exception, at.exception
    assert "まだ施策の記録がありません" in texts(at)
