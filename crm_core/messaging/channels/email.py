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
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from crm_core.messaging.channels import FAILED, INVALID, SENT, SendResult
from crm_core.messaging.compliance import unencodable
from crm_core.messaging.templates import Rendered

EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
ENCODINGS = ("utf-8", "iso-2022-jp")


def build_message(
    recipient: str,
    message: Rendered,
    from_addr: str,
    from_name: str = "",
    *,
    encoding: str = "utf-8",
    unsubscribe_mailto: str = "",
) -> EmailMessage:
    """The MIME message for one recipient.

    Raises
    ------
    ValueError
        If ``encoding`` is ISO-2022-JP and the text has characters it cannot carry.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}")
    msg = EmailMessage()
    msg["Subject"] = message.subject
    msg["From"] = Address(display_name=from_name, addr_spec=from_addr) if from_name else from_addr
    msg["To"] = recipient
    msg["Date"] = formatdate(localtime=True)
    domain = from_addr.rsplit("@", 1)[-1] if "@" in from_addr else None
    msg["Message-ID"] = make_msgid(domain=domain)
    links = []
    if message.unsubscribe_url.startswith("https://"):
        links.append(f"<{message.unsubscribe_url}>")
    if unsubscribe_mailto:
        links.append(f"<mailto:{unsubscribe_mailto}?subject=unsubscribe>")
    if links:
        msg["List-Unsubscribe"] = ", ".join(links)
        if message.unsubscribe_url.startswith("https://"):
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if encoding == "iso-2022-jp":
        bad = unencodable(message.subject + message.text)
        if bad:
            raise ValueError("characters not in ISO-2022-JP: " + "".join(bad))
        msg.set_content(message.text, charset="iso-2022-jp", cte="7bit")
    else:
        msg.set_content(message.text, cte="base64")
    if message.html:
        msg.add_alternative(message.html, subtype="html", cte="base64")
    return msg


class EmailSender:
    """Send e-mail through one SMTP server.

    Parameters
    ----------
    host, port : str, int
        The SMTP server (port 465 means implicit TLS).
    username, password : str, optional
        Log in when given (never logged or shown).
    from_addr : str
        The envelope and header sender (``SMTP_FROM``).
    from_name : str
        Display name shown in the inbox (the shop name).
    starttls : bool
        Upgrade the connection with STARTTLS before logging in.
    encoding : {"utf-8", "iso-2022-jp"}
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
        starttls: bool = True,
        timeout: float = 20.0,
        encoding: str = "utf-8",
        unsubscribe_mailto: str = "",
    ) -> None:
        self.host = host
        self.port = int(port)
        self._username = username
        self._password = password
        self.from_addr = from_addr
        self.from_name = from_name
        self.starttls = starttls
        self.timeout = timeout
        self.encoding = encoding
        self.unsubscribe_mailto = unsubscribe_mailto

    def __repr__(self) -> str:  # never show the password
        return f"EmailSender(host={self.host!r}, port={self.port}, starttls={self.starttls})"

    def send(self, recipient: str, message: Rendered) -> SendResult:
        """Send one message; SMTP problems become Japanese messages."""
        if not EMAIL_RE.match(recipient or ""):
            return SendResult(False, INVALID, "送信先のメールアドレスの形式が正しくありません。", error_code="bad_address")
        try:
            msg = build_message(recipient, message, self.from_addr, self.from_name, encoding=self.encoding,
                                unsubscribe_mailto=self.unsubscribe_mailto)
        except ValueError:
            return SendResult(False, INVALID, "ISO-2022-JPで送れない文字があります。チェック結果の置き換えを行うか、UTF-8で送信してください。",
                              error_code="encoding")
        msg_id = str(msg["Message-ID"])
        where = f"{self.host}:{self.port}"
        try:
            context = ssl.create_default_context()
            if self.port == 465:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if self.starttls and self.port != 465:
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if self._username:
                    smtp.login(self._username, self._password)
                smtp.send_message(msg, from_addr=self.from_addr, to_addrs=[recipient])
        except smtplib.SMTPAuthenticationError as exc:
            return self._fail("SMTPサーバーへのログインに失敗しました。SMTP_USERNAME と SMTP_PASSWORD を確認してください。", "auth_failed", exc.smtp_code)
        except smtplib.SMTPNotSupportedError:
            return self._fail(
                "SMTPサーバーがSTARTTLS（またはログイン）に対応していません。SMTP_STARTTLS やポート番号を確認してください。", "not_supported"
            )
        except smtplib.SMTPRecipientsRefused:
            return self._fail("SMTPサーバーが送信先のメールアドレスを受け付けませんでした。", "recipient_refused")
        except smtplib.SMTPSenderRefused as exc:
            return self._fail("SMTPサーバーが送信元アドレス（SMTP_FROM）を受け付けませんでした。", "sender_refused", exc.smtp_code)
        except smtplib.SMTPDataError as exc:
            return self._fail(f"SMTPサーバーがメールを受け付けませんでした（{exc.smtp_code}）。", "data_refused", exc.smtp_code)
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError):
            return self._fail(f"SMTPサーバー（{where}）との接続が切れました。ホスト名・ポート番号を確認してください。", "disconnected")
        except ssl.SSLError:
            return self._fail(f"SMTPサーバー（{where}）と暗号化通信ができませんでした。SMTP_STARTTLS とポート番号を確認してください。", "tls_error")
        except TimeoutError:
            return self._fail(f"SMTPサーバー（{where}）から時間内に応答がありませんでした。", "timeout")
        except smtplib.SMTPException as exc:
            return self._fail("メールを送信できませんでした（SMTPエラー）。", "smtp_error", getattr(exc, "smtp_code", None))
        except OSError:
            return self._fail(f"SMTPサーバー（{where}）に接続できませんでした。SMTP_HOST と SMTP_PORT を確認してください。", "connection_error")
        return SendResult(True, SENT, "メールでテスト送信しました。", request_id=msg_id, attempts=1)

    @staticmethod
    def _fail(text: str, code: str, smtp_code: int | None = None) -> SendResult:
        return SendResult(False, FAILED, text, attempts=1, error_code=code, http_status=smtp_code)
