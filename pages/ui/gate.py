"""Closed by default: the sign-in gate in front of every HTTP route of the console.

Streamlit checks nothing before serving the page shell, opening a websocket session,
accepting uploads (``/_stcore/upload_file/<session>/<file>``: any live session id
will do) or serving ``/media/*`` downloads; ``st.login`` and a password form inside
the script only hide the pages.  :class:`SignInGate` is an ASGI middleware that
``console.py`` mounts through ``st.App``: when sign-in is configured, every request
needs a valid sign-in cookie except Streamlit's static files, its health check and
the sign-in routes themselves.

- OIDC (``[auth]`` in ``secrets.toml``): the cookie is Streamlit's own identity cookie
  (``_streamlit_user``, signed with ``cookie_secret``), checked with Streamlit's
  own decoder; a client without it gets a Japanese page linking to ``/auth/login``.
- Shared password (``CRM_PASSWORD``): ``/_crm/sign-in`` asks for it and, when it is
  right, sets ``crm_session`` (signed with the cookie secret and the password, so a
  new password signs everybody out); failed tries wait exponentially longer, per
  client and for everyone (:class:`crm_core.access.Throttle`).

``THROTTLE`` is deliberately one per server process: the gate and the in-script
password form (when the console runs without the gate) share it.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import os
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlparse

from crm_core.access import Throttle

THROTTLE = Throttle(base=1.0, cap=300.0, global_after=30, window=900.0)
COOKIE = "crm_session"
SIGN_IN_PATH = "/_crm/sign-in"
SIGN_OUT_PATH = "/_crm/sign-out"
MAX_AGE = 7 * 24 * 3600
# Reachable without signing in: the static app shell's files, the health check, sign-in itself.
OPEN_PREFIXES = ("/static/", "/auth/")
OPEN_PATHS = {"/favicon.png", "/oauth2callback", "/_stcore/health", "/_stcore/script-health-check", "/manifest.json"}


def _secrets() -> Mapping[str, Any]:
    from streamlit.runtime.secrets import secrets_singleton

    # A broken secrets.toml raises here: every request then fails (closed), never opens.
    return secrets_singleton.to_dict() if secrets_singleton.load_if_toml_exists() else {}


def configured_password() -> str | None:
    return _secrets().get("CRM_PASSWORD") or os.environ.get("CRM_PASSWORD") or None


def auth_section() -> dict[str, Any] | None:
    section = _secrets().get("auth")
    return dict(section) if section else None


def _serializer(password: str):
    from itsdangerous import URLSafeTimedSerializer
    from streamlit.web.server.server_util import get_cookie_secret

    key = get_cookie_secret() + "|" + hashlib.sha256(password.encode()).hexdigest()
    return URLSafeTimedSerializer(key, salt=COOKIE)


def password_cookie(password: str) -> str:
    """A signed ``crm_session`` value for someone who typed the right password."""
    return _serializer(password).dumps({"ok": True})


def password_cookie_ok(cookies: Mapping[str, str], password: str) -> bool:
    """True when ``cookies`` carry a valid, unexpired ``crm_session`` for this password."""
    from itsdangerous import BadData

    value = cookies.get(COOKIE)
    if not value:
        return False
    try:
        return bool(_serializer(password).loads(value, max_age=MAX_AGE).get("ok"))
    except (BadData, AttributeError):
        return False


def oidc_cookie_ok(cookies: Mapping[str, str], origin: str) -> bool:
    """True when Streamlit's own identity cookie is valid for this origin and says signed in."""
    from streamlit.web.server.starlette import starlette_websocket as ws

    decoded = ws._get_signed_cookie_with_chunks(dict(cookies), "_streamlit_user")
    if decoded is None:
        return False
    return bool(ws._parse_decoded_user_cookie(decoded, origin).get("is_logged_in"))


def _login_links(auth: dict[str, Any]) -> list[tuple[str, str]]:
    from streamlit.auth_util import encode_provider_token

    providers = [n for n, v in auth.items() if isinstance(v, dict)] or ["default"]
    links = []
    for name in providers:
        label = (auth.get(name) or {}).get("label") if name != "default" else None
        label = label or {"google": "Google", "microsoft": "Microsoft", "default": ""}.get(name, name)
        links.append((f"{label} でログイン" if label else "ログイン", "/auth/login?provider=" + encode_provider_token(name)))
    return links


