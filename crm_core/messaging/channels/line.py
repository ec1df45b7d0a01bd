"""LINE Messaging API push through ``line-bot-sdk`` v3 (FACTS.md §3).

One logical send creates one ``X-Line-Retry-Key`` (a UUID) and reuses it, with
the identical body, on every retry.  Retries happen only after a 5xx answer or
a timeout / dropped connection; a 409 carrying ``x-line-accepted-request-id``
means LINE had already accepted the first attempt and counts as success.  Other
4xx answers are never retried and become clear Japanese messages.

``Configuration.debug`` is never enabled (it would print the bearer token).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import urllib3

if TYPE_CHECKING:  # the SDK is imported when a message is sent: it takes seconds to import
    from linebot.v3.messaging import Configuration

from crm_core.messaging.channels import CHECKED, FAILED, INVALID, SENT, SendResult
from crm_core.messaging.templates import Rendered

DEFAULT_BASE_URL = "https://api.line.me"
USER_ID_RE = re.compile(r"^U[0-9a-f]{32}$")


def _header(headers: Any, name: str) -> str:
    if not headers:
        return ""
    for key, value in dict(headers).items():
        if key.lower() == name.lower():
            return str(value)
    return ""


def _line_message(body: Any) -> str:
    """LINE's own error text (``message`` and ``details``), never our request."""
    try:
        data = json.loads(body.decode() if isinstance(body, bytes | bytearray) else body or "{}")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(data, dict):
        return ""
    parts = [str(data.get("message", ""))]
    for d in data.get("details") or []:
        if isinstance(d, dict):
            parts.append(f"{d.get('property', '')}: {d.get('message', '')}".strip(": "))
    return " / ".join(p for p in parts if p)[:500]


def explain_status(status: int, line_message: str = "") -> tuple[str, str]:
    """Japanese explanation and an English error code for an HTTP status from LINE."""
    note = f"（LINEからの説明: {line_message}）" if line_message else ""
    if status == 400:
        return (
            "LINEがメッセージを受け付けませんでした（400）。メッセージの内容（文字数・吹き出しの数・URL・画像）と"
            f"送信先のユーザーIDを確認してください。{note}",
            "bad_request",
        )
    if status == 401:
        return (
            "LINEのチャネルアクセストークンが無効です（401）。「送信設定」のチャネルアクセストークンに、"
            "LINE Developersコンソールで発行したチャネルアクセストークン（長期）を登録し直してください。",
            "unauthorized",
        )
    if status == 403:
        return (
            "このチャネルにはメッセージを送る権限がありません（403）。LINE公式アカウントのプランや、"
            f"Messaging APIの利用設定を確認してください。{note}",
            "forbidden",
        )
    if status == 404:
        return (
            "送信先のLINEユーザーが見つかりません（404）。ユーザーIDが正しいか、そのユーザーが"
            "LINE公式アカウントを友だち追加しているかを確認してください。",
            "not_found",
        )
    if status == 429:
        if "monthly limit" in line_message.lower():
            return (
                "今月のメッセージ送信数の上限に達しました（429）。LINE公式アカウントのプランの無料メッセージ数を"
                "確認してください。上限が戻るまで送信できません。",
                "quota_exceeded",
            )
        return (
            "短時間に送信しすぎたため、LINEが一時的に受け付けていません（429）。少し時間をおいてから"
            "もう一度お試しください。",
            "rate_limited",
        )
    if status == 409:
        return ("同じ送信キーのリクエストをLINEがまだ処理中です（409）。少し時間をおいて結果を確認してください。", "conflict")
    if 500 <= status <= 599:
        return (
            f"LINEのサーバーで一時的なエラーが発生しました（{status}）。しばらくしてからもう一度お試しください。",
            "server_error",
        )
    return (f"LINEから予期しない応答がありました（{status}）。{note}", f"http_{status}")


RETRY_SERVER_ERRORS = ("server_error", "timeout", "connection_error")
"""What a one-to-one send retries (FACTS.md: 5xx and timeouts only)."""


def call_with_retries(
    do: Callable[[], Any],
    ok_text: str,
    *,
    max_attempts: int,
    backoff: float,
    sleep: Callable[[float], None],
    retryable: tuple[str, ...] = RETRY_SERVER_ERRORS,
    max_backoff: float | None = None,
    api_errors: tuple[type[BaseException], ...] = (),
) -> SendResult:
    """Run ``do`` (one HTTP request to LINE, always with the same retry key and body) until it succeeds or must stop.

    The one retry loop of the LINE channels (test sends and live sends).  A 409
    with ``x-line-accepted-request-id`` means LINE already accepted an earlier
    attempt: success.  Errors whose code is in ``retryable`` are tried again after
    ``backoff`` seconds, doubled each time (capped at ``max_backoff``); others stop at once.
    """
    from linebot.v3.messaging import ApiException

    caught = (ApiException, *api_errors)
    ok = ok_text.removesuffix("。")
    attempts = 0
    last: SendResult | None = None
    while attempts < max(1, max_attempts):
        if attempts:
            wait = backoff * (2 ** (attempts - 1))
            sleep(wait if max_backoff is None else min(wait, max_backoff))
        attempts += 1
        try:
            response = do()
        except caught as exc:
            status = int(exc.status or 0)
            if status == 409:
                accepted = _header(exc.headers, "x-line-accepted-request-id")
                if accepted:
                    return SendResult(True, SENT, ok + "（前回の送信がすでに受け付けられていました）。",
                                      request_id=accepted, http_status=409, attempts=attempts)
            if status == 0:  # SSL and similar transport errors reported by the SDK
                last = SendResult(False, FAILED, "LINEのサーバーと安全に接続できませんでした。LINE APIの接続先とネットワークを確認してください。",
                                  attempts=attempts, error_code="tls_error")
                break
            text, code = explain_status(status, _line_message(exc.body))
            last = SendResult(False, FAILED, text, request_id=_header(exc.headers, "x-line-request-id"),
                              http_status=status, attempts=attempts, error_code=code)
            if code in retryable:
                continue
            break
        except (urllib3.exceptions.HTTPError, TimeoutError, ConnectionError) as exc:
            timeout = isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError) or "timed out" in str(exc).lower()
            text = ("LINEのサーバーから時間内に応答がありませんでした。しばらくしてからもう一度お試しください。" if timeout
                    else "LINEのサーバーに接続できませんでした。LINE APIの接続先とネットワークを確認してください。")
            last = SendResult(False, FAILED, text, attempts=attempts, error_code="timeout" if timeout else "connection_error",
                              detail=type(exc).__name__)
            if last.error_code in retryable:
                continue
            break
        return SendResult(True, SENT, ok_text, request_id=_header(getattr(response, "headers", None), "x-line-request-id"),
                          http_status=getattr(response, "status_code", 200), attempts=attempts)
    assert last is not None
    return last


