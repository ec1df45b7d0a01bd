"""Sign-in, roles and shops through the pages (AppTest with a seeded ``st.user`` and ``[auth]`` secrets)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from crm_core import access as A
from crm_core import shops
from crm_core.db import Store
from crm_core.pipeline import import_files
from tests import fixtures as fx

ROOT = Path(__file__).resolve().parents[1]
AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32, "client_id": "crm",
        "client_secret": "s", "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_DB", str(tmp_path / "crm.duckdb"))
    monkeypatch.setenv("CRM_SHOPS_DIR", str(tmp_path / "shops"))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    monkeypatch.delenv("CRM_PASSWORD", raising=False)
    monkeypatch.delenv("CRM_ADMIN_EMAILS", raising=False)
    return tmp_path


def _app(email: str | None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": False} if email is None else {"is_logged_in": True, "email": email, "name": email.split("@")[0]}
    return at


def _shop_with_orders(path: Path, tmp_path: Path, users: dict[str, A.Role]) -> None:
    store = Store(path)
    import_files(store, [fx.rakuten_current(tmp_path / f"{path.parent.name}.csv")], rebuild_model=False)
    admin = A.User("owner@example.jp", "owner", A.Role.ADMIN)
    store.execute("INSERT INTO users VALUES ('owner@example.jp', 'owner', '承認・管理', now(), 'test')")
    for email, role in users.items():
        A.add_user(store, admin, email, role)
    store.close()


def test_signed_out_visitor_sees_only_the_login_button(home, tmp_path):
    _shop_with_orders(home / "crm.duckdb", tmp_path, {})
    at = _app(None).run()
    assert not at.exception
    assert [b.label for b in at.button] == ["ログイン"]
    assert not at.metric and not at.dataframe


def test_first_sign_in_makes_the_owner_admin_and_is_audited(home):
    at = _app("Owner@example.jp").run()
    assert not at.exception
    store = Store(home / "crm.duckdb")
    assert A.list_users(store)[0]["role"] == "承認・管理"
    assert A.audit_log(store)[0]["user_email"] == "owner@example.jp"
    store.close()
    at.switch_page("pages/settings/users.py").run()
    assert at.title[0].value == "👥 ユーザーと権限"


def test_a_stranger_is_refused_the_shop(home, tmp_path):
    _shop_with_orders(home / "crm.duckdb", tmp_path, {})
    at = _app("stranger@example.jp").run()
    assert any("このショップを利用する権限がありません" in e.value for e in at.error)
    assert not at.metric


@pytest.mark.parametrize(("page", "title"), [
    ("pages/audience/segments.py", "セグメント"),
    ("pages/settings/users.py", "ユーザーと権限"),
    ("pages/data/import_data.py", "データ取込"),
    ("pages/settings/settings.py", "送信設定"),
])
def test_viewer_cannot_open_pages_beyond_analyses_and_results(home, tmp_path, page, title):
    _shop_with_orders(home / "crm.duckdb", tmp_path, {"view@example.jp": A.Role.VIEWER})
    at = _app("view@example.jp").run()
    with pytest.raises(ValueError, match="Known pages") as refused:
        at.switch_page(page)
    known = str(refused.value).split("Known pages:")[1]
    assert page not in known
    assert all(p in known for p in ("pages/start/home.py", "pages/analysis/analytics.py", "pages/results/results.py"))
    at.switch_page("pages/analysis/analytics.py").run()
    assert at.title[0].value == "顧客分析"


def test_operator_is_refused_deleting_data_by_the_library_not_only_the_button(home, tmp_path):
    _shop_with_orders(home / "crm.duckdb", tmp_path, {"op@example.jp": A.Role.OPERATOR})
    at = _app("op@example.jp").run()
    at.switch_page("pages/data/import_data.py").run()
    assert at.title[0].value == "📥 データ取込"
    clear = next(b for b in at.button if b.label == "すべてのデータを削除")
    assert clear.disabled
    # a forged click (the button is only hidden): the same ui.run path refuses it
    forged = AppTest.from_function(_forged_clear, default_timeout=60).run()
    assert any("データの削除" in e.value and "承認・管理" in e.value for e in forged.error)
    assert not forged.markdown
    store = Store(home / "crm.duckdb")
    assert not store.is_empty()
    assert A.audit_log(store)[0]["action"] != "data.delete"
    store.close()


def _forged_clear():
    import streamlit as st

    from crm_core import access as A
    from pages import ui

    st.session_state["auth_user"] = A.User("op@example.jp", "op", A.Role.OPERATOR)
    ui.run(ui.store().clear_data)
    st.markdown("cleared")


def test_one_shops_user_cannot_see_another_shop(home, tmp_path):
    _shop_with_orders(shops.db_path("north"), tmp_path, {"a@example.jp": A.Role.ADMIN})
    _shop_with_orders(shops.db_path("south"), tmp_path, {"b@example.jp": A.Role.ADMIN})
    Store(home / "crm.duckdb").close()
    at = _app("a@example.jp").run()
    box = at.sidebar.selectbox(key="shop_select")
    assert "south" not in box.options and "north" in box.options
    box.set_value("north").run()
    assert not at.exception
    assert any("顧客" in c.value for c in at.sidebar.caption)
    at.session_state["shop"] = "south"  # even a forged session key does not open it
    at.run()
    assert at.session_state["shop"] == "north"
    south = Store(shops.db_path("south"))
    assert "a@example.jp" not in {u["email"] for u in A.list_users(south)}
    assert "a@example.jp" not in {r["user_email"] for r in A.audit_log(south)}
    south.close()
