"""Test sends: channel settings, the test-recipient list, the send log, the command line.

Settings come from ``st.secrets`` or the environment (the caller passes them
in; :func:`load_settings`), then from the local secrets file the marketer
fills on 送信設定 (:mod:`crm_core.messaging.local_secrets`); they are never stored in
the database or shown back: :func:`settings_status` only says which ones are
configured and where from.  A test send goes
only to an address on the test-recipient list (the table ``test_recipients``
plus ``CRM_TEST_RECIPIENTS``); anything else is refused before a request
leaves.  Every attempt is written to ``send_log`` (who, when, channel,
template, customer, recipient, request id, outcome) without tokens or bodies.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from crm_core import clock
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.messaging import local_secrets
from crm_core.messaging.channels import INVALID, NOT_CONFIGURED, OUTCOME_LABELS, REFUSED, Sender, SendResult
from crm_core.messaging.channels.email import EMAIL_RE, EmailSender
from crm_core.messaging.channels.line import USER_ID_RE, LineSender
from crm_core.messaging.templates import Campaign, Template, render_for_customer, shop_profile

SEND_CHANNELS = ("line", "email")

SETTING_NAMES: dict[str, str] = {
    "LINE_CHANNEL_ACCESS_TOKEN": "LINEチャネルアクセストークン",
    "LINE_API_BASE_URL": "LINE APIの接続先（省略時 https://api.line.me）",
    "SMTP_HOST": "SMTPサーバー",
    "SMTP_PORT": "SMTPポート",
    "SMTP_USERNAME": "SMTPユーザー名",
    "SMTP_PASSWORD": "SMTPパスワード",
    "SMTP_FROM": "送信元メールアドレス",
    "SMTP_STARTTLS": "暗号化（STARTTLS）",
    "CRM_TEST_RECIPIENTS": "テスト送信先（カンマ区切り）",
}
"""Settings read from secrets or the environment, with Japanese labels."""
CONSOLE_SETTINGS = ("LINE_CHANNEL_ACCESS_TOKEN", "LINE_API_BASE_URL", "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME",
                    "SMTP_PASSWORD", "SMTP_FROM", "SMTP_STARTTLS")
"""Settings the marketer may enter on 送信設定 (kept in the local secrets file)."""
SECRET_SETTINGS = frozenset({"LINE_CHANNEL_ACCESS_TOKEN", "SMTP_PASSWORD"})
"""Values never shown back, not even on 送信設定."""
SERVER = "server"
CONSOLE = "console"
TLS_MODES = {"auto": "自動（サーバーが対応していれば暗号化・推奨）", "true": "STARTTLSを必ず使う", "false": "暗号化しない（社内のサーバーなど）"}


# -- settings ----------------------------------------------------------------------
@dataclass
class ChannelSettings:
    """Credentials and endpoints for test sends (secrets are not in ``repr``)."""

    line_token: str = field(default="", repr=False)
    line_base_url: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = ""
    smtp_starttls: bool | None = None
    env_recipients: list[str] = field(default_factory=list)
    present: set[str] = field(default_factory=set)
    sources: dict[str, str] = field(default_factory=dict)
    """Where each configured name came from: :data:`SERVER` (secrets.toml / environment) or :data:`CONSOLE`."""


def _truthy(value: str) -> bool:
    return value.strip().lower() not in ("0", "false", "no", "off", "いいえ", "")


def _tls_mode(value: str) -> bool | None:
    """``None`` (use STARTTLS when offered) for "" / "auto", else True or False."""
    value = (value or "").strip().lower()
    if value in ("", "auto", "自動"):
        return None
    return _truthy(value)


def load_settings(
    secrets: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    local: Mapping[str, str] | None = None,
) -> ChannelSettings:
    """Settings from ``secrets`` (``st.secrets`` as a mapping) first, then the environment, then ``local``.

    ``local`` is what the marketer saved on 送信設定 (:func:`crm_core.messaging.local_secrets.read`);
    server-side configuration wins over it, name by name.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    for name in SETTING_NAMES:
        value = None
        if secrets is not None:
            try:
                value = secrets.get(name)
            except Exception:  # noqa: BLE001 - a broken secrets file reads as "not set"
                value = None
        if value in (None, ""):
            value = environ.get(name)
        source = SERVER
        if value in (None, "") and local is not None and name in CONSOLE_SETTINGS:
            value, source = local.get(name), CONSOLE
        if value not in (None, ""):
            values[name] = str(value).strip()
            sources[name] = source
    try:
        port = int(values.get("SMTP_PORT", "587"))
    except ValueError:
        raise InputError("SMTPのポート番号は数字（例: 587）で設定してください。", "bad SMTP_PORT") from None
    recipients = [r.strip() for r in values.get("CRM_TEST_RECIPIENTS", "").split(",") if r.strip()]
    return ChannelSettings(
        line_token=values.get("LINE_CHANNEL_ACCESS_TOKEN", ""),
        line_base_url=values.get("LINE_API_BASE_URL", ""),
        smtp_host=values.get("SMTP_HOST", ""),
        smtp_port=port,
        smtp_username=values.get("SMTP_USERNAME", ""),
        smtp_password=values.get("SMTP_PASSWORD", ""),
        smtp_from=values.get("SMTP_FROM", ""),
        smtp_starttls=_tls_mode(values.get("SMTP_STARTTLS", "")),
        env_recipients=recipients,
        present=set(values),
        sources=sources,
    )


