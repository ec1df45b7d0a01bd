"""The public endpoints of live sends as Starlette routes: the LINE webhook and the one-click unsubscribe link.

The endpoint service (``python -m crm_core serve``) mounts :func:`routes`; the
tests and a small deployment can also run :func:`app` alone.

* ``POST /line/webhook`` — ``X-Line-Signature`` (base64 HMAC-SHA256 of the raw
  body with the channel secret) is checked with line-bot-sdk's
  ``SignatureValidator`` before anything in the body is read; a missing or
  wrong signature gets 400.  The answer is sent at once and the events are
  recorded after it (a background task): ``follow`` records the LINE user id
  with an opt-in, ``unfollow`` (block) an opt-out, both at the event's own
  time.  Every ``webhookEventId`` is stored once, so a redelivery or a replay
  changes nothing.
* ``GET /unsubscribe/{token}`` — a Japanese page that asks for confirmation
  (link scanners that open links do not unsubscribe anyone);
  ``POST /unsubscribe/{token}`` — RFC 8058 one-click (body
  ``List-Unsubscribe=One-Click``) or the page's button: records the opt-out at
  once.  Tokens are signed per recipient and campaign
  (:mod:`crm_core.messaging.unsubscribe`); requests are rate-limited per client.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from crm_core import opsdb
from crm_core.clock import now_utc as clock_now_utc
from crm_core.messaging import audit, consent
from crm_core.messaging import ledger as _ledger  # noqa: F401 - registers send_ledger, read by the unsubscribe link
from crm_core.messaging.unsubscribe import Unsubscribe

MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS webhook_events (
        event_id    TEXT PRIMARY KEY,
        type        TEXT NOT NULL,
        user_id     TEXT,
        occurred_at TEXT,
        redelivery  INTEGER NOT NULL DEFAULT 0,
        received_at TEXT NOT NULL
    );
    """,
]
opsdb.register("webhook", MIGRATIONS)


class RateLimiter:
    """At most ``limit`` requests per ``window`` seconds per client (kept in the app, not the module)."""

    def __init__(self, limit: int = 30, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle clients
                for k in [k for k, v in self._hits.items() if not v]:
                    del self._hits[k]
            return True


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    doc = f"""<!doctype html><html lang="ja"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">
<title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;line-height:1.7}}
button{{font-size:1rem;padding:.6rem 1.4rem}}</style></head>
<body><h1>{html.escape(title)}</h1>{body}</body></html>"""
    return HTMLResponse(doc, status_code=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _ms_to_iso(ms: Any) -> str | None:
    try:
        return dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC).isoformat()
    except (TypeError, ValueError, OverflowError):
        return None


def record_events(ops_path: Path, events: list[dict[str, Any]], now: Callable[[], dt.datetime]) -> int:
    """Store each new webhook event once and apply follow / unfollow; returns how many were new."""
    new = 0
    with closing(opsdb.connect(ops_path)) as con:
        for ev in events:
            event_id = str(ev.get("webhookEventId") or "")
            kind = str(ev.get("type") or "")
            source = ev.get("source") or {}
            user = source.get("userId") if isinstance(source, dict) else None
            if not event_id:
                continue
            occurred = _ms_to_iso(ev.get("timestamp"))
            with opsdb.transaction(con):
                cur = con.execute(
                    "INSERT OR IGNORE INTO webhook_events (event_id, type, user_id, occurred_at, redelivery, received_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [event_id, kind, user, occurred, int(bool((ev.get("deliveryContext") or {}).get("isRedelivery"))),
                     now().astimezone(dt.UTC).isoformat()])
                if cur.rowcount == 0:
                    continue  # seen before: a redelivery or a replay
                new += 1
                if kind in ("follow", "unfollow") and user:
                    consent.record(con, "line", user, "opt_in" if kind == "follow" else "opt_out", "webhook",
                                   occurred_at=occurred, actor="LINE", now=now())
    return new


