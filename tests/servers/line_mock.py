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

SPEC_PATH = Path(__file__).resolve().parents[3] / "shared" / "reference" / "line-openapi" / "messaging-api.yml"


@cache
def load_spec() -> dict[str, Any]:
    """LINE's Messaging API spec as a dict (read once)."""
    with open(SPEC_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # keep test output clean
        pass


@cache
def _openapi() -> OpenAPI:
    """openapi-core's view of the spec, served from any local port (built once: it is slow)."""
    spec = copy.deepcopy(load_spec())
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


def validate_schema(instance: Any, schema_name: str) -> list[str]:
    """Errors of ``instance`` against ``#/components/schemas/<schema_name>``, discriminators followed."""
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": load_spec()["components"]}
    _active.refs = set()
    errors = sorted(_Validator(root).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(body)'}: {e.message}" for e in errors]


class LineMock:
    """A threaded local HTTP server standing in for ``https://api.line.me``."""

    def __init__(self, token: str = "test-token", host: str = "127.0.0.1", port: int = 0) -> None:  # noqa: S107 - test token
        self.token = token
        self.display_name = "テストショップ"
        self.requests: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._answers: deque[tuple[int, dict[str, Any], dict[str, str], bool]] = deque()
        self._accepted: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server = make_server(host, port, self._app, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._openapi = _openapi()
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
        """Answer the next valid push with this status (queued; then back to 200).

        ``accept=True`` accepts the push (as if LINE processed it) but still
        answers ``status``: the answer was "lost", so a retry gets 409.
        """
        self._answers.append((status, body or {"message": f"mock {status}"}, headers or {}, accept))

    @property
    def pushes(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/v2/bot/message/push"]

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
        with self._lock:
            self.requests.append(record)
        errors = record["errors"]
        try:
            self._openapi.validate_request(WerkzeugOpenAPIRequest(request))
        except Exception as exc:  # noqa: BLE001 - every validation problem is reported to the test
            errors.append(f"openapi: {exc}; {getattr(exc, '__cause__', '')}")
        if request.path == "/v2/bot/message/push" and request.method == "POST":
            errors += validate_schema(body, "PushMessageRequest")
            key = record["retry_key"]
            if key is not None:
                try:
                    uuid.UUID(key)
                except ValueError:
                    errors.append(f"X-Line-Retry-Key is not a UUID: {key!r}")
        if record["authorization"] != f"Bearer {self.token}":
            return self._json(401, {"message": "Authentication failed. Confirm that the access token in the authorization header is valid."})
        if errors:
            with self._lock:
                self.errors.extend(errors)
            return self._json(400, {"message": "The request body has errors", "details": [{"message": e[:200], "property": ""} for e in errors]})
        if request.path == "/v2/bot/message/push":
            return self._push(record)
        if request.path == "/v2/bot/info" and request.method == "GET":
            return self._json(200, {"userId": "U" + "a" * 32, "basicId": "@123abcde", "displayName": self.display_name,
                                    "chatMode": "chat", "markAsReadMode": "manual"})
        return self._json(404, {"message": "Not found (mock)"})

    def _push(self, record: dict[str, Any]) -> Response:
        key = record["retry_key"]
        with self._lock:
            if key and key in self._accepted:
                return self._json(409, {"message": "The retry key is already accepted"},
                                  {"x-line-accepted-request-id": self._accepted[key]})
            answer = self._answers.popleft() if self._answers else None
        request_id = uuid.uuid4().hex
        if answer is not None:
            status, body, headers, accept = answer
            if accept and key:
                with self._lock:
                    self._accepted[key] = request_id
            if status != 200:
                return self._json(status, body, headers)
        with self._lock:
            if key:
                self._accepted[key] = request_id
        return self._json(200, {"sentMessages": [{"id": str(len(self.pushes)), "quoteToken": "q" + request_id[:8]}]},
                          {"x-line-request-id": request_id})


def main() -> None:  # pragma: no cover - manual use
    parser = argparse.ArgumentParser(description="local LINE Messaging API mock")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="test-token")
    args = parser.parse_args()
    mock = LineMock(args.token, port=args.port)
    print(f"LINE mock on {mock.url}")  # noqa: T201
    mock._server.serve_forever()


if __name__ == "__main__":  # pragma: no cover
    main()
