"""The live-send command line: create prints the funnel; approve, send, status, pause, cancel, suppress; R-Mail export."""

from __future__ import annotations

import json

import pytest

from crm_core import cli
from crm_core.db import Store
from crm_core.results import live
from tests.live_support import EMAIL_RULE, LINE_RULE, TEMPLATE, make_store
from tests.servers.customers import LINE_USER
from tests.servers.line_mock import LineMock

TOKEN = "cli-token"


def _run(capsys, *argv: str) -> tuple[int, dict]:
    code = cli.main(list(argv))
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1]) if out else {}


@pytest.fixture()
def db(tmp_path):
    store = make_store(tmp_path / "crm.duckdb", line_users=30, emails=10, rakuten=2)
    store.close()
    (tmp_path / "line.json").write_text(json.dumps(LINE_RULE))
    (tmp_path / "email.json").write_text(json.dumps(EMAIL_RULE))
    return tmp_path


def test_cli_create_approve_send_status(db, capsys, monkeypatch):
    with LineMock(TOKEN) as line:
        monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
        monkeypatch.setenv("LINE_API_BASE_URL", line.url)
        monkeypatch.setenv("CRM_TEST_RECIPIENTS", LINE_USER)
        path = str(db / "crm.duckdb")
        code, out = _run(capsys, "campaign", "create", "--name", "冬のセール", "--rule", str(db / "line.json"), "--channel", "line",
                         "--template", TEMPLATE, "--holdout", "0.1", "--send-at", "2026-12-03 12:00", "--quiet-hours", "off",
                         "--by", "hanako", "--db", path)
        assert code == 0
        cid, n = out["campaign_id"], out["funnel"]["will_receive"]
        assert set(out["funnel"]) >= {"segment", "reachable", "suppressed", "capped", "holdout", "will_receive"}
        assert out["cost"]["channel"] == "line"
        code, out = _run(capsys, "campaign", "approve", "--campaign", str(cid), "--by", "hanako", "--count", str(n), "--db", path)
        assert code == 2 and "テスト送信" in out["errors"][0]
        code, out = _run(capsys, "campaign", "test-send", "--campaign", str(cid), "--to", LINE_USER, "--by", "hanako", "--db", path)
        assert code == 0 and out["ok"]
        code, out = _run(capsys, "campaign", "approve", "--campaign", str(cid), "--by", "hanako", "--db", path)
        assert code == 2 and "人数" in out["errors"][0]
        code, out = _run(capsys, "campaign", "approve", "--campaign", str(cid), "--by", "hanako", "--count", str(n), "--db", path)
        assert code == 0 and out["status"] == "approved"
        code, out = _run(capsys, "campaign", "send", "--campaign", str(cid), "--db", path)
        assert code == 0 and out["status"] == "done", out
        code, out = _run(capsys, "campaign", "send", "--campaign", str(cid), "--db", path)  # again: nothing more
        assert out["status"] == "done"
        code, out = _run(capsys, "campaign", "status", "--campaign", str(cid), "--json", "--db", path)
        assert out["ledger"]["sent"] == n and out["status"] == "done"
        assert len(line.delivered_to("/v2/bot/message/multicast")) == n


def test_cli_pause_cancel_and_suppress(db, capsys):
    path = str(db / "crm.duckdb")
    code, out = _run(capsys, "suppress", "add", "--channel", "email", "--address", "M1@example.jp", "--reason", "電話で依頼",
                     "--by", "hanako", "--db", path)
    assert code == 0 and out["status"] == "opt_out"
    code, out = _run(capsys, "suppress", "list", "--db", path)
    assert [s["address"] for s in out["suppressed"]] == ["m1@example.jp"]
    code, out = _run(capsys, "campaign", "create", "--name", "x", "--rule", str(db / "email.json"), "--channel", "email",
                     "--template", TEMPLATE, "--by", "hanako", "--db", path)
    assert out["funnel"]["suppressed"] == 1 and out["funnel"]["rakuten_relay"] == 2
    cid = str(out["campaign_id"])
    assert _run(capsys, "campaign", "pause", "--campaign", cid, "--db", path)[1]["status"] == "paused"
    assert _run(capsys, "campaign", "cancel", "--campaign", cid, "--db", path)[1]["status"] == "cancelled"
    code, out = _run(capsys, "suppress", "remove", "--channel", "email", "--address", "m1@example.jp", "--by", "hanako", "--db", path)
    assert out["status"] == "opt_in"
    with live.open_ops(path) as ops:
        from crm_core.messaging import audit

        assert [e["action"] for e in audit.entries(ops)][:3] == ["unsuppress", "cancel", "pause"]


