"""A local SMTP server (aiosmtpd) that keeps every message it receives.

Optionally requires a login (``username`` / ``password``; plain-text AUTH is
allowed without TLS because it only listens on localhost), and optionally
speaks TLS with a test certificate authority from ``trustme``: ``tls="starttls"``
offers STARTTLS, ``tls="implicit"`` is TLS from the first byte (like port 465).
:attr:`SmtpSink.client_context` trusts that authority.  :attr:`SmtpSink.refuse` maps addresses to a refusal at RCPT.  Messages are kept
as parsed :class:`email.message.EmailMessage` objects in :attr:`SmtpSink.messages`.
"""

from __future__ import annotations

import socket
import ssl
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:  # noqa: N802, ARG002
        reply = self.sink.refuse.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook name
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        self.sink.envelopes.append({"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos), "raw": envelope.content,
                                    "tls": server.transport.get_extra_info("ssl_object") is not None})
        self.sink.messages.append(msg)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class SmtpSink:
    """``with SmtpSink() as smtp: ...`` — a running local SMTP server on ``smtp.port``."""

    def __init__(self, username: str = "", password: str = "", *, tls: str = "", host: str = "127.0.0.1") -> None:
        self.port = _free_port()
        self.host = host
        self.messages: list[EmailMessage] = []
        self.envelopes: list[dict[str, Any]] = []
        self.refuse: dict[str, str] = {}  # address (lower case) -> SMTP reply at RCPT, e.g. "550 5.1.1 User unknown"
        self.username = username
        self.password = password
        kwargs: dict[str, Any] = {}
        if username:
            kwargs = {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": False}
        self.client_context: ssl.SSLContext | None = None
        if tls:
            import trustme

            ca = trustme.CA()
            server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert(self.host).configure_cert(server_context)
            self.client_context = ssl.create_default_context()
            ca.configure_trust(self.client_context)
            kwargs["tls_context" if tls == "starttls" else "ssl_context"] = server_context
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.username and auth_data.password.decode() == self.password
        return AuthResult(success=ok, handled=False)

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
