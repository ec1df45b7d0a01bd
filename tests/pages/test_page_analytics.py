"""AppTest smoke tests of the 顧客分析 page (pages/analytics.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from crm_core.db import Store
from tests.analytics_shop import add_order, seeded_shop

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "analysis" / "analytics.py")
TABS = ["RFM", "リピート", "コホート", "定期", "LTV・予測", "買い替え周期", "併売"]

# Phrases of the how-to-read captions (and empty states) each tab must show.
EXPECTED = {
    "RFM": ["オレンジが青より高い", "右上は優良顧客", "対角線上は維持"],
    "リピート": ["30・60・90日以内に2回目", "初回から何日後に買ったか", "初回購入日の注文（新規）"],
    "コホート": ["その月に購入した顧客の割合", "1人あたり累計売上（初回購入を含む）", "スーパーSALE・お買い物マラソン"],
    "定期": ["次の回も届いた定期の割合", "前月に稼働していた定期", "sBGモデルによる予測", "打ち切り"],
    "LTV・予測": ["1人あたりの累計売上が経過月", "予測CLV", "今後90日以内に購入しない確率"],
    "買い替え周期": ["縦線が中央値", "前回の購入日に周期を足した日"],
    "併売": ["支持度は全注文のうち", "次の注文で何を買ったか", "まだ買ったことのない商品"],
}


@pytest.fixture(scope="module")
def shop_db(tmp_path_factory):
    """A DuckDB file with a seeded shop of 2,000 customers and a customer_model."""
    path = tmp_path_factory.mktemp("analytics") / "shop.duckdb"
    s = Store(path)
    seeded_shop(s, customers=2000, seed=1)
    s.close()
    return path


def app(monkeypatch, db: Path) -> AppTest:
    monkeypatch.setenv("CRM_DB", str(db))
    return AppTest.from_file(PAGE, default_timeout=60)


def texts(at: AppTest) -> str:
    parts = [c.value for c in at.caption] + [i.value for i in at.info] + [m.value for m in at.markdown]
    return "\n".join(parts)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("tab", TABS, ids=TABS)
def test_each_tab_renders_with_captions(monkeypatch, shop_db, tab):
    at = app(monkeypatch, shop_db)
    at.session_state["ana_tab"] = tab
    at.run()
    assert_clean(at)
    assert [t.label for t in at.tabs] == TABS
    assert at.title[0].value == "顧客分析"
    shown = texts(at)
    for phrase in EXPECTED[tab]:
        assert phrase in shown, f"{tab}: missing caption {phrase!r}"
    # Every tab offers at least one table as CSV (the recommendations table appears after a build).
    if tab != "併売":
        assert at.get("download_button"), f"{tab}: no CSV download"
    for table in at.dataframe:  # gaps read "—" on screen, never "None"
        assert not table.value.isna().any().any(), f"{tab}: a table shows None"


def test_first_tab_is_rfm_and_lazy(monkeypatch, shop_db):
    at = app(monkeypatch, shop_db).run()
    assert_clean(at)
    shown = texts(at)
    assert "オレンジが青より高い" in shown
    assert "縦線が中央値" not in shown  # other tabs do not run until opened


def test_recommendations_button_builds_the_table(monkeypatch, shop_db):
    at = app(monkeypatch, shop_db)
    at.session_state["ana_tab"] = "併売"
    at.run()
    at.button(key="ana_build_recs").click().run()
    assert_clean(at)
    assert any("人分のおすすめ商品を作成しました" in s.value for s in at.success)
    assert any(m.label == "おすすめ商品がある顧客" for m in at.metric)


def test_bad_rank_thresholds_show_a_japanese_error_not_a_traceback(monkeypatch, shop_db):
    at = app(monkeypatch, shop_db).run()
    at.number_input(key="ana_rank_1").set_value(90_000).run()  # ゴールド above プラチナ's ¥50,000
    assert not at.exception
    assert any("降順" in e.value for e in at.error)


def shell(monkeypatch, db: Path) -> AppTest:
    """The whole app (app.py with st.navigation), without the first-start sample shop."""
    monkeypatch.setenv("CRM_DB", str(db))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def test_empty_store_explains_what_to_do(monkeypatch, tmp_path):
    Store(tmp_path / "empty.duckdb").close()
    at = shell(monkeypatch, tmp_path / "empty.duckdb").run()
    at.switch_page("pages/analysis/analytics.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("まだ注文データがありません" in i.value for i in at.info)
    assert not at.tabs


def test_page_runs_inside_the_app_shell(monkeypatch, shop_db):
    at = shell(monkeypatch, shop_db).run()
    at.switch_page("pages/analysis/analytics.py").run()
    assert_clean(at)
    assert [t.label for t in at.tabs] == TABS
    assert "オレンジが青より高い" in texts(at)


@pytest.fixture
def bare_db(tmp_path):
    """Orders only: no customer model, no subscriptions, no categories."""
    path = tmp_path / "bare.duckdb"
    s = Store(path)
    add_order(s, "o1", "A", "2026-01-10", 3300, [("P1", "化粧水", None, 3300)])
    add_order(s, "o2", "A", "2026-02-10", 3300, [("P1", "化粧水", None, 3300)])
    add_order(s, "o3", "B", "2026-02-11", 1980, [("P2", "リップ", None, 1980)])
    s.close()
    return path


@pytest.mark.parametrize(
    ("tab", "phrase"),
    [
        ("RFM", "顧客モデル（RFMスコア・ランク・予測値）がまだ作成されていません"),
        ("LTV・予測", "顧客モデル（RFMスコア・ランク・予測値）がまだ作成されていません"),
        ("定期", "「申込番号」と「申込お届け回数」"),
        ("買い替え周期", "くり返し購入した記録が3件以上ある商品がありません"),
        ("併売", "条件を満たす組み合わせがありません"),
    ],
    ids=["rfm-no-model", "ltv-no-model", "no-subscriptions", "no-cycles", "no-pairs"],
)
def test_empty_states_explain_what_is_missing(monkeypatch, bare_db, tab, phrase):
    at = app(monkeypatch, bare_db)
    at.session_state["ana_tab"] = tab
    at.run()
    assert_clean(at)
    assert phrase in texts(at)


def test_a_rebuild_without_an_import_refreshes_the_cached_analyses(monkeypatch, tmp_path, shop_db):
    # New RFM settings (or corrected sale dates) rebuild the model without an import;
    # the page must not keep showing the cached figures of the previous build.
    import shutil

    from crm_core import model

    db = tmp_path / "shop.duckdb"
    shutil.copy(shop_db, db)
    at = app(monkeypatch, db)
    at.run()
    assert "優良顧客" in texts(at) + str([d.value for d in at.dataframe])
    store = Store(db)
    rules = model.rfm_segments(store)
    rules[0] = {**rules[0], "name": "VIP顧客"}
    model.set_rfm_segments(store, rules)
    model.rebuild(store)
    store.close()
    at.run()
    assert_clean(at)
    shown = " ".join(d.value.to_csv() for d in at.dataframe)
    assert "VIP顧客" in shown and "優良顧客" not in shown


def test_churn_figures_cannot_be_misread(monkeypatch, shop_db):
    """Issue 11, item 17: the no-purchase probability is named as such next to 生存確率, and why both can be high."""
    at = app(monkeypatch, shop_db)
    at.session_state["ana_tab"] = "LTV・予測"
    at.run()
    assert_clean(at)
    risk = next(d.value for d in at.dataframe if "離反リスク" in d.value.columns)
    columns = list(risk.columns)
    assert "平均生存確率(%)" in columns and "90日以内に購入しない確率・平均(%)" in columns
    assert columns.index("90日以内に購入しない確率・平均(%)") == columns.index("平均生存確率(%)") + 1
    assert not [c for c in columns if "離反確率" in c]
    captions = " ".join(c.value for c in at.caption)
    assert "両方が高くなります" in captions
    assert "低＝33%未満、中＝33〜66%、高＝66%超" in captions


def test_the_latest_order_day_is_kept_per_data_version(monkeypatch, tmp_path):
    """The caption's 最終注文日 is kept between reruns (a scan of every order), and a new order with its
    rebuild shows the new day."""
    from crm_core import pipeline

    db = tmp_path / "shop.duckdb"
    s = Store(db)
    seeded_shop(s, customers=200, seed=3)
    latest = s.scalar("SELECT CAST(max(ordered_at) AS DATE) FROM orders WHERE NOT coalesce(cancelled, FALSE)")
    s.close()
    at = app(monkeypatch, db)
    at.run()
    assert_clean(at)

    def shown() -> str:
        return next(c.value for c in at.caption if "最終注文日" in c.value).split("最終注文日: ")[1]

    first = shown()
    assert first == f"{latest.year}年{latest.month}月{latest.day}日"
    s = Store(db)
    add_order(s, "late-1", s.scalar("SELECT min(customer_id) FROM orders"), "2027-03-05", 1000)
    pipeline.after_settings_change(s)
    s.close()
    at.run()
    assert_clean(at)
    assert shown() == "2027年3月5日" != first


def test_the_charts_are_kept_per_their_data_and_follow_new_data(monkeypatch, tmp_path):
    """The RFM tab's charts are built once per their data (ui.altair_chart): a threshold change redraws only
    the rank movement; after new orders and a rebuild (a new data version) every chart equals the one a fresh
    page (caches cleared) draws, and the segment chart changed."""
    import streamlit as st

    from crm_core import pipeline
    from tests.pages.charts import drawn

    db = tmp_path / "shop.duckdb"
    s = Store(db)
    seeded_shop(s, customers=300, seed=5)
    s.close()
    at = app(monkeypatch, db)
    at.run()
    assert_clean(at)
    before = drawn(at)
    assert len(before) >= 3
    box = next(n for n in at.number_input if n.key and n.key.startswith("ana_rank"))
    box.set_value(box.value + 1000 if box.value < 10_000_000 else box.value - 1000).run()
    assert_clean(at)
    moved = drawn(at)
    assert [c["spec"] for c in moved[:2]] == [c["spec"] for c in before[:2]]  # segments and heatmap kept
    s = Store(db)
    for i, cid in enumerate(s.fetchall("SELECT customer_id FROM customers ORDER BY customer_id LIMIT 40")):
        add_order(s, f"late-{i}", cid[0], "2027-03-05", 250_000)
    pipeline.after_settings_change(s)
    s.close()
    at.run()
    assert_clean(at)
    after = drawn(at)
    assert after[0]["spec"] != moved[0]["spec"]
    st.cache_data.clear()
    fresh = app(monkeypatch, db)
    fresh.run()
    for key in ("ana_rank_from", "ana_rank_to"):  # the page keeps the days chosen before the new data
        fresh.date_input(key=key).set_value(at.date_input(key=key).value)
    fresh.number_input(key=box.key).set_value(at.number_input(key=box.key).value).run()
    assert_clean(fresh)
    assert [c["spec"] for c in drawn(fresh)] == [c["spec"] for c in after]
