"""Bulk channels: LINE multicast / narrowcast / quota against the spec-validating stand-in; SMTP session against aiosmtpd."""

from __future__ import annotations

import pytest

from crm_core.messaging import templates as T
from crm_core.messaging.channels.email_bulk import SmtpSession, campaign_message, is_rakuten_relay, new_message_id
from crm_core.messaging.channels.line_bulk import MULTICAST_MAX, LineBulk, aggregation_unit, new_retry_key
from tests.servers.customers import shop_profile
from tests.servers.line_mock import LineMock
from tests.servers.smtp_sink import SmtpSink

TOKEN = "bulk-token"
USERS = [f"U{i:032x}" for i in range(1, 1201)]
MESSAGES = [{"type": "text", "text": "冬のセールが始まりました🎁"}]
FROM = "shop@natural.example.jp"


@pytest.fixture()
def line():
    with LineMock(TOKEN) as mock:
        yield mock


def _bulk(mock: LineMock, **kw) -> LineBulk:
    sleeps: list[float] = []
    bulk = LineBulk(TOKEN, mock.url, sleep=sleeps.append, timeout=5, **kw)
    bulk.sleeps = sleeps  # type: ignore[attr-defined]
    return bulk


def test_multicast_batch_is_valid_and_carries_key_and_aggregation_unit(line):
    key = new_retry_key()
    result = _bulk(line).multicast(USERS[:MULTICAST_MAX], MESSAGES, retry_key=key, aggregation_unit=aggregation_unit(42))
    assert result.ok and result.request_id, result
    assert line.errors == []
    (req,) = line.multicasts
    assert req["retry_key"] == key and len(req["body"]["to"]) == 500
    assert req["body"]["customAggregationUnits"] == ["crm_campaign_42"]
    assert len(line.deliveries) == 500


def test_multicast_over_500_is_refused_before_sending(line):
    with pytest.raises(ValueError):
        _bulk(line).multicast(USERS[:501], MESSAGES, retry_key=new_retry_key())
    assert line.requests == []


def test_resending_an_accepted_batch_with_its_key_delivers_nothing_twice(line):
    key = new_retry_key()
    bulk = _bulk(line)
    first = bulk.multicast(USERS[:10], MESSAGES, retry_key=key)
    again = bulk.multicast(USERS[:10], MESSAGES, retry_key=key)  # e.g. after a crash before the outcome was stored
    assert first.ok and again.ok and again.http_status == 409 and again.request_id == first.request_id
    assert line.delivered_to() == {u: 1 for u in USERS[:10]}


def test_429_storm_is_retried_with_backoff_and_the_same_key(line):
    line.storm(5, 429)
    bulk = _bulk(line)
    result = bulk.multicast(USERS[:3], MESSAGES, retry_key=new_retry_key())
    assert result.ok and result.attempts == 6
    assert len({r["retry_key"] for r in line.multicasts}) == 1
    assert bulk.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert line.delivered_to() == {u: 1 for u in USERS[:3]}


def test_backoff_is_capped(line):
    line.storm(7, 500)
    bulk = _bulk(line, max_backoff=3.0)
    assert bulk.multicast(USERS[:1], MESSAGES, retry_key=new_retry_key()).ok
    assert max(bulk.sleeps) == 3.0


def test_lost_answer_then_retry_gets_409_and_counts_once(line):
    line.answer(500, accept=True)
    result = _bulk(line).multicast(USERS[:4], MESSAGES, retry_key=new_retry_key())
    assert result.ok and result.http_status == 409
    assert line.delivered_to() == {u: 1 for u in USERS[:4]}


def test_monthly_limit_stops_without_retrying(line):
    line.quota_limit = 5
    result = _bulk(line).multicast(USERS[:6], MESSAGES, retry_key=new_retry_key())
    assert not result.ok and result.error_code == "quota_exceeded" and result.attempts == 1
    assert line.deliveries == []


def test_quota_and_consumption(line):
    bulk = _bulk(line)
    assert bulk.quota().limit is None
    line.quota_limit = 5000
    bulk.multicast(USERS[:20], MESSAGES, retry_key=new_retry_key())
    quota = bulk.quota()
    assert (quota.limit, quota.used, quota.remaining) == (5000, 20, 4980)
    assert quota.allows(4980) and not quota.allows(4981)
    assert line.errors == []


def test_audience_upload_in_chunks_then_narrowcast(line):
    bulk = _bulk(line)
    ids = [f"U{i:032x}" for i in range(1, 12_001)]
    group = bulk.create_audience("施策42", ids)
    assert bulk.audience_size(group) == 12_000
    uploads = [r for r in line.requests if r["path"] == "/v2/bot/audienceGroup/upload"]
    assert [r["method"] for r in uploads] == ["POST", "PUT"] and len(uploads[0]["body"]["audiences"]) == 10_000
    result = bulk.narrowcast(MESSAGES, audience_group_id=group, retry_key=new_retry_key())
    assert result.ok and result.http_status == 202 and result.request_id
    assert bulk.narrowcast_progress(result.request_id)["phase"] == "succeeded"
    assert line.errors == []
    assert len(line.deliveries) == 12_000