def test_cli_rmail_export(db, capsys):
    path = str(db / "crm.duckdb")
    store = Store(path)  # R-Mail reaches Rakuten buyers who allowed shop mail (audience/channels.py)
    store.execute("UPDATE customer_model SET first_source = 'rakuten' WHERE email LIKE 'm%@example.jp'")
    store.close()
    code, out = _run(capsys, "campaign", "create", "--name", "R", "--rule", str(db / "email.json"), "--channel", "rmail",
                     "--template", TEMPLATE, "--by", "a", "--quiet-hours", "off", "--db", path)  # whatever the time of the run
    cid = out["campaign_id"]
    with live.open_ops(path) as ops:
        ops.execute("UPDATE send_campaigns SET status = 'approved' WHERE campaign_id = ?", [cid])
    _run(capsys, "campaign", "send", "--campaign", str(cid), "--db", path)
    target = db / "rmail.csv"
    code, out = _run(capsys, "campaign", "rmail-export", "--campaign", str(cid), "--out", str(target), "--mark-sent",
                     "2026-12-03 15:00", "--db", path)
    assert code == 0 and out["rows"] > 0
    assert target.read_bytes().decode("cp932").startswith("顧客ID,メールアドレス")
    assert _run(capsys, "campaign", "status", "--campaign", str(cid), "--json", "--db", path)[1]["status"] == "done"


def test_cli_line_or_email_prints_both_channels_and_sends_each_recipient_once(db, capsys, monkeypatch):
    """``campaign create --channel line_or_email``: the JSON funnel and cost per channel, a test send per channel, then
    ``campaign send`` delivers LINE to the LINE friends and e-mail to the others, once each."""
    from tests.servers.smtp_sink import SmtpSink

    (db / "all.json").write_text(json.dumps({"all": []}))
    path = str(db / "crm.duckdb")
    with LineMock(TOKEN) as line, SmtpSink() as smtp:
        for name, value in {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": line.url, "SMTP_HOST": smtp.host,
                            "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@natural.example.jp", "SMTP_STARTTLS": "false",
                            "CRM_TEST_RECIPIENTS": f"{LINE_USER},me@example.jp", "CRM_UNSUBSCRIBE_SECRET": "s" * 32,
                            "CRM_PUBLIC_URL": "https://crm.example.jp"}.items():
            monkeypatch.setenv(name, value)
        code, out = _run(capsys, "campaign", "create", "--name", "冬", "--rule", str(db / "all.json"), "--channel", "line_or_email",
                         "--template", TEMPLATE, "--holdout", "0", "--quiet-hours", "off", "--frequency-cap", "0", "--by", "hanako",
                         "--db", path)
        assert code == 0, out
        f = out["funnel"]
        # 30 LINE friends + C001 and C003 (LINE) · 10 opted-in addresses (e-mail) · 2 Rakuten relay addresses (R-Mail)
        assert (f["will_receive_line"], f["will_receive_email"], f["rakuten_relay"]) == (32, 10, 2)
        assert f["will_receive"] == 42 and f["reachable_line"] == 32 and f["reachable_email"] == 14
        assert out["cost"]["channel"] == "line_or_email"
        assert [(p["channel"], p["messages"]) for p in out["cost"]["parts"]] == [("line", 32), ("email", 10)]
        cid = str(out["campaign_id"])
        code, out = _run(capsys, "campaign", "test-send", "--campaign", cid, "--to", LINE_USER, "--channel", "line", "--by", "hanako",
                         "--db", path)
        assert code == 0 and out["ok"]
        code, out = _run(capsys, "campaign", "approve", "--campaign", cid, "--by", "hanako", "--count", "42", "--db", path)
        assert code == 2 and "メール" in out["errors"][0]  # the e-mail part needs its own test send
        code, out = _run(capsys, "campaign", "test-send", "--campaign", cid, "--to", "me@example.jp", "--channel", "email",
                         "--by", "hanako", "--db", path)
        assert code == 0 and out["ok"]
        code, out = _run(capsys, "campaign", "approve", "--campaign", cid, "--by", "hanako", "--count", "42", "--db", path)
        assert code == 0 and out["status"] == "approved"
        code, out = _run(capsys, "campaign", "send", "--campaign", cid, "--db", path)
        assert code == 0 and out["status"] == "done", out
        code, out = _run(capsys, "campaign", "status", "--campaign", cid, "--json", "--db", path)
    assert out["by_channel"]["line"]["sent"] == 32 and out["by_channel"]["email"]["sent"] == 10
    assert out["by_channel"]["email"]["suppressed"] == 2
    delivered = line.delivered_to("/v2/bot/message/multicast")
    assert len(delivered) == 32 and set(delivered.values()) == {1}
    mails = [str(m["To"]) for m in smtp.messages if not str(m["Subject"]).startswith("【テスト】")]
    assert len(mails) == len(set(mails)) == 10 and all(m.startswith("m") for m in mails)


