"""AppTests for issue 17's profit, LINE-link and report parts on home, data, segments, results and messages."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from crm_core.db import Store
from crm_core.pipeline import import_files
from crm_core.results import campaigns as C
from crm_core.results import engagement as EN
from tests import profit_shop as shop
from tests.fixtures import write_csv

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def db(tmp_path, monkeypatch):
    """The profit shop with a LINE link file (O1 -> a, b's phone -> b) and a customer model."""
    path = tmp_path / "crm.duckdb"
    store = Store(path)
    shop.build(store, tmp_path, rebuild_model=True)
    links = write_csv(tmp_path / "links.csv", ["注文番号", "電話番号", "LINEユーザーID"],
                      [{"注文番号": "O1", "LINEユーザーID": "U_a"}, {"電話番号": "09022222222", "LINEユーザーID": "U_b"}], "utf-8")
    import_files(store, [links], fmt="generic", kind="line_links",
                 mapping={"注文番号": "order_id", "電話番号": "phone", "LINEユーザーID": "line_user_id"})
    store.close()
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    return path


def _open(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _frame(at: AppTest, column: str):
    """The first table on the page with ``column`` (AppTest does not expose dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_home_shows_line_reach_history_and_gross_profit(db):
    at = _open()
    m = _metrics(at)
    assert m["LINEで届くお客様"] == "2人" and m["全顧客に占める割合"] == "66.7%"
    assert m["LINE連携ファイルでつながった人"] == "2人"
    assert m["粗利（原価が分かる商品）"] == "¥3,500" and m["原価が分かる売上の割合"] == "69.2%"
    assert m["原価を登録した商品"] == "5 / 6品"
    history = _frame(at, "増えた人数")
    assert list(history["LINEで届くお客様"]) == [2] and list(history["増えた人数"]) == [2]
    assert list(history["ファイル"]) == ["links.csv"]


def test_data_page_category_margin_edit(db):
    at = _open("pages/data/import_data.py")
    assert any("原価が分かる売上の割合: 69.2%" in c.value for c in at.caption)
    at.selectbox(key="imp_cat_pick").set_value("雑貨").run()
    at.number_input(key="imp_cat_rate_雑貨").set_value(25.0).run()
    at.button(key="imp_cat_save").click().run()
    assert not at.exception, at.exception
    assert any("雑貨" in s.value for s in at.success)
    store = Store(db)
    assert store.fetchall("SELECT category, margin_rate FROM category_margins ORDER BY 1") == [("サプリ", 0.6), ("雑貨", 0.25)]
    store.close()
    assert any("原価が分かる売上の割合: 100%" in c.value for c in at.caption)


def test_segment_page_gross_profit_and_reach(db):
    at = _open("pages/audience/segments.py")
    m = _metrics(at)
    assert m["累計粗利（原価が分かる商品）"] == "¥3,500"
    assert m["原価が分かる売上の割合"] == "69.2%"
    assert m["LINEで届く"] == "2人"
    assert any("LINEで届くお客様は全体で2人" in c.value and "links.csv" in c.value for c in at.caption)


def test_results_page_profit_roi_and_reports(db):
    store = Store(db)
    ids = [r[0] for r in store.fetchall("SELECT customer_id FROM customers ORDER BY 1")]
    C.freeze_campaign(store, "冬のセール", "line", dt.datetime(2025, 1, 9, 12), customer_ids=ids, holdout_share=0,
                      campaign_id=1, line_plan="standard")
    EN.record_message_stats(store, 1, "line_api", {"customAggregationUnit": "winter", "sent_on": "20250109",
                                                     "overview": {"uniqueImpression": 25, "uniqueClick": None}})
    EN.record_message_stats(store, None, "rmail", {"message_name": "R-Mail冬", "sent_on": "2025-01-09", "delivered": 900})
    store.close()
    at = _open("pages/results/results.py")
    m = _metrics(at)
    # a, b, c all bought within 7 days: gross profit of costed lines 3,500 of 9,000 / 13,000 line revenue.
    assert m["粗利"] == "¥3,500" and m["原価判明率"] == "69.2%"
    assert m["粗利ROI"] == "—" and m["上乗せ粗利"] == "—"  # no holdout: no incremental profit
    eng = _frame(at, "クリックした人数")
    assert list(eng["クリックした人数"]) == [EN.WITHHELD_LABEL] and list(eng["開封数"]) == ["25"]
    assert list(eng["概算"]) == ["≈ 概算"]
    at.button(key="res_link").click().run()
    assert not at.exception, at.exception
    assert len(_frame(at, "クリックした人数")) == 2


def test_coupon_estimate_uses_shop_margin_and_incremental_share(db):
    at = _open("pages/messages/messages.py")
    at.session_state["msg_tab"] = "クーポン"  # only the open tab runs
    at.run()
    at.text_input(key="cpn_name").set_value("テスト10%")
    at.number_input(key="cpn_value").set_value(10.0)
    at.radio(key="cpn_mode").set_value("unique")
    at.button[[b.label for b in at.button].index("クーポンを作成")].click().run()
    assert not at.exception, at.exception
    assert at.number_input(key="cpn_margin").value == 39  # 3,500 / 9,000 of the costed revenue
    assert at.number_input(key="cpn_incremental").value == 20  # no measured campaign yet
    assert "上乗せ注文の粗利" in _metrics(at)


def test_analytics_ltv_tab_shows_gross_profit_by_category(db):
    at = AppTest.from_file(str(ROOT / "pages/analysis/analytics.py"), default_timeout=90)
    at.session_state["ana_tab"] = "LTV・予測"
    at.run()
    assert not at.exception, at.exception
    frame = _frame(at, "粗利（原価が分かる商品）")
    assert list(frame["カテゴリ"]) == ["サプリ", "雑貨", "スキンケア"]
    assert list(frame["粗利（原価が分かる商品）"]) == ["¥2,300", "—", "¥1,200"]
    assert any("原価が分かる売上の割合 69.2%" in c.value for c in at.caption)
