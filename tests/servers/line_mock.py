"""A local LINE Messaging API that validates every request against LINE's OpenAPI spec.

Each request is checked twice against ``shared/reference/line-openapi/messaging-api.yml``:

* with ``openapi-core`` (path, method, headers, bearer security, body schema);
* with a JSON-schema validator that also follows the spec's ``discriminator``
  mappings (``Message`` → ``TextMessage`` / ``FlexMessage``, ``FlexContainer`` →
  ``FlexBubble``, ``FlexComponent`` → ``FlexText`` / ``FlexButton`` ..., ``Action``
  → ``URIAction``), which plain OpenAPI validation skips when a schema has a
  discriminator without ``oneOf``.

It also checks the bearer token and the ``X-Line-Retry-Key`` (a UUID), keeps
what it received in :attr:`LineMock.requests`, answers a retried request that
it already accepted with 409 + ``x-line-accepted-request-id``, and can be told
to answer the next pushes with given statuses (:meth:`LineMock.answer`).

Run it on its own for the browser test or by hand::

    python -m tests.servers.line_mock --port 8765 --token test-token
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import threading
import uuid
from collections import deque
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import ValidationError, validators
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
from openapi_schema_validator import OAS30Validator
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

SPEC_DIR = Path(__file__).resolve().parents[3] / "shared" / "reference" / "line-openapi"
SPEC_PATH = SPEC_DIR / "messaging-api.yml"
SPEC_FILES = {"messaging": "messaging-api.yml", "audience": "manage-audience.yml", "insight": "insight.yml"}


@cache
def load_spec(name: str = "messaging") -> dict[str, Any]:
    """One of LINE's specs (messaging, audience, insight) as a dict (read once)."""
    with open(SPEC_DIR / SPEC_FILES[name], encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def spec_for(path: str) -> str:
    """Which spec describes a request path."""
    if path.startswith("/v2/bot/audienceGroup"):
        return "audience"
    if path.startswith("/v2/bot/insight"):
        return "insight"
    return "messaging"


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # keep test output clean
        pass


@cache
def _openapi(name: str = "messaging") -> OpenAPI:
    """openapi-core's view of a spec, served from any local port (built once: it is slow)."""
    spec = copy.deepcopy(load_spec(name))
    spec["servers"] = [{"url": "http://127.0.0.1:{port}", "variables": {"port": {"default": "80"}}}]
    return OpenAPI.from_dict(spec)


_active = threading.local()


def _discriminator(validator, disc, instance, schema):
    """Follow a discriminator mapping (OpenAPI 3.0) to the concrete sub-schema."""
    if any(k in schema for k in ("oneOf", "anyOf", "allOf")) or not validator.is_type(instance, "object"):
        return  # the library handles discriminators next to oneOf/anyOf/allOf
    name = disc["propertyName"]
    value = instance.get(name)
    ref = disc.get("mapping", {}).get(value)
    if ref is None:
        yield ValidationError(f"unknown {name} {value!r} (allowed: {sorted(disc.get('mapping', {}))})")
        return
    active = _active.__dict__.setdefault("refs", set())
    key = (id(instance), ref)
    if key in active:  # the sub-schema's allOf leads back to this schema
        return
    active.add(key)
    try:
        yield from validator.descend(instance, {"$ref": ref})
    finally:
        active.discard(key)


_Validator = validators.extend(OAS30Validator, {"discriminator": _discriminator})


def validate_schema(instance: Any, schema_name: str, spec: str = "messaging") -> list[str]:
    """Errors of ``instance`` against ``#/components/schemas/<schema_name>``, discriminators followed."""
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": load_spec(spec)["components"]}
    _active.refs = set()
    errors = sorted(_Validator(root).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(body)'}: {e.message}" for e in errors]


BODY_SCHEMAS = {
    ("POST", "/v2/bot/message/push"): ("PushMessageRequest", "messaging"),
    ("POST", "/v2/bot/message/multicast"): ("MulticastRequest", "messaging"),
    ("POST", "/v2/bot/message/narrowcast"): ("NarrowcastRequest", "messaging"),
    ("POST", "/v2/bot/audienceGroup/upload"): ("CreateAudienceGroupRequest", "audience"),
    ("PUT", "/v2/bot/audienceGroup/upload"): ("AddAudienceToAudienceGroupRequest", "audience"),
}
SENDS = ("/v2/bot/message/push", "/v2/bot/message/multicast", "/v2/bot/message/narrowcast")


class LineMock:
    """A threaded local HTTP server standing in for ``https://api.line.me``.

    Beyond push it answers multicast, narrowcast (to an uploaded audience),
    the quota and consumption, audience upload / add / get, narrowcast
    progress and per-unit statistics, each request validated against the
    matching spec file.  :attr:`deliveries` lists ``(user_id, request_id, path)``
    for every accepted send (a retry that got 409 delivers nothing), so tests
    can count what reached each user.  ``quota_limit`` (None = unlimited) and
    ``delay`` / ``delay_after_accept`` (seconds before accepting a send / between
    accepting it and answering) shape the channel; ``on_send(record)``, when set, is
    called as each send arrives (tests look at the sender's ledger at that moment).
    """

    def __init__(self, token: str = "test-token", host: str = "127.0.0.1", port: int = 0) -> None:  # noqa: S107 - test token
        self.token = token
        self.display_name = "テストショップ"
        self.requests: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.deliveries: list[tuple[str, str, str]] = []
        self.quota_limit: int | None = None
        self.usage = 0
        self.delay = 0.0
        self.delay_after_accept = 0.0
        self.conflicts = 0  # retries answered 409 (already accepted)
        self.on_send: Any = None  # called with each send's record (path, body, retry_key) before it is accepted
        self.keep_requests = True
        self.audiences: dict[int, list[str]] = {}
        self.unit_deliveries: dict[str, dict[str, int]] = {}  # custom aggregation unit -> user -> accepted sends
        self.narrowcasts: dict[str, dict[str, Any]] = {}  # request id -> progress LINE reports for it
        self.narrowcast_phase: str | None = None  # force the phase of the next narrowcasts' progress ("failed", "sending", ...)
        self.unknown_users: set[str] = set()  # user ids LINE cannot match (not friends): not counted in an audience, never reached
        self.unit_stats: dict[str, dict[str, Any]] = {}
        self.request_stats: dict[str, dict[str, Any]] = {}  # narrowcast request id -> its insight overview (uniqueImpression, ...)
        self._answers: deque[tuple[int, dict[str, Any], dict[str, str], bool]] = deque()
        self._accepted: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server = make_server(host, port, self._app, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._openapi = {name: _openapi(name) for name in SPEC_FILES}
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LineMock:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
               *, accept: bool = False) -> None:
        """Answer the next valid send (push / multicast / narrowcast) with this status (queued; then back to 200).

        ``accept=True`` accepts the send (as if LINE processed it) but still
        answers ``status``: the answer was "lost", so a retry gets 409.
        """
        self._answers.append((status, body or {"message": f"mock {status}"}, headers or {}, accept))

    def storm(self, count: int, status: int = 429, message: str = "Too Many Requests") -> None:
        """The next ``count`` sends are answered with ``status`` (a 429 storm, a run of 500s)."""
        for _ in range(count):
            self.answer(status, {"message": message})

    @property
    def pushes(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/v2/bot/message/push"]

    @property
    def multicasts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/v2/bot/message/multicast"]

    def delivered_to(self, path: str | None = None) -> dict[str, int]:
        """How many accepted sends (of one endpoint path, or all) reached each user id."""
        out: dict[str, int] = {}
        with self._lock:
            for user, _, where in self.deliveries:
                if path is None or path == where:
                    out[user] = out.get(user, 0) + 1
        return out

    # -- WSGI ---------------------------------------------------------------------------
    def _app(self, environ, start_response):
        request = Request(environ)
        response = self._handle(request)
        return response(environ, start_response)

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
        headers = {"x-line-request-id": uuid.uuid4().hex, **(headers or {})}
        return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")

    def _handle(self, request: Request) -> Response:
        raw = request.get_data()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = {
            "path": request.path,
            "method": request.method,
            "authorization": request.headers.get("Authorization", ""),
            "retry_key": request.headers.get("X-Line-Retry-Key"),
            "body": body,
            "raw": raw,
            "errors": [],
        }
        if self.keep_requests:
            with self._lock:
                self.requests.append(record)
        errors = record["errors"]
        spec = spec_for(request.path)
        try:
            self._openapi[spec].validate_request(WerkzeugOpenAPIRequest(request))
        except Exception as exc:  # noqa: BLE001 - every validation problem is reported to the test
            errors.append(f"openapi: {exc}; {getattr(exc, '__cause__', '')}")
        schema = BODY_SCHEMAS.get((request.method, request.path))
        if schema:
            errors += validate_schema(body, *schema)
        if request.path in SENDS and request.method == "POST":
            key = record["retry_key"]
            if key is not None:
                try:
                    uuid.UUID(key)
                except ValueError:
                    errors.append(f"X-Line-Retry-Key is not a UUID: {key!r}")
        if request.path == "/_mock/deliveries" and request.method == "GET":  # the benchmark's view into the stand-in process
            got = self.unit_deliveries.get(request.args.get("unit", ""), {})
            return self._json(200, {"users": len(got), "twice": sum(n > 1 for n in got.values()), "conflicts": self.conflicts})
        if record["authorization"] != f"Bearer {self.token}":
            return self._json(401, {"message": "Authentication failed. Confirm that the access token in the authorization header is valid."})
        if errors:
            with self._lock:
                self.errors.extend(errors)
            return self._json(400, {"message": "The request body has errors", "details": [{"message": e[:200], "property": ""} for e in errors]})
        if request.path in SENDS:
            return self._push(record)
        return self._other(request, body)

    def _recipients(self, record: dict[str, Any]) -> list[str]:
        body = record["body"] or {}
        if record["path"] == "/v2/bot/message/push":
            return [body["to"]]
        if record["path"] == "/v2/bot/message/multicast":
            return list(body["to"])
        return [u for u in self.audiences.get(int(body.get("recipient", {}).get("audienceGroupId", -1)), []) if u not in self.unknown_users]

    def _push(self, record: dict[str, Any]) -> Response:
        """Every send (push, multicast, narrowcast): retry keys, queued answers, quota."""
        import time

        if self.delay:
            time.sleep(self.delay)
        if self.on_send is not None:
            self.on_send(record)
        key = record["retry_key"]
        users = self._recipients(record)
        with self._lock:
            if key and key in self._accepted:
                self.conflicts += 1
                return self._json(409, {"message": "The retry key is already accepted"},
                                  {"x-line-accepted-request-id": self._accepted[key]})
            answer = self._answers.popleft() if self._answers else None
            if answer is None and self.quota_limit is not None and self.usage + len(users) > self.quota_limit:
                answer = (429, {"message": "You have reached your monthly limit."}, {}, False)
        request_id = uuid.uuid4().hex
        if answer is not None:
            status, body, headers, accept = answer
            if accept:
                self._accept(key, request_id, users, record)
            if status != 200:
                return self._json(status, body, headers)
        self._accept(key, request_id, users, record)
        if self.delay_after_accept:
            time.sleep(self.delay_after_accept)
        if record["path"] == "/v2/bot/message/narrowcast":
            return self._json(202, {}, {"x-line-request-id": request_id})
        if record["path"] == "/v2/bot/message/multicast":
            return self._json(200, {}, {"x-line-request-id": request_id})
        return self._json(200, {"sentMessages": [{"id": str(len(self.deliveries)), "quoteToken": "q" + request_id[:8]}]},
                          {"x-line-request-id": request_id})

    def _accept(self, key: str | None, request_id: str, users: list[str], record: dict[str, Any]) -> None:
        path = record["path"]
        with self._lock:
            if key and key in self._accepted:
                return
            if key:
                self._accepted[key] = request_id
            if path == "/v2/bot/message/narrowcast":
                # LINE delivers a narrowcast later; below 50 recipients it fails with errorCode 4 (FACTS.md)
                phase = self.narrowcast_phase or ("failed" if len(set(users)) < 50 else "succeeded")
                self.narrowcasts[request_id] = {"phase": phase, "users": len(set(users))}
                if phase != "succeeded":
                    return
            self.deliveries.extend((u, request_id, path) for u in users)
            for unit in (record["body"] or {}).get("customAggregationUnits") or []:
                got = self.unit_deliveries.setdefault(unit, {})
                for u in users:
                    got[u] = got.get(u, 0) + 1
            self.usage += len(users)

    def _other(self, request: Request, body: Any) -> Response:
        path, method = request.path, request.method
        if path == "/v2/bot/insight/message/event" and method == "GET":  # statistics of one narrowcast, by request id
            request_id = request.args.get("requestId", "")
            known = self.narrowcasts.get(request_id)
            if known is None:
                return self._json(400, {"message": "The request ID is invalid"})
            overview = {"requestId": request_id, "timestamp": 1764730800, "delivered": known["users"], "uniqueImpression": None,
                        "uniqueClick": None, "uniqueMediaPlayed": None, "uniqueMediaPlayed100Percent": None,
                        **self.request_stats.get(request_id, {})}
            return self._json(200, {"overview": overview, "messages": [], "clicks": []})
        if path == "/v2/bot/info" and method == "GET":
            return self._json(200, {"userId": "U" + "a" * 32, "basicId": "@123abcde", "displayName": self.display_name,
                                    "chatMode": "chat", "markAsReadMode": "manual"})
        if path == "/v2/bot/message/quota" and method == "GET":
            if self.quota_limit is None:
                return self._json(200, {"type": "none"})
            return self._json(200, {"type": "limited", "value": self.quota_limit})
        if path == "/v2/bot/message/quota/consumption" and method == "GET":
            return self._json(200, {"totalUsage": self.usage})
        if path == "/v2/bot/audienceGroup/upload" and method == "POST":
            with self._lock:
                group_id = 1000 + len(self.audiences)
                self.audiences[group_id] = [a["id"] for a in body.get("audiences", [])]
            return self._json(202, {"audienceGroupId": group_id, "createRoute": "MESSAGING_API", "type": "UPLOAD",
                                    "description": body.get("description", ""), "created": 1764720000,
                                    "permission": "READ_WRITE", "expireTimestamp": 1780272000, "isIfaAudience": False})
        if path == "/v2/bot/audienceGroup/upload" and method == "PUT":
            with self._lock:
                self.audiences.setdefault(int(body["audienceGroupId"]), []).extend(a["id"] for a in body.get("audiences", []))
            return self._json(202, {})
        if path.startswith("/v2/bot/audienceGroup/") and method == "GET":
            group_id = int(path.rsplit("/", 1)[-1])
            if group_id not in self.audiences:
                return self._json(400, {"message": "audience not found"})
            return self._json(200, {"audienceGroup": {"audienceGroupId": group_id, "type": "UPLOAD", "description": "crm",
                                                      "status": "READY", "audienceCount": len(set(self.audiences[group_id]) - self.unknown_users),
                                                      "created": 1764720000, "permission": "READ_WRITE",
                                                      "createRoute": "MESSAGING_API", "isIfaAudience": False},
                                    "jobs": []})
        if path == "/v2/bot/message/progress/narrowcast" and method == "GET":
            known = self.narrowcasts.get(request.args.get("requestId", ""))
            if known is None:
                return self._json(400, {"message": "The request ID is invalid"})
            out: dict[str, Any] = {"phase": known["phase"], "acceptedTime": "2026-12-03T10:00:00.000Z"}
            if known["phase"] == "succeeded":
                out |= {"successCount": known["users"], "failureCount": 0, "targetCount": known["users"],
                        "completedTime": "2026-12-03T10:00:05.000Z"}
            elif known["phase"] == "failed":
                small = known["users"] < 50
                out |= {"errorCode": 4 if small else 1, "failedDescription": "audience too small" if small else "internal error",
                        "completedTime": "2026-12-03T10:00:05.000Z"}
            return self._json(200, out)
        if path == "/v2/bot/insight/message/event/aggregation" and method == "GET":
            unit = request.args.get("customAggregationUnit", "")
            first, last = (dt.datetime.strptime(request.args.get(k, ""), "%Y%m%d").date() for k in ("from", "to"))
            if last < first or (last - first).days >= 30:  # a window of at most 30 days (FACTS.md §9)
                self.errors.append(f"insight window {first}..{last} is not 1-30 days")
                return self._json(400, {"message": "The period must be within 30 days"})
            overview = {"uniqueImpression": None, "uniqueClick": None, "uniqueMediaPlayed": None,
                        "uniqueMediaPlayed100Percent": None, **self.unit_stats.get(unit, {})}
            return self._json(200, {"overview": overview, "messages": [], "clicks": []})
        if path == "/v2/bot/info" and method == "GET":
            return self._json(200, {"userId": "U" + "a" * 32, "basicId": "@123abcde", "displayName": "テストショップ",
                                    "chatMode": "chat", "markAsReadMode": "manual"})
        return self._json(404, {"message": "Not found (mock)"})


def main() -> None:  # pragma: no cover - manual use
    parser = argparse.ArgumentParser(description="local LINE Messaging API mock")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--count-only", action="store_true", help="keep no request bodies (benchmarks)")
    args = parser.parse_args()
    mock = LineMock(args.token, port=args.port)
    mock.keep_requests = not args.count_only
    print(f"LINE mock on {mock.url}", flush=True)  # noqa: T201
    mock._server.serve_forever()


if __name__ == "__main__":  # pragma: no cover
    main()
