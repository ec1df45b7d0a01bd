"""Outbound channels behind one small contract.

A sender has a ``channel`` name and one method, ``send(recipient, message)``,
taking a rendered message (:class:`crm_core.messaging.templates.Rendered`) and returning
a :class:`SendResult` with a Japanese message for the marketer.  Senders
receive their credentials as constructor arguments (never from the store or
Streamlit) and never put tokens or message bodies into results or logs.

* :class:`crm_core.messaging.channels.line.LineSender` — LINE Messaging API push through
  ``line-bot-sdk`` v3, with a retry key reused on retries.
* :class:`crm_core.messaging.channels.email.EmailSender` — SMTP through ``smtplib``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

from crm_core.messaging.templates import Rendered

__all__ = ["FAILED", "INVALID", "NOT_CONFIGURED", "OUTCOME_LABELS", "REFUSED", "SENT", "SendResult", "Sender", "email", "line"]

SENT = "sent"
FAILED = "failed"
REFUSED = "refused"
NOT_CONFIGURED = "not_configured"
INVALID = "invalid"
CHECKED = "checked"
OUTCOME_LABELS = {SENT: "送信済み", FAILED: "失敗", REFUSED: "拒否（宛先が対象外）", NOT_CONFIGURED: "未設定", INVALID: "内容エラー", CHECKED: "接続確認OK"}


@dataclass(frozen=True)
class SendResult:
    """The outcome of one logical send (retries included).

    ``message`` is Japanese for the screen; ``error_code`` and ``detail`` are
    short English notes for the log (never a token or a message body).
    """

    ok: bool
    outcome: str
    message: str
    request_id: str = ""
    http_status: int | None = None
    attempts: int = 0
    error_code: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sender(Protocol):
    """What every channel implements."""

    channel: str

    def send(self, recipient: str, message: Rendered) -> SendResult:
        """Deliver ``message`` to one recipient and report the outcome."""
        ...