def console_settings(secrets: Mapping[str, Any] | None, db_path: str | os.PathLike[str] | None) -> ChannelSettings:
    """What the console and the command line use: server configuration, then the local secrets file of this store."""
    return load_settings(secrets, local=local_secrets.read(local_secrets.secrets_path(db_path)))


def save_console_settings(db_path: str | os.PathLike[str] | None, values: Mapping[str, str | None],
                          remove: tuple[str, ...] = ()) -> None:
    """Store settings entered on 送信設定 in the local secrets file (empty values keep what is stored).

    Raises
    ------
    InputError
        For a port that is not a number, an invalid sender address or an unknown name.
    """
    port = (values.get("SMTP_PORT") or "").strip()
    if port and not (port.isascii() and port.isdecimal() and 0 < int(port) < 65536):
        raise InputError("SMTPのポート番号は 1〜65535 の数字で入力してください（通常は 587、SSL/TLSなら 465）。", "bad port")
    sender = (values.get("SMTP_FROM") or "").strip()
    if sender and not EMAIL_RE.match(sender):
        raise InputError("送信元メールアドレスの形式が正しくありません。", "bad SMTP_FROM")
    tls = (values.get("SMTP_STARTTLS") or "").strip()
    if tls and tls not in TLS_MODES:
        raise InputError("暗号化の設定を選び直してください。", "bad SMTP_STARTTLS")
    base = (values.get("LINE_API_BASE_URL") or "").strip()
    if base and not base.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise InputError("LINE APIの接続先は https:// から始まるURLにしてください。", "bad LINE_API_BASE_URL")
    local_secrets.write(local_secrets.secrets_path(db_path), values, CONSOLE_SETTINGS, remove)


def secrets_file_settings(path: Path | None = None) -> dict[str, Any]:
    """``.streamlit/secrets.toml`` as a mapping, for the command line (empty when absent)."""
    path = path or Path(__file__).resolve().parents[2] / ".streamlit" / "secrets.toml"
    if not path.exists():
        return {}
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def settings_status(settings: ChannelSettings) -> list[dict[str, Any]]:
    """Which settings are configured: ``name, label, configured, source`` (never the values)."""
    return [{"name": n, "label": label, "configured": n in settings.present, "source": settings.sources.get(n, "")}
            for n, label in SETTING_NAMES.items()]


