"""AppTest for the app shell, home and import pages (uploads themselves are covered in tests/e2e)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from crm_core.db import Store
from crm_core.pipeline import import_files
from tests import fixtures as fx

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def db(tmp_path, monkeypatch):
    path = tmp_path / "crm.duckdb"
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    return path


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def test_empty_store_home_explains_what_to_do(db):
    at = _app().run()
    assert not at.exception
    assert any("まだ注文データがありません" in i.value for i in at.info)


def test_import_page_empty_history(db):
    at = _app()
    at.run()
    at.switch_page("pages/data/import_data.py").run()
    assert not at.exception
    assert at.title[0].value == "📥 データ取込"
    assert any("まだ取り込んだファイルはありません" in i.value for i in at.info)


def test_home_and_import_history_with_data(db, tmp_path):
    store = Store(db)
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv")], rebuild_model=False)
    store.close()
    at = _app().run()
    assert not at.exception
    labels = {m.label: m.value for m in at.metric}
    assert labels["顧客数"] == "1人"  # 山﨑 ㈱花子 only has a cancelled order
    assert labels["注文数"] == "2件"  # the cancelled order is not counted
    at.switch_page("pages/data/import_data.py").run()
    assert not at.exception
    history = at.dataframe[0].value
    assert list(history["ファイル"]) == ["r.csv"]
    assert int(history["追加"].iloc[0]) == 3


def test_empty_cells_read_a_dash_not_none(db, tmp_path):
    """Products without a cost yet: the cost table's empty cells, and every other table's, show — (not 「None」)."""
    store = Store(db)
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv")], rebuild_model=False)
    store.close()
    at = _app().run()
    at.switch_page("pages/data/import_data.py").run()
    assert not at.exception
    costs = next(d for d in at.dataframe if "unit_cost" in d.value.columns)
    assert costs.value["unit_cost"].isna().all()  # nothing costed yet: every cell is empty
    assert [d.proto.placeholder for d in at.dataframe] == ["—"] * len(at.dataframe)
    # what the marketer types (cost, margin) sits next to the product's name, not past five columns of codes
    assert list(costs.proto.column_order)[:3] == ["product_name", "unit_cost", "margin_rate"]


def test_clear_data_needs_confirmation(db, tmp_path):
    store = Store(db)
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv")], rebuild_model=False)
    store.close()
    at = _app()
    at.run()
    at.switch_page("pages/data/import_data.py").run()
    clear = next(b for b in at.button if b.label == "すべてのデータを削除")
    assert clear.disabled
    next(c for c in at.checkbox if "確認しました" in c.label).check().run()
    next(b for b in at.button if b.label == "すべてのデータを削除").click().run()
    assert not at.exception
    assert any("まだ取り込んだファイルはありません" in i.value for i in at.info)


def test_password_gate(db, monkeypatch):
    monkeypatch.setenv("CRM_PASSWORD", "s3cret")
    at = _app().run()
    assert at.text_input[0].label == "パスワード"
    at.text_input[0].input("wrong").run()
    assert any("パスワードが違います" in e.value for e in at.error)
    at.text_input[0].input("s3cret").run()
    assert not at.exception
    assert not at.error


def test_unexpected_errors_are_logged_without_their_message(caplog):
    """A crash shows a Japanese apology; the log names the place but never the message (it may hold customer data)."""
    from pages import ui

    customer = {"name": "髙橋 ①子", "phone": "090-1111-2222"}

    def boom():
        raise ValueError(customer["name"] + customer["phone"])

    with contextlib.suppress(BaseException):  # st.stop() outside a script run
        ui.run(boom)
    assert "unexpected ValueError in boom" in caplog.text
    assert "髙橋" not in caplog.text and "090-1111-2222" not in caplog.text


def _sidebar_text(at: AppTest) -> str:
    return " ".join(c.value for c in at.sidebar.caption)


def test_deleting_everything_confirms_resets_the_checkbox_and_updates_the_sidebar_at_once(db, tmp_path):
    """Issue 11, item 18."""
    store = Store(db)
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv")], rebuild_model=False)
    store.close()
    at = _app()
    at.run()
    at.switch_page("pages/data/import_data.py").run()
    assert "顧客 1人 ・ 注文 2件" in _sidebar_text(at)
    next(c for c in at.checkbox if "確認しました" in c.label).check().run()
    next(b for b in at.button if b.label == "すべてのデータを削除").click().run()
    assert not at.exception
    assert any(s.value.startswith("すべてのデータを削除しました。") for s in at.success)
    box = next(c for c in at.checkbox if "確認しました" in c.label)
    assert box.value is False
    assert next(b for b in at.button if b.label == "すべてのデータを削除").disabled
    assert "データ未登録" in _sidebar_text(at)


def test_import_history_shows_counts_with_separators_and_named_encodings(db, tmp_path):
    """Issue 11, item 16: 「Shift_JIS（cp932）」, counts through a localized number column."""
    store = Store(db)
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv")], rebuild_model=False)
    store.close()
    at = _app()
    at.run()
    at.switch_page("pages/data/import_data.py").run()
    history = at.dataframe[0]
    assert list(history.value["文字コード"]) == ["Shift_JIS（cp932）"]
    config = json.loads(history.proto.columns)
    for column in ("読んだ行", "追加", "更新", "変更なし", "取込不可"):
        assert config[column]["type_config"]["format"] == "localized", column
