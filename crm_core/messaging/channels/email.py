"""E-mail through ``smtplib`` (FACTS.md §4).

Messages are :class:`email.message.EmailMessage` objects: UTF-8 with base64
bodies by default (ISO-2022-JP on request, after a check that every
character fits), a Japanese subject encoded per RFC 2047, a plain-text part
and an HTML alternative, and the bulk-sender headers ``List-Unsubscribe`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from crm_core.messaging.channels import CHECKED, FAILED, INVALID, SENT, SendResult
from crm_core.messaging.compliance import unencodable
from crm_core.messaging.templates import Rendered

EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
ENCODINGS = ("utf-8", "iso-2022-jp")


class HeaderError(ValueError):
    """A header value that cannot be sent (a line break in the subject, a bad address)."""


class EncodingError(ValueError):
    """Text the chosen encoding (ISO-2022-JP) cannot carry."""


def build_message(
    recipient: str,
    message: Rendered,
    from_addr: str,
    from_name: str = "",
    *,
    encoding: str = "utf-8",
    unsubscribe_mailto: str = "",
    one_click: bool = True,
) -> EmailMessage:
    """The MIME message for one recipient.

    Every message carries ``List-Unsubscribe``: the shop's https opt-out link
    and/or a ``mailto:`` to ``unsubscribe_mailto`` — the sender's own address
    when neither is set.  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
    (RFC 8058) is added only with an https link and ``one_click``.

    Raises
    ------
    EncodingError
        If ``encoding`` is ISO-2022-JP and the text has characters it cannot carry.
    HeaderError
        If a header value (subject, sender name) holds a line break.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}")
    msg = EmailMessage()
    try:
        msg["Subject"] = message.subject
        msg["From"] = Address(display_name=from_name, addr_spec=from_addr) if from_name else from_addr
        msg["To"] = recipient
    except ValueError as exc:
        raise HeaderError(str(exc)) from None
    msg["Date"] = formatdate(localtime=True)
    domain = from_addr.rsplit("@", 1)[-1] if "@" in from_addr else None
    msg["Message-ID"] = make_msgid(domain=domain)
    links = []
    https = message.unsubscribe_url.startswith("https://")
    if https:
        links.append(f"<{message.unsubscribe_url}>")
    mailto = unsubscribe_mailto or ("" if https else from_addr)
    if mailto and EMAIL_RE.match(mailto):
        links.append(f"<mailto:{mailto}?subject=unsubscribe>")
    if links:
        msg["List-Unsubscribe"] = ", ".join(links)
        if https and one_click:
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if encoding == "iso-2022-jp":
        bad = unencodable(message.subject + message.text)
        if bad:
            raise EncodingError("characters not in ISO-2022-JP: " + "".join(bad))
        msg.set_content(message.text, charset="iso-2022-jp", cte="7bit")
    else:
        msg.set_content(message.text, cte="base64")
    if message.html:
        msg.add_alternative(message.html, subtype="html", cte="base64")
    return msg


_LOOPBACK = ("localhost", "127.0.0.1", "::1")


