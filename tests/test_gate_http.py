"""Closed by default: each bypass tried with real HTTP requests against a real ``streamlit run console.py``.

With the shared password set, a client that never signed in gets no page, no websocket
session, no upload and no ``/media`` download, and guessing the password is throttled.
"""

from __future__ import annotations

import asyncio
import http.client
import time
import urllib.parse

import pytest
import websockets

from tests.e2e.browser import Server

pytestmark = pytest.mark.slow
PASSWORD = "correct horse"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("gate"), env={"CRM_PASSWORD": PASSWORD}, script="console.py")
    yield srv
    srv.stop()


def request(server: Server, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    con = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    con.request(method, path, body=body, headers=headers or {})
    resp = con.getresponse()
    resp.body = resp.read()
    con.close()
    return resp


def sign_in(server: Server, password: str, client_headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    return request(server, "POST", "/_crm/sign-in", urllib.parse.urlencode({"password": password}).encode(),
                   {"Content-Type": "application/x-www-form-urlencoded", **(client_headers or {})})


def ws_open(server: Server, cookie: str | None) -> bool:
    async def attempt() -> bool:
        headers = {"Cookie": cookie} if cookie else {}
        try:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/_stcore/stream", additional_headers=headers,
                                          subprotocols=["streamlit"], open_timeout=20):
                return True
        except websockets.exceptions.InvalidStatus as exc:
            assert exc.response.status_code == 403
            return False
    # In a thread of its own: earlier browser tests in the same session (Playwright's sync API)
    # leave an event loop running in the main thread, where asyncio.run() refuses to start.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, attempt()).result()


def test_a_client_that_never_signed_in_gets_nothing(server):
    page = request(server, "GET", "/")
    assert page.status == 303 and page.getheader("Location") == "/_crm/sign-in"
    assert request(server, "GET", "/segments").status == 303
    for method, path in [("GET", "/media/0123456789abcdef.csv"), ("GET", "/_stcore/host-config"),
                         ("PUT", "/_stcore/upload_file/any-session/any-file"), ("GET", "/component/x/index.html")]:
        resp = request(server, method, path, body=b"x" * 1024 if method == "PUT" else None)
        assert resp.status == 401, (method, path)
        assert "ログインが必要です" in resp.body.decode()
    assert not ws_open(server, None)  # no websocket session, so no session id to upload to
    form = request(server, "GET", "/_crm/sign-in")
    assert form.status == 200 and "パスワード" in form.body.decode()
    assert request(server, "GET", "/_stcore/health").status == 200


def test_signed_in_client_reaches_streamlit_and_a_forged_cookie_does_not(server):
    done = sign_in(server, PASSWORD)
    assert done.status == 303
    cookie = done.getheader("Set-Cookie").split(";")[0]
    assert "HttpOnly" in done.getheader("Set-Cookie")
    assert request(server, "GET", "/", headers={"Cookie": cookie}).status == 200
    # behind the gate Streamlit itself answers: an unknown media file is its 404, not the gate's 401
    assert request(server, "GET", "/media/0123456789abcdef.csv", headers={"Cookie": cookie}).status == 404
    assert ws_open(server, cookie)
    name, value = cookie.split("=", 1)
    forged = f"{name}={value[:-2]}xx"
    assert request(server, "GET", "/media/0123456789abcdef.csv", headers={"Cookie": forged}).status == 401
    assert not ws_open(server, forged)
    out = request(server, "GET", "/_crm/sign-out", headers={"Cookie": cookie})
    assert out.status == 303 and 'crm_session=""' in out.getheader("Set-Cookie")


def test_guessing_the_password_is_throttled(server):
    t0 = time.monotonic()
    first = sign_in(server, "guess-1")
    assert first.status == 401 and "パスワードが違います" in first.body.decode()
    second = sign_in(server, "guess-2")  # immediately: refused without even checking
    assert second.status == 429 and int(second.getheader("Retry-After")) >= 1
    assert "秒後にもう一度" in second.body.decode()
    right_away = sign_in(server, PASSWORD)  # the right password too, until the delay is over
    assert right_away.status == 429
    time.sleep(max(0.0, 1.1 - (time.monotonic() - t0)))
    assert sign_in(server, "guess-3").status == 401
    third = sign_in(server, "guess-4")
    assert third.status == 429 and int(third.getheader("Retry-After")) >= 2  # the delay doubled