def test_unit_statistics_keep_withheld_values_as_none(line):
    line.unit_stats["crm_campaign_7"] = {"uniqueImpression": 120}
    stats = _bulk(line).unit_statistics("crm_campaign_7", "20261201", "20261203")
    assert stats["uniqueImpression"] == 120 and stats["uniqueClick"] is None
    assert line.errors == []


def test_token_not_in_repr(line):
    assert TOKEN not in repr(_bulk(line))


# -- e-mail ---------------------------------------------------------------------------------
def _rendered() -> T.Rendered:
    tpl = T.load_presets()["thanks_first"]
    ctx = T.build_context({"name": "髙橋 花子"}, T.Campaign(), shop_profile(), "email", "thanks_first")
    return T.render(tpl, ctx, "email")


def _decoded_text(msg) -> str:
    part = msg.get_body(("plain",))
    return part.get_content()


def test_one_connection_many_mails_with_own_message_id_and_one_click_headers():
    rendered = _rendered()
    with SmtpSink() as smtp, SmtpSession(smtp.host, smtp.port, starttls=False) as session:
        ids = []
        for i in range(5):
            mid = new_message_id(FROM)
            ids.append(mid)
            url = f"https://crm.example.jp/u/tok{i}"
            msg = campaign_message(f"c{i}@example.jp", rendered, from_addr=FROM, from_name="ナチュラルコスメ本舗",
                                   unsubscribe_url=url, message_id=mid)
            assert session.send(msg, FROM, f"c{i}@example.jp").ok
        assert session.connections == 1
    assert len(smtp.messages) == 5
    for i, msg in enumerate(smtp.messages):
        assert msg["Message-ID"] == ids[i]
        assert f"<https://crm.example.jp/u/tok{i}>" in msg["List-Unsubscribe"]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "髙橋 花子" in _decoded_text(msg) or "髙橋" in _decoded_text(msg)
        assert str(msg["Subject"]) == rendered.subject


def test_live_mail_without_https_unsubscribe_is_refused():
    with pytest.raises(ValueError):
        campaign_message("a@example.jp", _rendered(), from_addr=FROM, unsubscribe_url="", message_id=new_message_id(FROM))


def test_rate_limits_the_pace():
    clock = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        clock[0] += s

    with SmtpSink() as smtp, SmtpSession(smtp.host, smtp.port, starttls=False, rate=2.0, sleep=sleep,
                                         monotonic=lambda: clock[0]) as session:
        for i in range(4):
            msg = campaign_message(f"r{i}@example.jp", _rendered(), from_addr=FROM, unsubscribe_url="https://x.example/u",
                                   message_id=new_message_id(FROM))
            session.send(msg, FROM, f"r{i}@example.jp")
    assert sleeps == [0.5, 0.5, 0.5]


def test_5xx_at_rcpt_is_permanent_4xx_temporary_and_the_connection_survives():
    with SmtpSink() as smtp, SmtpSession(smtp.host, smtp.port, starttls=False) as session:
        smtp.refuse["gone@example.jp"] = "550 5.1.1 User unknown"
        smtp.refuse["busy@example.jp"] = "451 4.7.1 Try later"
        out = {}
        for to in ("ok1@example.jp", "gone@example.jp", "busy@example.jp", "ok2@example.jp"):
            msg = campaign_message(to, _rendered(), from_addr=FROM, unsubscribe_url="https://x.example/u",
                                   message_id=new_message_id(FROM))
            out[to] = session.send(msg, FROM, to)
        assert session.connections == 1
    assert out["ok1@example.jp"].ok and out["ok2@example.jp"].ok
    assert (out["gone@example.jp"].error_code, out["gone@example.jp"].http_status) == ("recipient_refused", 550)
    assert out["busy@example.jp"].error_code == "recipient_deferred"
    assert [e["rcpt_tos"] for e in smtp.envelopes] == [["ok1@example.jp"], ["ok2@example.jp"]]


@pytest.mark.parametrize(("address", "relay"), [
    ("abc123@pc.fw.rakuten.ne.jp", True),
    ("X9@mobile.fw.rakuten.ne.jp", True),
    ("someone@rakuten.co.jp", False),
    ("hanako@example.jp", False),
    ("fw.rakuten.ne.jp@example.jp", False),
])
def test_rakuten_relay_addresses(address, relay):
    assert is_rakuten_relay(address) is relay


def test_subject_is_rfc2047_encoded_on_the_wire():
    with SmtpSink() as smtp, SmtpSession(smtp.host, smtp.port, starttls=False) as session:
        msg = campaign_message("a@example.jp", _rendered(), from_addr=FROM, unsubscribe_url="https://x.example/u",
                               message_id=new_message_id(FROM))
        session.send(msg, FROM, "a@example.jp")
    raw = smtp.envelopes[0]["raw"].decode("ascii")
    subject_line = next(line for line in raw.splitlines() if line.startswith("Subject:"))
    assert "=?utf-8?" in subject_line.lower()