def test_cli_send_without_a_sender_address_pauses_with_the_settings_message_and_sends_once_it_is_set(db, capsys, monkeypatch):
    """An e-mail campaign approved while 送信元メールアドレス was set, sent after it was removed: a Japanese refusal
    naming the setting (what 配信（本番送信） shows before approval), nothing sent and nothing frozen; once the address
    is back, 再開 and the send deliver every mail from it."""
    from tests.servers.smtp_sink import SmtpSink

    path = str(db / "crm.duckdb")
    with SmtpSink() as smtp:
        for name, value in {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@natural.example.jp",
                            "SMTP_STARTTLS": "false", "CRM_TEST_RECIPIENTS": "me@example.jp", "CRM_UNSUBSCRIBE_SECRET": "s" * 32,
                            "CRM_PUBLIC_URL": "https://crm.example.jp"}.items():
            monkeypatch.setenv(name, value)
        code, out = _run(capsys, "campaign", "create", "--name", "冬", "--rule", str(db / "email.json"), "--channel", "email",
                         "--template", TEMPLATE, "--holdout", "0", "--quiet-hours", "off", "--by", "hanako", "--db", path)
        assert code == 0, out
        cid, n = str(out["campaign_id"]), out["funnel"]["will_receive"]
        code, out = _run(capsys, "campaign", "test-send", "--campaign", cid, "--to", "me@example.jp", "--by", "hanako", "--db", path)
        assert code == 0 and out["ok"], out
        code, out = _run(capsys, "campaign", "approve", "--campaign", cid, "--by", "hanako", "--count", str(n), "--db", path)
        assert code == 0 and out["status"] == "approved", out

        monkeypatch.setenv("SMTP_FROM", "")
        code, out = _run(capsys, "campaign", "send", "--campaign", cid, "--db", path)
        assert code == 1 and out["status"] == "paused", out
        from crm_core.messaging.sends import console_settings, secrets_file_settings

        settings = console_settings(secrets_file_settings(), path)
        assert out["message"] in live.readiness("email", settings)  # the words the page shows before approval
        assert "送信元メールアドレス" in out["message"] and "送信設定" in out["message"]
        assert len(smtp.messages) == 1  # the test send only
        code, out = _run(capsys, "campaign", "status", "--campaign", cid, "--json", "--db", path)
        assert out["status"] == "paused" and out["ledger"]["sent"] == 0

        monkeypatch.setenv("SMTP_FROM", "shop@natural.example.jp")
        assert _run(capsys, "campaign", "resume", "--campaign", cid, "--by", "hanako", "--db", path)[1]["status"] == "approved"
        code, out = _run(capsys, "campaign", "send", "--campaign", cid, "--db", path)
        assert code == 0 and out["status"] == "done", out
        sent = smtp.messages[1:]
        assert len(sent) == n and {m["From"].addresses[0].addr_spec for m in sent} == {"shop@natural.example.jp"}
