"""AppTest for 施策の効果: empty states, the sample shop's past campaigns, freezing a campaign from a preset."""

from __future__ import annotations

import datetime as dt
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
    # short labels (details in their help) so that none is cut at 1440 px (issue 11, item 16)
    for label in ("配信した人数", "購入率", "上乗せ売上", "CPO", "ROI"):
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


def test_chance_to_win_cap_and_cuped_toggle(sample_db, tmp_path, monkeypatch):
    _use(sample_db, tmp_path, monkeypatch)
    at = open_page()
    box = at.selectbox(key="res_campaign")
    box.select_index(next(i for i, o in enumerate(box.options) if "休眠" in o)).run()
    assert not at.exception, at.exception
    body = texts(at)
    assert "勝つ確率" in body and "パーセンタイル" in body and "頭打ち" in body
    columns = [list(d.value.columns) for d in at.dataframe]
    assert ["指標", "差", "95%信頼区間", "勝つ確率", "p値", "判定"] in columns
    at.toggle(key="res_cuped").set_value(True).run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "95%信頼区間（CUPED）" in d.value.columns)
    assert table.loc[1, "95%信頼区間（CUPED）"].endswith("円") and "分散削減（CUPED）" in texts(at)
    for frame in at.dataframe:
        assert not frame.value.isna().any().any()


def test_broken_split_shows_an_error(sample_db, tmp_path, monkeypatch):
    path = _use(sample_db, tmp_path, monkeypatch)
    store = Store(path)
    cid = store.scalar("SELECT campaign_id FROM campaigns WHERE name LIKE '%休眠%'")
    # Most of the holdout removed after the split: the groups no longer match the planned shares.
    store.execute("DELETE FROM campaign_recipients WHERE campaign_id = ? AND holdout AND customer_id NOT IN "
                  "(SELECT customer_id FROM campaign_recipients WHERE campaign_id = ? AND holdout ORDER BY customer_id LIMIT 5)",
                  [cid, cid])
    store.close()
    at = open_page()
    box = at.selectbox(key="res_campaign")
    box.select_index(next(i for i, o in enumerate(box.options) if "休眠" in o)).run()
    assert not at.exception, at.exception
    assert any("比率" in e.value and "信頼できません" in e.value for e in at.error)


def test_detectable_effect_hint_follows_the_holdout_share(sample_db, tmp_path, monkeypatch):
    _use(sample_db, tmp_path, monkeypatch)
    at = open_page()
    at.selectbox(key="res_new_source").select("all")
    at.selectbox(key="res_new_channel").select("email").run()
    body = texts(at)
    assert "この設定で見分けられる効果" in body and "対象のお客様の直近1年" in body

    def hint() -> str:
        return next(m.value for m in [*at.info, *at.warning] if "見分け" in m.value)

    first = hint()
    assert "送らないグループ 10%" in first
    at.slider(key="res_new_holdout").set_value(50).run()
    assert not at.exception, at.exception
    second = hint()
    assert "送らないグループ 50%" in second and first != second


def test_the_hint_equals_the_direct_figure_for_the_window_and_after_new_data(sample_db, tmp_path, monkeypatch):
    """The hint's audience and purchases are kept per data version (the window changes without a query):
    it equals the direct computation for each window, and after the data changed the new direct one."""
    from crm_core import pipeline

    path = _use(sample_db, tmp_path, monkeypatch)
    at = open_page()
    at.selectbox(key="res_new_source").select("all")
    at.selectbox(key="res_new_channel").select("email").run()

    def hint() -> str:
        return next(m.value for m in [*at.info, *at.warning] if "見分け" in m.value)

    def direct(days: int) -> str:
        s = Store(path)
        try:
            return C.audience_outlook(s, {"all": []}, "email", 0.1, days)["message"]
        finally:
            s.close()

    assert hint() == direct(7)
    at.number_input(key="res_new_days").set_value(30).run()
    assert not at.exception, at.exception
    assert hint() == direct(30) != direct(7)
    before = hint()
    s = Store(path)  # new data: the latest 200 orders cancelled, the model rebuilt
    s.execute("UPDATE orders SET cancelled = TRUE WHERE order_id IN (SELECT order_id FROM orders ORDER BY ordered_at DESC LIMIT 200)")
    pipeline.after_settings_change(s)
    s.close()
    at.run()
    assert not at.exception, at.exception
    assert hint() == direct(30) != before


def test_too_small_audience_is_told_plainly(tmp_path, monkeypatch):
    path = tmp_path / "crm.duckdb"
    store = Store(path)
    fill_store(store)
    store.close()
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    at = open_page()
    at.selectbox(key="res_new_source").select("all").run()
    assert any("何%にしても" in w.value for w in at.warning)


def test_global_holdout_setting_and_programme_view(sample_db, tmp_path, monkeypatch):
    path = _use(sample_db, tmp_path, monkeypatch)
    at = open_page()
    assert "全体の比較グループは現在オフです" in texts(at)
    at.slider(key="res_global_share").set_value(5)
    at.button(key="res_global_save").click().run()
    assert not at.exception, at.exception
    store = Store(path)
    assert C.global_holdout_setting(store)["share"] == 0.05
    # Started months ago: the page shows the programme's lift month by month.
    C.set_global_holdout(store, 0.1, today=dt.date(2026, 5, 1))
    store.close()
    at = open_page()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert "上乗せ売上（比較開始から）" in labels
    body = texts(at)
    assert "全体の比較グループ 10%（2026-05-01から比較）" in body and "縦線全体が0より上" in body
    table = next(d.value for d in at.dataframe if "差（95%信頼区間）" in d.value.columns)
    assert table["月"].iloc[0] == "2026年5月"


def test_numbers_read_the_japanese_way(sample_db, tmp_path, monkeypatch):
    """Issue 11, item 16: −¥ for negative yen, ratios with separators and the minus sign, no cut labels."""
    import re

    _use(sample_db, tmp_path, monkeypatch)
    at = open_page()
    box = at.selectbox(key="res_campaign")
    for i in range(len(box.options)):
        at.selectbox(key="res_campaign").select_index(i).run()
        assert not at.exception
        metrics = {m.label: m.value for m in at.metric}
        assert all(len(label) <= 7 for label in metrics), metrics  # short enough for six columns at 1440 px
        for label in ("売上", "1人あたり売上", "上乗せ売上", "費用", "CPO"):
            assert re.fullmatch(r"—|−?¥[\d,]+", metrics[label]), (label, metrics[label])
        assert re.fullmatch(r"—|−?\d{1,3}(,\d{3})*(\.\d)?%", metrics["ROI"]), metrics["ROI"]
        assert "-" not in metrics["ROI"] + metrics["上乗せ売上"]
