"""LINE: the real line-bot-sdk against a local server that validates requests with LINE's OpenAPI spec."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from crm_core.db import Store
from crm_core.messaging import templates as T
from crm_core.messaging.channels.line import LineSender
from crm_core.messaging.sends import (
    add_test_recipient,
    load_settings,
    remove_test_recipient,
    send_log,
    settings_status,
    test_recipients,
    test_send,
)
from tests.servers.customers import LINE_USER, OTHER_LINE_USER, seed_customers, shop_profile
from tests.servers.line_mock import LineMock, validate_schema

TOKEN = "test-token-ABC123"


@pytest.fixture()
def line():
    with LineMock(TOKEN) as mock:
        yield mock


@pytest.fixture()
def store():
    s = seed_customers(Store(":memory:"))
    yield s
    s.close()


def _sender(mock: LineMock, token: str = TOKEN, **kw) -> LineSender:
    sleeps: list[float] = []
    sender = LineSender(token, mock.url, sleep=sleeps.append, timeout=5, **kw)
    sender.sleeps = sleeps  # type: ignore[attr-defined]
    return sender


def _rendered(key: str = "thanks_first") -> T.Rendered:
    tpl = T.load_presets()[key]
    ctx = T.build_context({"name": "髙橋 ①子", "rec_product_name": "保湿クリーム"}, T.Campaign(coupon_value="10%OFF", coupon_code="K7MP"),
                          shop_profile(), "line", key)
    return T.render(tpl, ctx, "line")


# -- the validator itself ---------------------------------------------------------------
def test_validator_follows_message_subtypes():
    assert validate_schema({"to": LINE_USER, "messages": [{"type": "text", "text": "a"}]}, "PushMessageRequest") == []
    errors = validate_schema(
        {"to": LINE_USER, "messages": [
            {"type": "text"},
            {"type": "flex", "altText": "a", "contents": {"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": [{"type": "nope"}]}}},
            {"type": "flex", "altText": "a", "contents": {"type": "bubble", "footer": {"type": "box", "layout": "vertical", "contents": [
                {"type": "button", "action": {"type": "uri", "label": 1}}]}}},
            {"type": "bogus"},
        ]},
        "PushMessageRequest",
    )
    joined = "\n".join(errors)
    assert "messages/0: 'text' is a required property" in joined  # TextMessage's own field
    assert "unknown type 'nope'" in joined  # FlexComponent subtype
    assert "messages/2/contents/footer/contents/0/action/label: 1 is not of type 'string'" in joined  # Action subtype
    assert "messages/3: unknown type 'bogus'" in joined
    assert validate_schema({"to": LINE_USER, "messages": []}, "PushMessageRequest")  # minItems 1


# -- sending -----------------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(T.load_presets()))
def test_every_preset_is_accepted_by_the_spec(line, key):
    result = _sender(line).send(LINE_USER, _rendered(key))
    assert result.ok, (result, line.errors)
    assert line.errors == []
    push = line.pushes[-1]
    assert push["authorization"] == f"Bearer {TOKEN}"
    assert uuid.UUID(push["retry_key"]).version == 4
    assert push["body"]["to"] == LINE_USER
    assert push["body"]["messages"][0]["type"] == "text"


def test_flex_card_arrives_intact(line):
    rendered = _rendered("new_product")
    assert _sender(line).send(LINE_USER, rendered).ok
    sent = line.pushes[0]["body"]["messages"]
    assert sent[0] == rendered.line_messages[0]
    flex = sent[-1]
    assert flex["type"] == "flex" and flex["contents"]["type"] == "bubble"
    assert flex["contents"]["hero"]["url"] == rendered.line_messages[-1]["contents"]["hero"]["url"]
    assert flex["contents"]["footer"]["contents"][0]["action"]["uri"] == rendered.line_messages[-1]["contents"]["footer"]["contents"][0]["action"]["uri"]


def test_success_reports_the_request_id(line):
    result = _sender(line).send(LINE_USER, _rendered())
    assert result.ok and result.outcome == "sent" and result.http_status == 200 and result.attempts == 1
    assert len(result.request_id) == 32
    assert result.message == "LINEでテスト送信しました。"


def test_500_then_success_reuses_the_retry_key_and_body(line):
    line.answer(500, {"message": "internal"})
    sender = _sender(line)
    result = sender.send(LINE_USER, _rendered())
    assert result.ok and result.attempts == 2
    first, second = line.pushes
    assert first["retry_key"] == second["retry_key"]
    assert first["raw"] == second["raw"]
    assert sender.sleeps == [0.5]


def test_retry_after_an_accepted_request_gets_409_and_counts_as_success(line):
    # LINE accepted the first attempt but its answer was lost (503): the retry with the same key gets
    # 409 + x-line-accepted-request-id, which means the message went out once
    line.answer(503, accept=True)
    result = _sender(line).send(LINE_USER, _rendered())
    assert result.ok and result.http_status == 409 and result.attempts == 2
    assert "すでに受け付けられていました" in result.message
    first, second = line.pushes
    assert first["retry_key"] == second["retry_key"] and first["raw"] == second["raw"]
    assert result.request_id == line._accepted[first["retry_key"]]


def test_5xx_every_time_gives_up_after_max_attempts(line):
    for _ in range(3):
        line.answer(503)
    result = _sender(line).send(LINE_USER, _rendered())
    assert not result.ok and result.attempts == 3 and result.error_code == "server_error"
    assert "一時的なエラー" in result.message and "3回" in result.message
    assert len({p["retry_key"] for p in line.pushes}) == 1


@pytest.mark.parametrize(
    ("status", "body", "code", "phrase"),
    [
        (400, {"message": "The request body has 1 error(s)", "details": [{"message": "May not be empty", "property": "messages[0].text"}]},
         "bad_request", "LINEがメッセージを受け付けませんでした（400）"),
        (403, {"message": "Access to this API is not available for your account"}, "forbidden", "権限がありません（403）"),
        (404, {"message": "Not found"}, "not_found", "LINEユーザーが見つかりません（404）"),
        (429, {"message": "Too Many Requests"}, "rate_limited", "時間をおいて"),
        (429, {"message": "You have reached your monthly limit."}, "quota_exceeded", "今月のメッセージ送信数の上限"),
    ],
    ids=["400", "403", "404", "429-rate", "429-quota"],
)
def test_4xx_answers_are_explained_and_not_retried(line, status, body, code, phrase):
    line.answer(status, body)
    result = _sender(line).send(LINE_USER, _rendered())
    assert not result.ok and result.http_status == status and result.error_code == code
    assert phrase in result.message
    assert len(line.pushes) == 1  # never retried


def test_400_shows_lines_explanation(line):
    line.answer(400, {"message": "The request body has 1 error(s)", "details": [{"message": "May not be empty", "property": "messages[0].text"}]})
    result = _sender(line).send(LINE_USER, _rendered())
    assert "messages[0].text: May not be empty" in result.message


def test_401_invalid_token(line):
    result = _sender(line, token="wrong-token").send(LINE_USER, _rendered())
    assert not result.ok and result.http_status == 401 and result.error_code == "unauthorized"
    assert "チャネルアクセストークンが無効です" in result.message and "「送信設定」のチャネルアクセストークン" in result.message
    assert "LINE_CHANNEL_ACCESS_TOKEN" not in result.message  # no environment-variable names for the marketer
    assert "wrong-token" not in json.dumps(result.to_dict(), ensure_ascii=False)
    assert len(line.pushes) == 1


def test_connection_refused_is_retried_then_explained():
    with LineMock(TOKEN) as mock:
        url = mock.url
    result = LineSender(TOKEN, url, sleep=lambda s: None, timeout=2).send(LINE_USER, _rendered())
    assert not result.ok and result.error_code == "connection_error" and result.attempts == 3
    assert "接続できませんでした" in result.message


def test_timeout_is_retried_with_the_same_key(line):
    import time as _time

    orig = line._push

    def slow_first(record):
        if len(line.pushes) == 1:
            _time.sleep(1.5)
        return orig(record)

    line._push = slow_first
    result = LineSender(TOKEN, line.url, timeout=0.5, max_attempts=2, sleep=lambda s: None).send(LINE_USER, _rendered())
    assert len(line.pushes) == 2 and line.pushes[0]["retry_key"] == line.pushes[1]["retry_key"]
    # the slow first attempt was accepted after the client gave up: the retry gets 409 -> success
    assert result.ok, result


def test_bad_user_id_is_refused_before_sending(line):
    result = _sender(line).send("not-a-user", _rendered())
    assert not result.ok and result.outcome == "invalid" and line.requests == []


def test_token_never_in_repr_or_logs(line, caplog):
    caplog.set_level(logging.DEBUG)
    sender = _sender(line)
    sender.send(LINE_USER, _rendered())
    assert TOKEN not in repr(sender)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(load_settings({}, {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN}))


# -- orchestration: test recipients, refusal, log ----------------------------------------------
def _settings(mock: LineMock, **env):
    return load_settings({}, {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": mock.url, **env})


def test_test_send_to_a_registered_recipient_is_sent_and_logged(line, store):
    add_test_recipient(store, LINE_USER, "自分のLINE")
    result = test_send(store, _settings(line), channel="line", recipient=LINE_USER, template_key="winback",
                       customer_id="C001", campaign=T.Campaign(coupon_value="15%OFF"), actor="tester")
    assert result.ok, result
    assert "髙橋 ①子様" in line.pushes[0]["body"]["messages"][0]["text"]
    log = send_log(store)
    assert list(log["結果"]) == ["送信済み"]
    row = log.iloc[0]
    assert (row["実行者"], row["チャネル"], row["テンプレート"], row["顧客ID"], row["送信先"]) == ("tester", "LINE", "winback", "C001", LINE_USER)
    assert row["リクエストID"] == result.request_id
    stored = " ".join(str(v) for r in store.fetchall("SELECT * FROM send_log") for v in r)
    assert TOKEN not in stored and "髙橋" not in stored  # neither the token nor the body


def test_test_send_to_anyone_else_is_refused_before_any_request(line, store):
    add_test_recipient(store, LINE_USER)
    result = test_send(store, _settings(line), channel="line", recipient=OTHER_LINE_USER, template_key="winback", customer_id="C001")
    assert not result.ok and result.outcome == "refused"
    assert "テスト送信先に登録されていない" in result.message
    assert line.requests == []
    assert list(send_log(store)["結果"]) == ["拒否（宛先が対象外）"]
    # an e-mail address on the list does not allow a LINE send to it either
    add_test_recipient(store, "me@example.jp")
    assert test_send(store, _settings(line), channel="line", recipient="me@example.jp", template_key="winback", customer_id="C001").outcome == "refused"


def test_env_recipients_are_allowed(line, store):
    result = test_send(store, _settings(line, CRM_TEST_RECIPIENTS=f" {LINE_USER} , me@example.jp"), channel="line",
                       recipient=LINE_USER, template_key="birthday", customer_id="C002")
    assert result.ok
    assert "お客様、お誕生日おめでとうございます" in line.pushes[0]["body"]["messages"][0]["text"]


def test_missing_token_is_explained_and_logged(line, store):
    add_test_recipient(store, LINE_USER)
    result = test_send(store, load_settings({}, {}), channel="line", recipient=LINE_USER, template_key="winback", customer_id="C001")
    assert result.outcome == "not_configured" and "チャネルアクセストークンを登録" in result.message
    assert "LINE_CHANNEL_ACCESS_TOKEN" not in result.message
    assert line.requests == [] and list(send_log(store)["結果"]) == ["未設定"]


def test_recipient_list_management(store):
    assert add_test_recipient(store, LINE_USER, "LINE") == "line"
    assert add_test_recipient(store, "me@example.jp") == "email"
    from crm_core.errors import InputError

    with pytest.raises(InputError):
        add_test_recipient(store, "'; DROP TABLE test_recipients; --")
    settings = load_settings({}, {"CRM_TEST_RECIPIENTS": "you@example.jp,garbage"})
    assert [(r["address"], r["source"]) for r in test_recipients(store, settings)] == [
        (LINE_USER, "画面"), ("me@example.jp", "画面"), ("you@example.jp", "環境設定")]
    remove_test_recipient(store, LINE_USER)
    assert [r["address"] for r in test_recipients(store, settings, "line")] == []


def test_settings_status_never_contains_values():
    settings = load_settings({"LINE_CHANNEL_ACCESS_TOKEN": "secret-from-secrets"}, {"SMTP_PASSWORD": "pw-from-env", "SMTP_HOST": "h"})
    status = settings_status(settings)
    assert {s["name"] for s in status if s["configured"]} == {"LINE_CHANNEL_ACCESS_TOKEN", "SMTP_PASSWORD", "SMTP_HOST"}
    assert "secret-from-secrets" not in json.dumps(status) and "pw-from-env" not in json.dumps(status)
    assert settings.line_token == "secret-from-secrets"  # secrets win over the environment


def test_cli_test_send(line, tmp_path, monkeypatch, capsys):
    import argparse

    from crm_core import cli
    from crm_core.messaging import sends

    db = tmp_path / "crm.duckdb"
    s = seed_customers(Store(db))
    s.close()
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("LINE_API_BASE_URL", line.url)
    monkeypatch.setenv("CRM_TEST_RECIPIENTS", LINE_USER)
    monkeypatch.setattr(sends, "secrets_file_settings", lambda path=None: {})
    parser = argparse.ArgumentParser()
    cli.add_message_commands(parser.add_subparsers(dest="command", required=True))
    base = ["test-send", "--channel", "line", "--template", "review", "--customer", "C001", "--db", str(db)]
    assert cli.run_command(parser.parse_args([*base, "--to", LINE_USER])) == 0
    assert json.loads(capsys.readouterr().out)["outcome"] == "sent"
    assert cli.run_command(parser.parse_args([*base, "--to", OTHER_LINE_USER])) == 2
    assert "テスト送信先に登録されていない" in capsys.readouterr().err
    assert len(line.pushes) == 1


def test_mock_rejects_requests_the_spec_does_not_allow(line):
    import urllib.error
    import urllib.request

    def post(body: dict, headers: dict) -> int:
        req = urllib.request.Request(line.url + "/v2/bot/message/push", data=json.dumps(body).encode(), method="POST",  # noqa: S310
                                     headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - local mock
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert post({"messages": [{"type": "text", "text": "a"}]}, auth) == 400  # no "to"
    assert any("openapi" in e for e in line.errors)
    assert post({"to": LINE_USER, "messages": [{"type": "text", "text": "a"}]}, {**auth, "X-Line-Retry-Key": "not-a-uuid"}) == 400
    assert post({"to": LINE_USER, "messages": [{"type": "text", "text": "a"}]}, {}) == 401
    assert post({"to": LINE_USER, "messages": [{"type": "text", "text": "a"}]}, auth) == 200
