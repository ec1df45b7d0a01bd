"""Campaign e-mail through ``smtplib``: one connection for many mails, a rate, headers per recipient.

:func:`campaign_message` is the one function that sets a live mail's headers
(Message-ID chosen by the caller and stored in the ledger before sending;
``List-Unsubscribe`` with the recipient's signed one-click URL and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``, RFC 8058).
:class:`SmtpSession` keeps one SMTP connection open, sends at most
``rate`` mails per second, reconnects after a dropped connection and tells a
permanent refusal of the recipient (5xx at RCPT: suppress the address) from
a temporary one.

Rakuten buyers' addresses are relay addresses for order communication
(FACTS.md §9): :func:`is_rakuten_relay` finds them so that marketing mail is
refused and those recipients go to the R-Mail export instead.
"""

from __future__ import annotations

import dataclasses
import re
import smtplib
import ssl
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid

from crm_core.messaging.channels import FAILED, SENT, SendResult
from crm_core.messaging.channels.email import build_message
from crm_core.messaging.templates import Rendered

RAKUTEN_RELAY_RE = re.compile(r"@(?:[a-z0-9-]+\.)*fw\.rakuten\.ne\.jp$", re.IGNORECASE)
RAKUTEN_REFUSAL = ("楽天の注文で受け取ったメールアドレス（…@fw.rakuten.ne.jp）は、楽天が注文連絡のために中継するアドレスです。"
                   "宣伝メールは送れないため、このお客様にはR-Mail（楽天メルマガ）用の書き出しに回しました。")


def is_rakuten_relay(address: str) -> bool:
    """True for a Rakuten relay address (``…@pc.fw.rakuten.ne.jp`` and similar)."""
    return bool(RAKUTEN_RELAY_RE.search((address or "").strip()))


def new_message_id(from_addr: str) -> str:
    """A Message-ID in the sender's domain."""
    domain = from_addr.rsplit("@", 1)[-1] if "@" in from_addr else None
    return make_msgid(domain=domain)


def campaign_message(
    recipient: str,
    rendered: Rendered,
    *,
    from_addr: str,
    from_name: str = "",
    unsubscribe_url: str,
    message_id: str,
    encoding: str = "utf-8",
    unsubscribe_mailto: str = "",
) -> EmailMessage:
    """The MIME message of one live marketing mail (the only place its headers are set).

    Raises
    ------
    ValueError
        Without an https one-click unsubscribe URL (RFC 8058 needs one), or
        text the encoding cannot carry.
    """
    if not unsubscribe_url.startswith("https://"):
        raise ValueError("a live marketing mail needs an https one-click unsubscribe URL")
    personal = dataclasses.replace(rendered, unsubscribe_url=unsubscribe_url)
    msg = build_message(recipient, personal, from_addr, from_name, encoding=encoding, unsubscribe_mailto=unsubscribe_mailto)
    msg.replace_header("Message-ID", message_id)
    if "List-Unsubscribe-Post" not in msg:
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return msg


class SmtpSession:
    """One SMTP connection reused for many messages.

    Parameters
    ----------
    host, port : str, int
        The SMTP server (465: TLS from the first byte).
    username, password : str
        Log in when given (never logged or shown).
    starttls : bool or None
        None: use STARTTLS when the server offers it.
    rate : float
        At most this many mails per second (0: no limit).
    """

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        username: str = "",
        password: str = "",
        starttls: bool | None = None,
        timeout: float = 30.0,
        rate: float = 0.0,
        tls_context: ssl.SSLContext | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.port = int(port)
        self._username = username
        self._password = password
        self.starttls = starttls
        self.timeout = timeout
        self.rate = float(rate or 0)
        self._tls_context = tls_context
        self._sleep = sleep
        self._monotonic = monotonic
        self._smtp: smtplib.SMTP | None = None
        self._next_at = 0.0
        self.connections = 0

    def __repr__(self) -> str:  # never show the password
        return f"SmtpSession(host={self.host!r}, port={self.port})"

    def __enter__(self) -> SmtpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> smtplib.SMTP:
        context = self._tls_context or ssl.create_default_context()
        if self.port == 465:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.port != 465 and (self.starttls or (self.starttls is None and smtp.has_extn("starttls"))):
                smtp.starttls(context=context)
                smtp.ehlo()
            if self._username:
                smtp.login(self._username, self._password)
        except BaseException:
            smtp.close()
            raise
        self.connections += 1
        return smtp

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def _pace(self) -> None:
        if self.rate <= 0:
            return
        now = self._monotonic()
        if now < self._next_at:
            self._sleep(self._next_at - now)
            now = self._next_at
        self._next_at = now + 1.0 / self.rate

    def send(self, msg: EmailMessage, from_addr: str, recipient: str, *, attempts: int = 3) -> SendResult:
        """Send one message on the open connection (reconnecting when it dropped).

        ``error_code`` ``recipient_refused`` with a 5xx ``http_status`` is a
        permanent refusal of the address (suppress it); ``recipient_deferred``
        (4xx) and connection problems are temporary.
        """
        message_id = str(msg["Message-ID"])
        last: SendResult | None = None
        for attempt in range(1, attempts + 1):
            self._pace()
            try:
                if self._smtp is None:
                    self._smtp = self._connect()
                self._smtp.send_message(msg, from_addr=from_addr, to_addrs=[recipient])
                return SendResult(True, SENT, "メールを送信しました。", request_id=message_id, attempts=attempt)
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()), (0, b""))
                self._reset()
                if 500 <= int(code) <= 599:
                    return SendResult(False, FAILED, "受信側のメールサーバーがこの宛先を受け付けませんでした（存在しないアドレスなど）。以後この宛先には送りません。",
                                      request_id=message_id, http_status=int(code), attempts=attempt, error_code="recipient_refused",
                                      detail=reply.decode(errors="replace")[:200] if isinstance(reply, bytes) else str(reply)[:200])
                last = SendResult(False, FAILED, "受信側のメールサーバーが一時的に受け付けませんでした。", request_id=message_id,
                                  http_status=int(code), attempts=attempt, error_code="recipient_deferred")
                return last
            except smtplib.SMTPDataError as exc:
                self._reset()
                permanent = 500 <= int(exc.smtp_code) <= 599
                return SendResult(False, FAILED, f"メールサーバーがメールを受け付けませんでした（{exc.smtp_code}）。", request_id=message_id,
                                  http_status=int(exc.smtp_code), attempts=attempt,
                                  error_code="data_refused" if permanent else "data_deferred")
            except smtplib.SMTPAuthenticationError as exc:
                self.close()
                return SendResult(False, FAILED, "SMTPサーバーへのログインに失敗しました。送信設定を確認してください。",
                                  http_status=exc.smtp_code, attempts=attempt, error_code="auth_failed")
            except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, smtplib.SMTPSenderRefused, OSError) as exc:
                self._drop()
                last = SendResult(False, FAILED, f"SMTPサーバー（{self.host}:{self.port}）との接続が切れました。",
                                  request_id=message_id, attempts=attempt, error_code="disconnected", detail=type(exc).__name__)
                self._sleep(min(0.5 * attempt, 5.0))
                continue
            except smtplib.SMTPException as exc:
                self._drop()
                last = SendResult(False, FAILED, "メールを送信できませんでした（SMTPエラー）。", request_id=message_id,
                                  attempts=attempt, error_code="smtp_error", detail=type(exc).__name__)
                continue
        assert last is not None
        return last

    def _reset(self) -> None:
        """RSET after a refused transaction so the connection can be reused."""
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None