PAGE = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>ログイン — リピートCRMコンソール</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>
body{{font-family:sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}} .err{{color:#b00020}} input,button,a.b{{font-size:1rem;padding:.5rem;margin:.3rem 0}}
a.b,button{{display:inline-block;background:#bf0000;color:#fff;border:0;border-radius:.4rem;text-decoration:none;cursor:pointer}}
</style></head><body><h1>リピートCRMコンソール</h1>{body}</body></html>"""


def _page(body: str, status: int = 200, headers: dict[str, str] | None = None):
    from starlette.responses import HTMLResponse

    return HTMLResponse(PAGE.format(body=body), status_code=status, headers=headers)


def _password_form(message: str = "") -> str:
    err = f'<p class="err">{html.escape(message)}</p>' if message else ""
    return (f"{err}<p>管理者から共有されたパスワードを入力してください。</p>"
            f'<form method="post" action="{SIGN_IN_PATH}"><label>パスワード<br>'
            '<input type="password" name="password" autofocus required></label><br>'
            '<button type="submit">ログイン</button></form>')


class SignInGate:
    """ASGI middleware: nothing that reads or writes shop data answers a client that has not signed in."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        password, auth = configured_password(), auth_section()
        path = scope.get("path", "/")
        if (password is None and auth is None) or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        if path == SIGN_OUT_PATH and scope["type"] == "http":
            from starlette.responses import RedirectResponse

            response = RedirectResponse(SIGN_IN_PATH if auth is None else "/auth/logout", status_code=303)
            response.delete_cookie(COOKIE, path="/")
            await response(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        jar = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header is treated as no cookie
            jar = SimpleCookie()
        cookies = {k: m.value for k, m in jar.items()}
        if auth is not None:
            # The identity cookie names the origin of redirect_uri it was issued for (behind a TLS
            # proxy the request itself arrives as plain http, so its own scheme would not match).
            from streamlit.auth_util import get_origin_from_redirect_uri

            origin = get_origin_from_redirect_uri() or f"http://{headers.get('host', '')}"
            ok = oidc_cookie_ok(cookies, origin)
        else:
            ok = password_cookie_ok(cookies, password)
        if path == SIGN_IN_PATH and scope["type"] == "http" and password is not None and auth is None:
            response = await self._sign_in(scope, receive, password)
            await response(scope, receive, send)
            return
        if ok:
            await self.app(scope, receive, send)
            return
        await self._refuse(scope, receive, send, path, auth)

    async def _refuse(self, scope: dict, receive: Any, send: Any, path: str, auth: dict | None) -> None:
        from starlette.responses import PlainTextResponse, RedirectResponse

        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "sign-in required"})
            return
        is_page = scope.get("method") == "GET" and not path.startswith(("/_stcore/", "/media/", "/component/", "/app/"))
        if is_page and auth is None:
            response = RedirectResponse(SIGN_IN_PATH, status_code=303)
        elif is_page:
            links = "".join(f'<p><a class="b" href="{html.escape(u)}">{html.escape(t)}</a></p>' for t, u in _login_links(auth))
            response = _page("<p>ご利用には、ショップで使っているアカウントでのログインが必要です。</p>" + links, status=401)
        else:
            response = PlainTextResponse("ログインが必要です。", status_code=401)
        await response(scope, receive, send)

    async def _sign_in(self, scope: dict, receive: Any, password: str):
        from starlette.requests import Request
        from starlette.responses import RedirectResponse

        request = Request(scope, receive)
        if request.method != "POST":
            return _page(_password_form())
        client = request.client.host if request.client else "unknown"
        wait = THROTTLE.wait_for(client)
        if wait > 0:
            return _page(_password_form(f"ログインの失敗が続いたため、{int(wait) + 1}秒後にもう一度お試しください。"),
                         status=429, headers={"Retry-After": str(int(wait) + 1)})
        body = (await request.body())[:4096].decode("utf-8", "replace")
        entered = (parse_qs(body).get("password") or [""])[0]
        if not hmac.compare_digest(entered.encode(), password.encode()):
            THROTTLE.failed(client)
            return _page(_password_form("パスワードが違います。"), status=401)
        THROTTLE.succeeded(client)
        response = RedirectResponse("/", status_code=303)
        secure = urlparse(str(request.url)).scheme == "https"
        response.set_cookie(COOKIE, password_cookie(password), max_age=MAX_AGE, httponly=True, samesite="lax",
                            secure=secure, path="/")
        return response

