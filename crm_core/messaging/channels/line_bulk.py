"""LINE bulk sends through ``line-bot-sdk`` v3: multicast, audience + narrowcast, quota (FACTS.md §3, §9).

Every call that sends takes a ``retry_key`` from the caller: the caller stores
it (with the batch's body) *before* the first request and passes the same key
and body on every retry, also after a crash.  LINE answers a retry of a
request it already accepted with 409 and ``x-line-accepted-request-id``: that
counts as success, so a batch is never delivered twice.

Retries: 5xx, timeouts, dropped connections and 429 "too many requests" are
retried with exponential backoff (capped); a 429 for the monthly limit stops
at once (``error_code == "quota_exceeded"``), other 4xx are never retried.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crm_core.messaging.channels import INVALID, SendResult
from crm_core.messaging.channels.line import DEFAULT_BASE_URL, call_with_retries

MULTICAST_MAX = 500
"""User ids per multicast request (LINE's limit)."""
NARROWCAST_MIN = 50
"""Below this audience size a narrowcast is accepted and then fails (errorCode 4): multicast instead."""
AUDIENCE_CHUNK = 10_000
"""User ids per audience upload request (JSON)."""
RETRYABLE = ("server_error", "timeout", "connection_error", "rate_limited")


def new_retry_key() -> str:
    """A fresh ``X-Line-Retry-Key`` (a UUID)."""
    return str(uuid.uuid4())


def aggregation_unit(campaign_id: int | str) -> str:
    """The per-campaign custom aggregation unit name (``^[a-zA-Z0-9_]{1,30}$``)."""
    return f"crm_campaign_{campaign_id}"[:30]


@dataclass(frozen=True)
class Quota:
    """The month's message quota: ``limit`` None means unlimited (pay as you go)."""

    limit: int | None
    used: int

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    def allows(self, messages: int) -> bool:
        return self.limit is None or self.used + messages <= self.limit


class LineBulk:
    """Bulk sends to many LINE users of one channel.

    Parameters
    ----------
    access_token : str
        The channel access token (never logged or shown).
    base_url : str, optional
        ``https://api.line.me`` by default; tests point it at the local stand-in.
    max_attempts : int
        Attempts per request (first try included).
    backoff, max_backoff : float
        Seconds before the 2nd attempt, doubled each time up to ``max_backoff``.
    sleep : callable
        ``time.sleep``; replaceable in tests.
    """

    def __init__(
        self,
        access_token: str,
        base_url: str | None = None,
        *,
        timeout: float = 15.0,
        max_attempts: int = 8,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._token = access_token
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._client: Any = None

    def __repr__(self) -> str:  # never show the token
        return f"LineBulk(base_url={self.base_url!r})"

    # -- clients ------------------------------------------------------------------------
    def _messaging(self) -> Any:
        from linebot.v3.messaging import ApiClient, Configuration, MessagingApi

        if self._client is None:
            config = Configuration(access_token=self._token, host=self.base_url)
            config.debug = False
            self._client = ApiClient(config)
        return MessagingApi(self._client)

    def _audience(self) -> Any:
        from linebot.v3.audience import ApiClient, Configuration, ManageAudience

        config = Configuration(access_token=self._token, host=self.base_url)
        config.debug = False
        return ManageAudience(ApiClient(config))

    def open(self) -> None:
        """Import the SDK and build the client now (it takes seconds), not between a batch's intent and its request."""
        import linebot.v3.audience  # noqa: F401 - its ApiException is caught in _call
        from linebot.v3.messaging import MulticastRequest, NarrowcastRequest  # noqa: F401

        self._messaging()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- the retry loop -------------------------------------------------------------------
    def _call(self, do: Callable[[], Any], ok_text: str) -> SendResult:
        """Run ``do`` (one HTTP request with the same key and body) until it succeeds or must stop (429 is retried too)."""
        from linebot.v3.audience import ApiException as AudienceApiException

        return call_with_retries(do, ok_text, max_attempts=self.max_attempts, backoff=self.backoff, max_backoff=self.max_backoff,
                                 sleep=self._sleep, retryable=RETRYABLE, api_errors=(AudienceApiException,))

    # -- sends ----------------------------------------------------------------------------
    def multicast(self, to: Sequence[str], messages: Sequence[Mapping[str, Any]], *, retry_key: str,
                  aggregation_unit: str = "") -> SendResult:
        """One multicast (at most 500 user ids) with the caller's retry key."""
        from linebot.v3.messaging import MulticastRequest

        if not 1 <= len(to) <= MULTICAST_MAX:
            raise ValueError(f"multicast needs 1..{MULTICAST_MAX} user ids, got {len(to)}")
        body: dict[str, Any] = {"to": list(to), "messages": [dict(m) for m in messages]}
        if aggregation_unit:
            body["customAggregationUnits"] = [aggregation_unit]
        try:
            request = MulticastRequest.from_dict(body)
        except (ValueError, TypeError) as exc:
            return SendResult(False, INVALID, "LINEのメッセージの形式が正しくありません。テンプレートを確認してください。",
                              error_code="invalid_message", detail=type(exc).__name__)
        api = self._messaging()
        return self._call(lambda: api.multicast_with_http_info(request, x_line_retry_key=retry_key,
                                                                _request_timeout=self.timeout),
                          "LINEで送信しました。")

    def narrowcast(self, messages: Sequence[Mapping[str, Any]], *, audience_group_id: int, retry_key: str) -> SendResult:
        """A narrowcast to an uploaded audience with the caller's retry key (202 = accepted)."""
        from linebot.v3.messaging import NarrowcastRequest

        body = {"messages": [dict(m) for m in messages],
                "recipient": {"type": "audience", "audienceGroupId": int(audience_group_id)}}
        request = NarrowcastRequest.from_dict(body)
        api = self._messaging()
        return self._call(lambda: api.narrowcast_with_http_info(request, x_line_retry_key=retry_key,
                                                                 _request_timeout=self.timeout),
                          "LINEで送信を受け付けました（絞り込み配信）。")

    def narrowcast_progress(self, request_id: str) -> dict[str, Any]:
        """``phase``, ``successCount``, ``failureCount``, ``errorCode`` of a narrowcast."""
        out = self._messaging().get_narrowcast_progress(request_id, _request_timeout=self.timeout)
        return out.to_dict()

    def wait_narrowcast(self, request_id: str, timeout: float = 600.0) -> dict[str, Any]:
        """Poll a narrowcast's progress until ``succeeded`` or ``failed`` (or ``timeout`` seconds: the last phase is returned)."""
        waited, pause = 0.0, 1.0
        while True:
            progress = self.narrowcast_progress(request_id)
            if progress.get("phase") in ("succeeded", "failed") or waited >= timeout:
                return progress
            self._sleep(pause)
            waited += pause
            pause = min(pause * 2, self.max_backoff)

    # -- quota and audiences --------------------------------------------------------------
    def quota(self) -> Quota:
        """The month's quota and consumption (two GET requests)."""
        api = self._messaging()
        q = api.get_message_quota(_request_timeout=self.timeout)
        used = api.get_message_quota_consumption(_request_timeout=self.timeout)
        limited = str(getattr(q.type, "value", q.type)) == "limited"
        return Quota(limit=int(q.value) if limited and q.value is not None else None, used=int(used.total_usage or 0))

    def create_audience(self, description: str, user_ids: Sequence[str]) -> int:
        """Upload user ids as a new audience (10,000 per request); returns the audience group id."""
        from linebot.v3.audience import AddAudienceToAudienceGroupRequest, CreateAudienceGroupRequest

        api = self._audience()
        ids = list(user_ids)
        first, rest = ids[:AUDIENCE_CHUNK], ids[AUDIENCE_CHUNK:]
        created = api.create_audience_group(CreateAudienceGroupRequest.from_dict(
            {"description": description[:120], "isIfaAudience": False, "audiences": [{"id": i} for i in first]}))
        group_id = int(created.audience_group_id)
        for start in range(0, len(rest), AUDIENCE_CHUNK):
            chunk = rest[start:start + AUDIENCE_CHUNK]
            api.add_audience_to_audience_group(AddAudienceToAudienceGroupRequest.from_dict(
                {"audienceGroupId": group_id, "audiences": [{"id": i} for i in chunk]}))
        return group_id

    def audience_size(self, audience_group_id: int, timeout: float = 300.0) -> int:
        """``audienceCount`` of an audience once LINE has processed the upload (LINE counts only ids it could match).

        0 when the audience is not ``READY`` within ``timeout`` seconds or failed.
        """
        waited, pause = 0.0, 1.0
        while True:
            group = self._audience().get_audience_data(int(audience_group_id)).audience_group
            status = str(getattr(group.status, "value", group.status) or "")
            if status == "READY":
                return int(group.audience_count or 0)
            if status not in ("IN_PROGRESS", "ACTIVATING", "") or waited >= timeout:
                return 0
            self._sleep(pause)
            waited += pause
            pause = min(pause * 2, self.max_backoff)

    def request_statistics(self, request_id: str) -> dict[str, Any]:
        """Statistics of one narrowcast by its request id (narrowcasts carry no aggregation unit, FACTS.md §9);
        LINE's nulls stay None (below its privacy threshold)."""
        from linebot.v3.insight import ApiClient, Configuration, Insight

        config = Configuration(access_token=self._token, host=self.base_url)
        config.debug = False
        with ApiClient(config) as client:
            resp = Insight(client).get_message_event(request_id)
        overview = resp.overview.to_dict() if resp.overview else {}
        return {k: overview.get(k) for k in ("delivered", "uniqueImpression", "uniqueClick", "uniqueMediaPlayed",
                                             "uniqueMediaPlayed100Percent")}

    def unit_statistics(self, unit: str, date_from: str, date_to: str) -> dict[str, Any]:
        """Per-aggregation-unit statistics (``yyyyMMdd`` JST dates); LINE's nulls stay None (below its privacy threshold)."""
        from linebot.v3.insight import ApiClient, Configuration, Insight

        config = Configuration(access_token=self._token, host=self.base_url)
        config.debug = False
        with ApiClient(config) as client:
            resp = Insight(client).get_statistics_per_unit(unit, date_from, date_to)
        overview = resp.overview.to_dict() if resp.overview else {}
        return {k: overview.get(k) for k in ("uniqueImpression", "uniqueClick", "uniqueMediaPlayed", "uniqueMediaPlayed100Percent")}
