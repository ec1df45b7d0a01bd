"""Sign in with OpenID Connect against a local mock provider, see the console, sign out (real browser).

The console runs behind its gate (``streamlit run console.py``); the identity provider is
``oidc-provider-mock`` on a thread of this process.
"""

from __future__ import annotations

import http.client
import re

import pytest
from oidc_provider_mock import User, run_server_in_thread

from tests.e2e.browser import Server, _free_port, wait_idle


@pytest.fixture()
def oidc_server(tmp_path):
    users = [User(sub="owner", claims={"email": "owner@example.jp", "name": "店長"}),
             User(sub="viewer", claims={"email": "viewer@example.jp", "name": "閲覧者"})]
    with run_server_in_thread(user_claims=users) as provider:
        port = _free_port()
        secrets = tmp_path / "secrets.toml"
        secrets.write_text(
            "[auth]\n"
            f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
            'cookie_secret = "a-long-random-test-cookie-secret-0123456789"\n'
            'client_id = "crm-console"\nclient_secret = "not-a-real-secret"\n'
            f'server_metadata_url = "http://127.0.0.1:{provider.server_port}/.well-known/openid-configuration"\n',
            encoding="utf-8",
        )
        srv = Server(tmp_path, script="console.py", port=port, args=("--secrets.files", str(secrets)))
        yield srv
        srv.stop()


def _status(server: Server, method: str, path: str, cookie: str | None) -> int:
    con = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    con.request(method, path, body=b"x" if method == "PUT" else None, headers={"Cookie": cookie} if cookie else {})
    status = con.getresponse().status
    con.close()
    return status


def sign_in_as(page, server: Server, sub: str) -> None:
    page.goto(server.url + "/")
    page.get_by_role("link", name="ログイン").click()  # the gate's page: nothing of the shop before this
    page.get_by_role("button", name=sub, exact=True).click()  # the provider's sign-in form
    page.wait_for_url(re.compile(re.escape(server.url) + r"/?$"))
    wait_idle(page)


def test_sign_in_see_the_console_sign_out(page, oidc_server):
    assert page.goto(oidc_server.url + "/").status == 401
    assert "ログインが必要です" in page.content()
    assert page.locator("[data-testid='stApp']").count() == 0
    sign_in_as(page, oidc_server, "owner")
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_text("店長（承認・管理）").wait_for()
    assert sidebar.get_by_text("ユーザーと権限").count() == 1  # the first user of the shop manages it
    # the gate accepts Streamlit's own identity cookie, and nothing without it
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies() if c["name"].startswith("_streamlit_user"))
    assert _status(oidc_server, "GET", "/media/0123456789abcdef.csv", cookie) == 404  # Streamlit's own answer
    assert _status(oidc_server, "GET", "/media/0123456789abcdef.csv", None) == 401
    assert _status(oidc_server, "PUT", "/_stcore/upload_file/s/f", None) == 401
    sidebar.get_by_role("button", name="ログアウト").click()
    page.wait_for_url(re.compile(r"/oauth2/end_session"))  # Streamlit cleared its cookie, then the provider's sign-out
    assert page.goto(oidc_server.url + "/").status == 401
    assert "ログインが必要です" in page.content()
    assert page.locator("[data-testid='stApp']").count() == 0


def test_second_person_is_refused_until_added(page, oidc_server):
    sign_in_as(page, oidc_server, "owner")  # the owner claims the empty shop
    page.context.clear_cookies()
    sign_in_as(page, oidc_server, "viewer")
    page.get_by_text("このショップを利用する権限がありません").wait_for()
    assert page.locator("[data-testid='stSidebar'] [data-testid='stCaption']").filter(has_text="顧客").count() == 0


def test_a_person_demoted_while_the_calendar_is_open_cannot_save_from_the_proposal(page, oidc_server):
    """The campaign proposal reruns on its own (a fragment), which skips app.py's reading of the role on every page
    run: the role must be read again there, or a person demoted meanwhile saves a plan with the role they had."""
    from crm_core import access
    from crm_core.db import Store

    sign_in_as(page, oidc_server, "owner")  # the first user of the shop: 承認・管理
    owner = access.User("owner@example.jp", "店長", access.Role.ADMIN)
    with Store(oidc_server.db) as store:
        access.add_user(store, owner, "viewer@example.jp", access.Role.OPERATOR)  # 担当: may plan campaigns
    page.context.clear_cookies()
    sign_in_as(page, oidc_server, "viewer")
    page.goto(oidc_server.url + "/calendar")
    wait_idle(page)
    main = page.locator("[data-testid='stMain']")
    main.get_by_role("tab", name="キャンペーン計画").click()
    main.get_by_text("提案された配信").wait_for()

    with Store(oidc_server.db) as store:
        access.set_role(store, owner, "viewer@example.jp", access.Role.VIEWER)  # demoted while the page is open
    main.get_by_role("button", name="この計画を保存").click()
    wait_idle(page)
    main.get_by_text("以上の権限が必要です").first.wait_for()
    with Store(oidc_server.db) as store:
        assert not store.has_table("planned_sends") or store.scalar("SELECT count(*) FROM planned_sends") == 0