def channel_ready(settings: ChannelSettings, channel: str) -> str | None:
    """None when the channel can send, else a Japanese explanation of what is missing (no setting names)."""
    if channel == "line" and not settings.line_token:
        return "LINEのテスト送信には、「送信設定」でLINEのチャネルアクセストークンを登録してください。"
    if channel == "email":
        missing = [label for label, v in (("SMTPサーバー", settings.smtp_host), ("送信元メールアドレス", settings.smtp_from)) if not v]
        if missing:
            return f"メールのテスト送信には、「送信設定」で{'と'.join(missing)}を登録してください。"
    return None


def make_sender(settings: ChannelSettings, channel: str, *, from_name: str = "", encoding: str = "utf-8",
                unsubscribe_mailto: str = "", one_click: bool = False) -> Sender:
    """The sender for a channel from the settings.

    E-mail always carries ``List-Unsubscribe``: the https opt-out link of the
    message and/or ``unsubscribe_mailto`` — the sender's own address when the
    shop has neither.  ``List-Unsubscribe-Post`` (one click) only when the shop says its
    link handles it.
    """
    if channel == "line":
        return LineSender(settings.line_token, settings.line_base_url or None)
    return EmailSender(
        settings.smtp_host, settings.smtp_port, username=settings.smtp_username, password=settings.smtp_password,
        from_addr=settings.smtp_from, from_name=from_name, starttls=settings.smtp_starttls, encoding=encoding,
        unsubscribe_mailto=unsubscribe_mailto, one_click=one_click,
    )


def check_connection(settings: ChannelSettings, channel: str) -> SendResult:
    """Try the channel's server with the saved settings without sending anything (送信設定's 接続を確認)."""
    missing = channel_ready(settings, channel)
    if missing:
        return SendResult(False, NOT_CONFIGURED, missing, error_code="not_configured")
    sender = make_sender(settings, channel)
    return sender.check()  # type: ignore[attr-defined]


# -- test recipients ------------------------------------------------------------------

def recipient_channel(address: str) -> str | None:
    """``"line"`` for a LINE user id, ``"email"`` for an address, else None."""
    address = (address or "").strip()
    if USER_ID_RE.match(address):
        return "line"
    if EMAIL_RE.match(address):
        return "email"
    return None


def add_test_recipient(store: Store, address: str, label: str = "") -> str:
    """Add one of the marketer's own LINE user ids or addresses; returns its channel."""
    address = (address or "").strip()
    channel = recipient_channel(address)
    if channel is None:
        raise InputError(
            "テスト送信先は、LINEのユーザーID（Uで始まる33文字）かメールアドレスを入力してください。", "bad test recipient"
        )
    with store.transaction() as cur:
        cur.execute("DELETE FROM test_recipients WHERE address = ?", [address])
        cur.execute("INSERT INTO test_recipients VALUES (?, ?, ?, ?)", [channel, address, label.strip(), _now()])
    return channel


def remove_test_recipient(store: Store, address: str) -> None:
    """Remove an address from the stored list (environment entries stay)."""
    store.execute("DELETE FROM test_recipients WHERE address = ?", [address])


def test_recipients(store: Store, settings: ChannelSettings | None = None, channel: str | None = None) -> list[dict[str, str]]:
    """The allowed test recipients: ``channel, address, label, source`` ('画面' or '環境設定')."""
    out: dict[str, dict[str, str]] = {}
    for ch, address, label in store.fetchall("SELECT channel, address, label FROM test_recipients ORDER BY added_at, address"):
        out[address] = {"channel": ch, "address": address, "label": label or "", "source": "画面"}
    for address in settings.env_recipients if settings else []:
        ch = recipient_channel(address)
        if ch and address not in out:
            out[address] = {"channel": ch, "address": address, "label": "", "source": "環境設定"}
    return [r for r in out.values() if channel is None or r["channel"] == channel]


test_recipients.__test__ = False  # not a pytest test despite the name