class EmailSender:
    """Send e-mail through one SMTP server.

    Parameters
    ----------
    host, port : str, int
        The SMTP server.
    username, password : str, optional
        Log in when given (never logged or shown).
    from_addr : str
        The envelope and header sender.
    from_name : str
        Display name shown in the inbox (the shop's sender name).
    starttls : bool or None
        ``None`` (default): upgrade with STARTTLS when the server offers it —
        so a plain local server and real providers both work; a password is
        then never sent unencrypted to a server other than this machine.
        ``True``: require STARTTLS.  ``False``: never use it.
    implicit_tls : bool or None
        TLS from the first byte (SMTPS); ``None`` means "when the port is 465".
    tls_context : ssl.SSLContext, optional
        Certificates to trust (default: the system's).
    encoding : {"utf-8", "iso-2022-jp"}
    unsubscribe_mailto : str
        Address for the ``mailto:`` opt-out (default: ``from_addr`` when the
        message has no https opt-out link).
    one_click : bool
        Announce RFC 8058 one-click opt-out for the https link.
    """

    channel = "email"

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        username: str = "",
        password: str = "",
        from_addr: str,
        from_name: str = "",
        starttls: bool | None = None,
        implicit_tls: bool | None = None,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = 20.0,
        encoding: str = "utf-8",
        unsubscribe_mailto: str = "",
        one_click: bool = True,
    ) -> None:
        self.host = host
        self.port = int(port)
        self._username = username
        self._password = password
        self.from_addr = from_addr
        self.from_name = from_name
        self.starttls = starttls
        self.implicit_tls = self.port == 465 if implicit_tls is None else implicit_tls
        self._tls_context = tls_context
        self.timeout = timeout
        self.encoding = encoding
        self.unsubscribe_mailto = unsubscribe_mailto
        self.one_click = one_click
        self.tls_used = ""

    def __repr__(self) -> str:  # never show the password
        return f"EmailSender(host={self.host!r}, port={self.port}, starttls={self.starttls})"

    def _connect(self) -> smtplib.SMTP:
        """An open, (when possible) encrypted and logged-in SMTP session."""
        context = self._tls_context or ssl.create_default_context()
        if self.implicit_tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            self.tls_used = "SSL/TLS"
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            self.tls_used = ""
        try:
            smtp.ehlo()
            offered = smtp.has_extn("starttls")
            if not self.implicit_tls and (self.starttls or (self.starttls is None and offered)):
                smtp.starttls(context=context)  # raises SMTPNotSupportedError when required but not offered
                smtp.ehlo()
                self.tls_used = "STARTTLS"
            if self._username:
                if not self.tls_used and self.starttls is None and self.host.lower() not in _LOOPBACK:
                    raise _PlainLoginRefused
                smtp.login(self._username, self._password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _guarded(self, action: Callable[[smtplib.SMTP], SendResult]) -> SendResult:
        """Run ``action`` on a session; SMTP problems become Japanese messages."""
        where = f"{self.host}:{self.port}"
        try:
            with self._connect() as smtp:
                return action(smtp)
        except _PlainLoginRefused:
            return self._fail(f"SMTPサーバー（{where}）が暗号化（STARTTLS）に対応していないため、パスワードを送りませんでした。"
                              "ポート番号（587 または 465）を確認してください。", "tls_not_offered")
        except smtplib.SMTPAuthenticationError as exc:
            return self._fail("SMTPサーバーへのログインに失敗しました。送信設定のユーザー名とパスワードを確認してください。", "auth_failed", exc.smtp_code)
        except smtplib.SMTPNotSupportedError:
            return self._fail(
                "SMTPサーバーがSTARTTLS（暗号化）またはログインに対応していません。送信設定の暗号化とポート番号を確認してください。", "not_supported"
            )
        except smtplib.SMTPRecipientsRefused:
            return self._fail("SMTPサーバーが送信先のメールアドレスを受け付けませんでした。", "recipient_refused")
        except smtplib.SMTPSenderRefused as exc:
            return self._fail("SMTPサーバーが送信元メールアドレスを受け付けませんでした。送信設定の送信元アドレスを確認してください。", "sender_refused", exc.smtp_code)
        except smtplib.SMTPDataError as exc:
            return self._fail(f"SMTPサーバーがメールを受け付けませんでした（{exc.smtp_code}）。", "data_refused", exc.smtp_code)
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError):
            return self._fail(f"SMTPサーバー（{where}）との接続が切れました。サーバー名・ポート番号を確認してください。", "disconnected")
        except ssl.SSLError:
            return self._fail(f"SMTPサーバー（{where}）と暗号化通信ができませんでした。ポート番号（587 または 465）を確認してください。", "tls_error")
        except TimeoutError:
            return self._fail(f"SMTPサーバー（{where}）から時間内に応答がありませんでした。", "timeout")
        except smtplib.SMTPException as exc:
            return self._fail("メールを送信できませんでした（SMTPエラー）。", "smtp_error", getattr(exc, "smtp_code", None))
        except OSError:
            return self._fail(f"SMTPサーバー（{where}）に接続できませんでした。サーバー名とポート番号を確認してください。", "connection_error")

    def send(self, recipient: str, message: Rendered) -> SendResult:
        """Send one message; SMTP problems become Japanese messages."""
        if not EMAIL_RE.match(recipient or ""):
            return SendResult(False, INVALID, "送信先のメールアドレスの形式が正しくありません。", error_code="bad_address")
        try:
            msg = build_message(recipient, message, self.from_addr, self.from_name, encoding=self.encoding,
                                unsubscribe_mailto=self.unsubscribe_mailto, one_click=self.one_click)
        except EncodingError:
            return SendResult(False, INVALID, "ISO-2022-JPで送れない文字があります。チェック結果の置き換えを行うか、UTF-8で送信してください。",
                              error_code="encoding")
        except HeaderError:
            return SendResult(False, INVALID, "件名・差出人名に改行などメールの見出しに使えない文字があります。件名と送信者名を確認してください。",
                              error_code="bad_header")
        msg_id = str(msg["Message-ID"])

        def deliver(smtp: smtplib.SMTP) -> SendResult:
            smtp.send_message(msg, from_addr=self.from_addr, to_addrs=[recipient])
            return SendResult(True, SENT, "メールでテスト送信しました。", request_id=msg_id, attempts=1)

        return self._guarded(deliver)

    def check(self) -> SendResult:
        """Connect, encrypt when possible, log in and say goodbye — nothing is sent."""

        def noop(smtp: smtplib.SMTP) -> SendResult:
            smtp.noop()
            how = f"暗号化: {self.tls_used}" if self.tls_used else "暗号化なし"
            login = "・ログイン成功" if self._username else ""
            return SendResult(True, CHECKED, f"SMTPサーバー（{self.host}:{self.port}）に接続できました（{how}{login}）。", attempts=1)

        return self._guarded(noop)

    @staticmethod
    def _fail(text: str, code: str, smtp_code: int | None = None) -> SendResult:
        return SendResult(False, FAILED, text, attempts=1, error_code=code, http_status=smtp_code)


class _PlainLoginRefused(Exception):
    """The server offered no STARTTLS; the password is not sent in the clear."""