def routes(
    ops_path: Path | str,
    *,
    channel_secret: str = "",
    unsubscribe: Unsubscribe | None = None,
    limiter: RateLimiter | None = None,
    clock: Callable[[], dt.datetime] = clock_now_utc,
) -> list[Route]:
    """The routes to mount (``/line/webhook``, ``/unsubscribe/{token}``)."""
    ops_path = Path(ops_path)
    limiter = limiter or RateLimiter()

    async def line_webhook(request: Request) -> Response:
        from linebot.v3 import SignatureValidator

        signature = request.headers.get("x-line-signature", "")
        raw = await request.body()
        if not channel_secret:
            return PlainTextResponse("webhook not configured", status_code=503)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return PlainTextResponse("bad body", status_code=400)
        if not signature or not SignatureValidator(channel_secret).validate(text, signature):
            return PlainTextResponse("invalid signature", status_code=400)
        try:
            payload = json.loads(text)
            events = [e for e in payload.get("events", []) if isinstance(e, dict)]
        except (ValueError, AttributeError):
            return PlainTextResponse("bad body", status_code=400)
        return JSONResponse({}, background=BackgroundTask(record_events, ops_path, events, clock))

    def _client(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def _read(token: str) -> tuple[int, str, str] | None:
        if unsubscribe is None:
            return None
        found = unsubscribe.read(token)
        if found is None:
            return None
        campaign_id, customer_id = found
        with closing(opsdb.connect(ops_path)) as con:
            row = con.execute("SELECT address FROM send_ledger WHERE campaign_id = ? AND customer_id = ? AND channel = 'email'",
                              [campaign_id, customer_id]).fetchone()
        return (campaign_id, customer_id, row[0]) if row and row[0] else None

    bad = ("リンクが正しくありません",
           "<p>この配信停止リンクは正しくないか、期限が切れています。メールに記載のリンクをもう一度お試しいただくか、"
           "お問い合わせ先までご連絡ください。</p>")

    async def unsubscribe_page(request: Request) -> Response:
        if not limiter.allow(_client(request)):
            return _page("しばらくお待ちください", "<p>短時間にアクセスが集中しています。少し時間をおいてからお試しください。</p>", 429)
        token = request.path_params["token"]
        if _read(token) is None:
            return _page(*bad, status=400)
        form = (f'<form method="post" action="{html.escape(str(request.url.path))}">'
                '<input type="hidden" name="confirm" value="1">'
                "<p>このメールアドレスへの今後のお知らせメールの配信を停止します。よろしければ下のボタンを押してください。</p>"
                '<button type="submit">配信を停止する</button></form>')
        return _page("メール配信の停止", form)

    async def unsubscribe_post(request: Request) -> Response:
        if not limiter.allow(_client(request)):
            return PlainTextResponse("too many requests", status_code=429)
        token = request.path_params["token"]
        found = _read(token)
        if found is None:
            return _page(*bad, status=400)
        form = {k: v[0] for k, v in parse_qs((await request.body())[:2048].decode("utf-8", "replace")).items()}
        one_click = form.get("List-Unsubscribe") == "One-Click"
        if not one_click and form.get("confirm") != "1":
            return _page(*bad, status=400)
        campaign_id, customer_id, address = found
        with closing(opsdb.connect(ops_path)) as con, opsdb.transaction(con):
            if consent.status(con, "email", address) != "opt_out":
                consent.suppress(con, "email", address, source="unsubscribe", reason="one-click" if one_click else "page",
                                 actor="recipient", campaign_id=campaign_id, customer_id=customer_id, now=clock())
                audit.log(con, "recipient", "suppress", campaign_id, now=clock(), channel="email", source="unsubscribe")
        if one_click:
            return PlainTextResponse("unsubscribed")
        return _page("配信を停止しました", "<p>今後、このメールアドレスにお知らせメールはお送りしません。"
                     "ご利用ありがとうございました。</p>")

    return [
        Route("/line/webhook", line_webhook, methods=["POST"]),
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe_post, methods=["POST"]),
    ]


def app(ops_path: Path | str, **kw: Any) -> Starlette:
    """A Starlette app with only these routes (tests, or a deployment without the full service)."""
    return Starlette(routes=routes(ops_path, **kw))
