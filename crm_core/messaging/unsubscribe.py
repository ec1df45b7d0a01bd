"""Signed one-click unsubscribe links (RFC 8058; FACTS.md §9).

A link is ``<public URL>/unsubscribe/<token>``; the token is the pair
(campaign id, customer id) signed with HMAC-SHA256 under the console's secret
(``itsdangerous``).  It names no e-mail address; the endpoint looks the
address up in the ledger.  Without the secret nobody can make a token for
someone else, and a changed character makes the token invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from itsdangerous import BadSignature, URLSafeSerializer

SALT = "crm-one-click-unsubscribe"
PATH = "/unsubscribe/"


@dataclass(frozen=True)
class Unsubscribe:
    """Make and check unsubscribe tokens.

    Parameters
    ----------
    secret : str
        ``CRM_UNSUBSCRIBE_SECRET`` (long and random; never shown).
    public_url : str
        Where the endpoint service is reachable from the internet (https).
    """

    secret: str = field(repr=False)
    public_url: str = ""

    def __post_init__(self) -> None:
        if len(self.secret or "") < 16:
            raise ValueError("the unsubscribe secret must be at least 16 characters")

    def _serializer(self) -> URLSafeSerializer:
        return URLSafeSerializer(self.secret, salt=SALT, signer_kwargs={"digest_method": _sha256()})

    def token(self, campaign_id: int, customer_id: str) -> str:
        return str(self._serializer().dumps([int(campaign_id), str(customer_id)]))

    def url(self, campaign_id: int, customer_id: str) -> str:
        return self.public_url.rstrip("/") + PATH + self.token(campaign_id, customer_id)

    def read(self, token: str) -> tuple[int, str] | None:
        """``(campaign_id, customer_id)`` of a valid token, else None."""
        try:
            data = self._serializer().loads(token or "")
        except BadSignature:
            return None
        if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], int) and isinstance(data[1], str)):
            return None
        return data[0], data[1]


def _sha256():
    import hashlib

    return hashlib.sha256
