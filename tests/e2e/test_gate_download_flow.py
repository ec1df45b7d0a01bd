"""Closed by default, with a real download: the ``/media`` URL a signed-in marketer's browser got
is refused to a client without the sign-in cookie (shared password, ``streamlit run console.py``)."""

from __future__ import annotations

import http.client
from urllib.parse import urlparse

import pytest

from crm_core.db import Store
from crm_core.pipeline import import_files
from tests import fixtures as fx
from tests.e2e.browser import Server, wait_idle

PASSWORD = "shop-password-1"


@pytest.fixture()
def server(tmp_path):
    store = Store(tmp_path / "crm.duckdb")
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv")])
    store.close()
    srv = Server(tmp_path, env={"CRM_PASSWORD": PASSWORD}, script="console.py")
    yield srv
    srv.stop()


def _get(server: Server, path: str, cookie: str | None) -> int:
    con = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    con.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    status = con.getresponse().status
    con.close()
    return status


def test_a_download_url_is_useless_without_signing_in(server, page):
    page.goto(server.url + "/analytics")
    assert page.url.endswith("/_crm/sign-in")  # the deep link leads to the sign-in first
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    wait_idle(page)
    page.goto(server.url + "/analytics")
    wait_idle(page)
    with page.expect_download() as info:
        page.get_by_role("button", name="CSVをダウンロード").first.click()
    url = urlparse(info.value.url)
    assert url.path.startswith("/media/")
    cookie = next(f"{c['name']}={c['value']}" for c in page.context.cookies() if c["name"] == "crm_session")
    assert _get(server, url.path, cookie) == 200
    assert _get(server, url.path, None) == 401
