"""Endpoints: LINE webhook signatures and deduplication; signed one-click unsubscribe (RFC 8058), page and rate limit."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from contextlib import closing

import pytest
from starlette.testclient import TestClient

from crm_core import opsdb
from crm_core.messaging import audit, consent
from crm_core.messaging.endpoints import RateLimiter, app
from crm_core.messaging.unsubscribe import Unsubscribe

SECRET = "line-channel-secret-0123"
UNSUB = Unsubscribe("unsubscribe-secret-for-tests-0123456789", "https://crm.example.jp")
USER = "U" + "ab" * 16


def _sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _event(kind: str, event_id: str, ts: int, user: str = USER, redelivery: bool = False) -> dict:
    return {"type": kind, "mode": "active", "timestamp": ts, "webhookEventId": event_id,
            "source": {"type": "user", "userId": user}, "deliveryContext": {"isRedelivery": redelivery},
            **({"replyToken": "r" * 32, "follow": {"isUnblocked": False}} if kind == "follow" else {})}


def _body(*events: dict) -> bytes:
    return json.dumps({"destination": "U" + "0" * 32, "events": list(events)}).encode()


@pytest.fixture()
def ops_path(tmp_path):
    path = tmp_path / "crm.ops.sqlite"
    with closing(opsdb.connect(path)) as con:
        con.execute("INSERT INTO send_ledger (campaign_id, customer_id, channel, address, state, updated_at) VALUES "
                    "(7, 'C1', 'email', 'hanako@example.jp', 'sent', '2026-12-03T03:00:00+00:00'),"
                    "(7, 'C2', 'email', 'taro@example.jp', 'sent', '2026-12-03T03:00:00+00:00')")
    return path


@pytest.fixture()
def client(ops_path):
    with TestClient(app(ops_path, channel_secret=SECRET, unsubscribe=UNSUB, limiter=RateLimiter(limit=1000))) as c:
        yield c


def _ops(path):
    return closing(opsdb.connect(path))


# -- LINE webhook --------------------------------------------------------------------------------
def test_follow_then_unfollow_records_consent_and_suppression(client, ops_path):
    t0 = int(dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp() * 1000)
    body = _body(_event("follow", "01FOLLOW", t0))
    assert client.post("/line/webhook", content=body, headers={"X-Line-Signature": _sign(body)}).status_code == 200
    with _ops(ops_path) as con:
        assert consent.status(con, "line", USER) == "opt_in"
    body = _body(_event("unfollow", "01UNFOLLOW", t0 + 60_000))
    assert client.post("/line/webhook", content=body, headers={"X-Line-Signature": _sign(body)}).status_code == 200
    with _ops(ops_path) as con:
        assert consent.status(con, "line", USER) == "opt_out" and USER in consent.suppressed(con, "line")
        assert consent.history(con, "line", USER)[-1]["source"] == "webhook"


@pytest.mark.parametrize("signature", ["", "bad", _sign(b"something else"), _sign(b"x", "other-secret")],
                         ids=["missing", "garbage", "other-body", "other-secret"])
def test_bad_or_missing_signature_is_refused_before_reading(client, ops_path, signature):
    body = _body(_event("unfollow", "01X", 1764547200000))
    headers = {"X-Line-Signature": signature} if signature else {}
    assert client.post("/line/webhook", content=body, headers=headers).status_code == 400
    with _ops(ops_path) as con:
        assert con.execute("SELECT count(*) FROM webhook_events").fetchone()[0] == 0
        assert consent.status(con, "line", USER) is None


def test_replayed_or_redelivered_events_change_nothing(client, ops_path):
    t0 = 1764547200000
    follow = _body(_event("follow", "01A", t0))
    unfollow = _body(_event("unfollow", "01B", t0 + 1000))
    for body in (follow, unfollow, follow, _body(_event("follow", "01A", t0, redelivery=True))):  # replay + redelivery of the follow
        assert client.post("/line/webhook", content=body, headers={"X-Line-Signature": _sign(body)}).status_code == 200
    with _ops(ops_path) as con:
        assert con.execute("SELECT count(*) FROM webhook_events").fetchone()[0] == 2
        assert len(consent.history(con, "line", USER)) == 2
        assert consent.status(con, "line", USER) == "opt_out"


def test_webhook_without_a_configured_secret_is_not_open(ops_path):
    with TestClient(app(ops_path, channel_secret="")) as c:
        body = _body()
        assert c.post("/line/webhook", content=body, headers={"X-Line-Signature": _sign(body, "")}).status_code == 503


# -- unsubscribe -------------------------------------------------------------------------------
def _path(token: str) -> str:
    return "/unsubscribe/" + token


def test_one_click_post_unsubscribes_the_right_address(client, ops_path):
    url = UNSUB.url(7, "C1")
    assert url.startswith("https://crm.example.jp/unsubscribe/")
    resp = client.post(_path(UNSUB.token(7, "C1")), content=b"List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 200
    with _ops(ops_path) as con:
        assert consent.status(con, "email", "hanako@example.jp") == "opt_out"
        assert consent.status(con, "email", "taro@example.jp") is None
        rec = consent.history(con, "email", "hanako@example.jp")[-1]
        assert (rec["source"], rec["campaign_id"], rec["customer_id"]) == ("unsubscribe", 7, "C1")
        assert audit.entries(con, 7)[0]["action"] == "suppress"


def test_get_shows_a_japanese_confirmation_and_does_not_unsubscribe(client, ops_path):
    resp = client.get(_path(UNSUB.token(7, "C2")))
    assert resp.status_code == 200 and "配信を停止する" in resp.text and 'lang="ja"' in resp.text
    with _ops(ops_path) as con:
        assert consent.status(con, "email", "taro@example.jp") is None
    resp = client.post(_path(UNSUB.token(7, "C2")), data={"confirm": "1"})
    assert resp.status_code == 200 and "配信を停止しました" in resp.text
    with _ops(ops_path) as con:
        assert consent.status(con, "email", "taro@example.jp") == "opt_out"


def test_forged_and_tampered_tokens_are_refused(client, ops_path):
    good = UNSUB.token(7, "C1")
    forged = Unsubscribe("somebody-elses-secret-123456789", "https://x").token(7, "C2")
    tampered = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    payload, sig = good.split(".")
    other_payload = UNSUB.token(7, "C2").split(".")[0]
    for token in (forged, tampered, other_payload + "." + sig, "C2", payload):
        assert client.get(_path(token)).status_code == 400
        resp = client.post(_path(token), content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status_code == 400 and "正しくありません" in resp.text
    with _ops(ops_path) as con:
        assert consent.suppressed(con, "email") == set()


def test_valid_token_for_someone_not_mailed_is_refused(client):
    assert client.get(_path(UNSUB.token(8, "C1"))).status_code == 400


def test_token_names_no_address():
    token = UNSUB.token(7, "C1")
    assert "hanako" not in base64.urlsafe_b64decode(token.split(".")[0] + "==").decode(errors="replace")


def test_rate_limited(ops_path):
    clock = [0.0]
    limiter = RateLimiter(limit=3, window=60, clock=lambda: clock[0])
    with TestClient(app(ops_path, channel_secret=SECRET, unsubscribe=UNSUB, limiter=limiter)) as c:
        codes = [c.get(_path("nope")).status_code for _ in range(4)]
        assert codes == [400, 400, 400, 429]
        clock[0] = 61.0
        assert c.get(_path("nope")).status_code == 400
