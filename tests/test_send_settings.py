"""Send settings a marketer enters: the local secrets file, precedence, connection checks (issue 11 item 8)."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from crm_core.errors import InputError
from crm_core.messaging import local_secrets, sends
from tests.servers.line_mock import LineMock
from tests.servers.smtp_sink import SmtpSink

TOKEN = "console-token-Q9"


@pytest.fixture()
def db(tmp_path, monkeypatch):
    monkeypatch.delenv(local_secrets.ENV_PATH, raising=False)
    for name in sends.SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "shop" / "crm.duckdb"


def test_file_lives_beside_the_store_unless_configured(db, tmp_path):
    assert local_secrets.secrets_path(db, {}) == db.parent / "crm.secrets.json"
    other = tmp_path / "elsewhere" / "s.json"
    assert local_secrets.secrets_path(db, {local_secrets.ENV_PATH: str(other)}) == other


def test_saved_values_are_owner_only_and_replaceable(db):
    sends.save_console_settings(db, {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "SMTP_HOST": "smtp.example.jp", "SMTP_PORT": "587"})
    path = local_secrets.secrets_path(db)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    settings = sends.console_settings({}, db)
    assert settings.line_token == TOKEN and settings.smtp_host == "smtp.example.jp"
    assert settings.sources["LINE_CHANNEL_ACCESS_TOKEN"] == sends.CONSOLE
    # an empty field keeps the stored secret; a new value replaces it; remove forgets it
    sends.save_console_settings(db, {"LINE_CHANNEL_ACCESS_TOKEN": "", "SMTP_HOST": "smtp2.example.jp"})
    assert sends.console_settings({}, db).line_token == TOKEN
    sends.save_console_settings(db, {"LINE_CHANNEL_ACCESS_TOKEN": "new-token"})
    assert sends.console_settings({}, db).line_token == "new-token"
    sends.save_console_settings(db, {}, remove=("LINE_CHANNEL_ACCESS_TOKEN",))
    assert sends.console_settings({}, db).line_token == ""
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_environment_and_secrets_toml_win_over_the_console(db, monkeypatch):
    sends.save_console_settings(db, {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "SMTP_HOST": "console.example.jp"})
    monkeypatch.setenv("SMTP_HOST", "env.example.jp")
    settings = sends.console_settings({"LINE_CHANNEL_ACCESS_TOKEN": "from-secrets-toml"}, db)
    assert settings.line_token == "from-secrets-toml" and settings.smtp_host == "env.example.jp"
    assert settings.sources["SMTP_HOST"] == sends.SERVER and settings.sources["LINE_CHANNEL_ACCESS_TOKEN"] == sends.SERVER


def test_test_recipients_are_not_taken_from_the_console_file(db):
    with pytest.raises(InputError):
        sends.save_console_settings(db, {"CRM_TEST_RECIPIENTS": "someone@example.jp"})


@pytest.mark.parametrize(
    ("values", "phrase"),
    [({"SMTP_PORT": "abc"}, "ポート番号"), ({"SMTP_PORT": "70000"}, "ポート番号"), ({"SMTP_FROM": "not mail"}, "送信元"),
     ({"LINE_API_BASE_URL": "http://evil.example/"}, "https://")],
)
def test_bad_values_are_refused_in_japanese(db, values, phrase):
    with pytest.raises(InputError, match=phrase):
        sends.save_console_settings(db, values)
    assert not local_secrets.secrets_path(db).exists()


def test_secrets_file_is_git_ignored(db):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("data/crm.secrets.json", "data/other.secrets.json"):
        out = subprocess.run(["git", "check-ignore", "-q", name], cwd=root, check=False)
        assert out.returncode == 0, name


def test_default_tls_mode_is_auto(db):
    assert sends.load_settings({}, {}).smtp_starttls is None
    assert sends.load_settings({}, {"SMTP_STARTTLS": "false"}).smtp_starttls is False
    assert sends.load_settings({}, {"SMTP_STARTTLS": "true"}).smtp_starttls is True


def test_connection_check_buttons_talk_to_real_local_servers(db):
    with LineMock(TOKEN) as line, SmtpSink() as smtp:
        sends.save_console_settings(db, {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": line.url,
                                         "SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@example.jp"})
        settings = sends.console_settings({}, db)
        ok_line = sends.check_connection(settings, "line")
        ok_mail = sends.check_connection(settings, "email")
        sends.save_console_settings(db, {"LINE_CHANNEL_ACCESS_TOKEN": "wrong"})
        bad_line = sends.check_connection(sends.console_settings({}, db), "line")
    assert ok_line.ok and "テストショップ" in ok_line.message, ok_line
    assert line.errors == [] and line.requests[0]["path"] == "/v2/bot/info"
    assert ok_mail.ok and "暗号化なし" in ok_mail.message and smtp.messages == []  # nothing sent
    assert not bad_line.ok and bad_line.error_code == "unauthorized"
    assert not sends.check_connection(sends.load_settings({}, {}), "email").ok


def test_no_secret_in_the_status_rows(db):
    sends.save_console_settings(db, {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "SMTP_PASSWORD": "pw-123"})
    status = sends.settings_status(sends.console_settings({}, db))
    dumped = json.dumps(status, ensure_ascii=False)
    assert TOKEN not in dumped and "pw-123" not in dumped
    assert {s["name"] for s in status if s["configured"]} == {"LINE_CHANNEL_ACCESS_TOKEN", "SMTP_PASSWORD"}