# -- the send log -------------------------------------------------------------------------
def _now() -> dt.datetime:
    return clock.now().replace(microsecond=0)


def log_attempt(store: Store, *, actor: str, channel: str, template_key: str, customer_id: str, recipient: str,
                result: SendResult, kind: str = "test") -> str:
    """Write one attempt to ``send_log`` (no token, no message body); returns its id."""
    attempt_id = uuid.uuid4().hex
    store.execute(
        "INSERT INTO send_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [attempt_id, _now(), actor, kind, channel, template_key, customer_id, recipient, result.request_id or None,
         result.outcome, result.error_code or None, result.http_status, result.attempts],
    )
    return attempt_id


def send_log(store: Store, limit: int = 200) -> pd.DataFrame:
    """Recent attempts with Japanese column names (日時, 実行者, チャネル, ...)."""
    df = store.df(
        "SELECT sent_at, actor, channel, template_key, customer_id, recipient, outcome, error_code, request_id, attempts "
        "FROM send_log ORDER BY sent_at DESC, attempt_id LIMIT ?",
        [int(limit)],
    )
    df["outcome"] = df["outcome"].map(lambda o: OUTCOME_LABELS.get(o, o))
    df["channel"] = df["channel"].map(lambda c: {"line": "LINE", "email": "メール"}.get(c, c))
    df.columns = ["日時", "実行者", "チャネル", "テンプレート", "顧客ID", "送信先", "結果", "エラー", "リクエストID", "試行回数"]
    return df


# -- the test send -------------------------------------------------------------------------
def test_send(
    store: Store,
    settings: ChannelSettings,
    *,
    channel: str,
    recipient: str,
    template_key: str | Template,
    customer_id: str,
    campaign: Campaign | None = None,
    actor: str = "console",
    encoding: str = "utf-8",
    sender: Sender | None = None,
) -> SendResult:
    """Render a template for a customer and send it to one test recipient.

    ``template_key`` is a template's key, or a :class:`Template` (the page
    sends what the marketer sees, unsaved edits included).  The recipient
    must be on the test-recipient list for that channel;
    otherwise the send is refused before anything leaves.  Every attempt
    (refused, unconfigured, sent or failed) is logged.

    Raises
    ------
    InputError
        When the channel is unknown or the template or customer cannot be rendered.
    """
    if channel not in SEND_CHANNELS:
        raise InputError("テスト送信のチャネルは LINE かメールを選んでください。", f"bad channel {channel!r}")
    recipient = (recipient or "").strip()
    template = template_key
    key = template.key if isinstance(template, Template) else template

    def done(result: SendResult) -> SendResult:
        log_attempt(store, actor=actor, channel=channel, template_key=key, customer_id=customer_id,
                    recipient=recipient, result=result)
        return result

    allowed = {r["address"] for r in test_recipients(store, settings, channel)}
    if recipient not in allowed:
        return done(SendResult(False, REFUSED, "この宛先はテスト送信先に登録されていないため、送信しませんでした。"
                               "「送信設定」ページでテスト送信先に登録してください。", error_code="not_test_recipient"))
    missing = channel_ready(settings, channel) if sender is None else None
    if missing:
        return done(SendResult(False, NOT_CONFIGURED, missing, error_code="not_configured"))
    try:
        rendered = render_for_customer(store, template, customer_id, channel, campaign)
    except InputError as exc:
        done(SendResult(False, INVALID, exc.message, error_code="render_error"))
        raise
    if sender is None:
        profile = shop_profile(store)
        sender = make_sender(settings, channel, from_name=profile.from_name(), encoding=encoding,
                             unsubscribe_mailto=profile.unsubscribe_mailto, one_click=profile.one_click)
    if rendered.subject and channel == "email":
        rendered.subject = "【テスト】" + rendered.subject
    return done(sender.send(recipient, rendered))


test_send.__test__ = False  # not a pytest test despite the name
