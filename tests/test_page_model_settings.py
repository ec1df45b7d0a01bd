"""AppTest for the RFM / rank settings page: edits are validated, stored and rebuild the model."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from crm_core import model
from crm_core.db import Store
from crm_core.sample.load import load_sample

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/settings/model_settings.py"


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("ms") / "crm.duckdb"
    store = Store(path)
    load_sample(store, customers=300)
    store.close()
    return path


@pytest.fixture()
def db(sample_db, tmp_path, monkeypatch):
    path = tmp_path / "crm.duckdb"
    path.write_bytes(sample_db.read_bytes())
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    return path


def _open() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def _setting(path: Path, getter):
    store = Store(path)  # the page closed its connection at the end of its run
    try:
        return getter(store)
    finally:
        store.close()


def _cancelled_only(path: Path) -> int:
    return _setting(
        path,
        lambda s: s.scalar(
            "SELECT count(*) FROM customers WHERE customer_id NOT IN (SELECT customer_id FROM orders WHERE NOT cancelled)"
        ),
    )


def test_page_shows_current_rules_and_sizes(db):
    at = _open()
    assert at.title[0].value == "🧮 RFM・ランクの基準"
    sizes = next(d.value for d in at.dataframe if "セグメント" in d.value.columns)
    assert sizes["人数"].sum() == 300 - _cancelled_only(db)


def test_switching_f_to_quintiles_is_saved_and_rebuilds(db):
    at = _open()
    radio = next(r for r in at.radio if r.label == "F：購入回数")
    radio.set_value("quintile").run()
    next(b for b in at.button if b.label == "保存して計算し直す").click().run()
    assert not at.exception
    assert any("計算し直しました" in s.value for s in at.success)
    assert _setting(db, model.rfm_thresholds)["f"] == model.QUINTILE


def test_fixed_recency_thresholds_must_ascend(db):
    at = _open()
    next(r for r in at.radio if r.label == "R：最終購入からの日数").set_value("fixed").run()
    inputs = [n for n in at.number_input if n.key.startswith("ms_r_")]
    inputs[0].set_value(400).run()  # 5点: 400日以内 > 4点の90日 -> not ascending
    next(b for b in at.button if b.label == "保存して計算し直す").click().run()
    assert not at.exception
    assert at.error  # a Japanese message, no traceback
    assert _setting(db, model.rfm_thresholds)["r"] == model.QUINTILE  # unchanged


def test_ranks_by_number_of_orders_are_saved_and_used(db):
    at = _open()
    at.radio(key="ms_rank_basis").set_value("orders_12m").run()
    assert not at.exception
    next(b for b in at.button if b.label == "保存して計算し直す").click().run()
    assert not at.exception
    assert _setting(db, model.rank_thresholds) == model.DEFAULT_ORDER_RANK_THRESHOLDS
    rows = _setting(db, lambda s: s.fetchall(
        "SELECT orders_12m, rank, next_rank, gap_to_next_rank, orders_to_next_rank FROM customer_model"))
    expected = {10: ("プラチナ", None), 5: ("ゴールド", "プラチナ"), 2: ("シルバー", "ゴールド"), 0: ("レギュラー", "シルバー")}
    for orders_12m, rank, next_rank, yen_gap, orders_gap in rows:
        floor = max(m for m in expected if orders_12m >= m)
        assert (rank, next_rank) == expected[floor]
        assert yen_gap is None
        above = [m for m in expected if m > floor]
        assert orders_gap == (min(above) - orders_12m if above else None)