class LineSender:
    """Push messages to one LINE user.

    Parameters
    ----------
    access_token : str
        The channel access token (never logged or shown).
    base_url : str, optional
        ``LINE_API_BASE_URL``; ``https://api.line.me`` by default.  Tests point
        it at a local mock server.
    timeout : float
        Seconds per attempt.
    max_attempts : int
        Attempts per logical send (first try included).
    backoff : float
        Seconds before the 2nd attempt, doubled each time.
    sleep : callable
        ``time.sleep``; replaceable in tests.
    """

    channel = "line"

    def __init__(
        self,
        access_token: str,
        base_url: str | None = None,
        *,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._token = access_token
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self._sleep = sleep

    def __repr__(self) -> str:  # never show the token
        return f"LineSender(base_url={self.base_url!r})"

    def _configuration(self) -> Configuration:
        from linebot.v3.messaging import Configuration

        config = Configuration(access_token=self._token, host=self.base_url)
        config.debug = False
        return config

    def send(self, recipient: str, message: Rendered) -> SendResult:
        """Push ``message.line_messages`` to ``recipient`` (a LINE user id)."""
        if not USER_ID_RE.match(recipient or ""):
            return SendResult(False, INVALID, "LINEのユーザーIDは「U」と32文字の英数字です。送信先を確認してください。",
                              error_code="bad_user_id")
        if not message.line_messages:
            return SendResult(False, INVALID, "LINEで送るメッセージが空です。", error_code="empty")
        return self.push(recipient, message.line_messages)

    def check(self) -> SendResult:
        """Ask LINE for the channel's bot info (``GET /v2/bot/info``): checks the token, sends nothing."""
        from linebot.v3.messaging import ApiClient, ApiException, MessagingApi

        try:
            with ApiClient(self._configuration()) as client:
                info = MessagingApi(client).get_bot_info(_request_timeout=self.timeout)
        except ApiException as exc:
            status = int(exc.status or 0)
            if status == 0:
                return SendResult(False, FAILED, "LINEのサーバーと安全に接続できませんでした。LINE APIの接続先とネットワークを確認してください。",
                                  attempts=1, error_code="tls_error")
            text, code = explain_status(status, _line_message(exc.body))
            return SendResult(False, FAILED, text, http_status=status, attempts=1, error_code=code)
        except (urllib3.exceptions.HTTPError, TimeoutError, ConnectionError) as exc:
            return SendResult(False, FAILED, "LINEのサーバーに接続できませんでした。LINE APIの接続先とネットワークを確認してください。",
                              attempts=1, error_code="connection_error", detail=type(exc).__name__)
        name = info.display_name or ""
        return SendResult(True, CHECKED, f"LINE公式アカウント「{name}」に接続できました。", http_status=200, attempts=1)

    def push(self, to: str, messages: list[Mapping[str, Any]]) -> SendResult:
        """One logical push: one retry key for every attempt, identical body."""
        from linebot.v3.messaging import ApiClient, MessagingApi, PushMessageRequest

        try:
            request = PushMessageRequest.from_dict({"to": to, "messages": [dict(m) for m in messages]})
        except (ValueError, TypeError) as exc:
            return SendResult(False, INVALID, "LINEのメッセージの形式が正しくありません。テンプレートを確認してください。",
                              error_code="invalid_message", detail=type(exc).__name__)
        retry_key = str(uuid.uuid4())
        with ApiClient(self._configuration()) as client:
            api = MessagingApi(client)
            last = call_with_retries(
                lambda: api.push_message_with_http_info(request, x_line_retry_key=retry_key, _request_timeout=self.timeout),
                "LINEでテスト送信しました。", max_attempts=self.max_attempts, backoff=self.backoff, sleep=self._sleep)
        if last.ok:
            return last
        attempts = last.attempts
        if last.error_code in RETRY_SERVER_ERRORS and attempts > 1:
            last = SendResult(False, FAILED, last.message + f"（同じ送信キーで{attempts}回試しました。二重に届くことはありません）",
                              request_id=last.request_id, http_status=last.http_status, attempts=attempts,
                              error_code=last.error_code, detail=last.detail)
        return last
