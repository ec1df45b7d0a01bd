"""The channel table: who each channel reaches, its labels, template channel and cost key.

The one definition read by every stage (FACTS.md §1, §5, §9); see
:mod:`crm_core.audience.reach` for why each channel reaches whom and for
:func:`~crm_core.audience.reach.explain_reach`.  This module imports nothing
of the audience package so that the segment builder can read it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crm_core.errors import InputError

__all__ = ["CHANNELS", "HAS_ADDRESS", "MAIL_LIST", "Channel", "channel", "labels", "reach_sql"]

HAS_ADDRESS = "coalesce(trim(cm.email), '') <> ''"


@dataclass(frozen=True)
class Channel:
    """One delivery channel.

    Attributes
    ----------
    key : str
        Stored in plans and campaigns (``line``, ``rmail``, ``shopify_email``, ``email``).
    label : str
        Short Japanese label (tables, charts).
    name : str
        Longer Japanese name (choices on pages).
    reach : str
        Boolean SQL over ``customer_model AS cm``: the customers the channel reaches.
    template_channel : str
        The channel of :mod:`crm_core.messaging.templates` whose text a send renders with.
    cost_key : str
        How :mod:`crm_core.planning.costs` prices a message: ``line`` (plan + extra
        messages), ``rmail`` (per mail), ``shopify_email`` (free quota, then USD), ``none``.
    """

    key: str
    label: str
    name: str
    reach: str
    template_channel: str
    cost_key: str


CHANNELS: dict[str, Channel] = {c.key: c for c in (
    Channel("line", "LINE", "LINE公式アカウント", "cm.has_line IS TRUE", "line", "line"),
    Channel("rmail", "R-Mail", "R-Mail（楽天メルマガ）",
            "cm.email_opt_in IS TRUE AND cm.first_source = 'rakuten'", "rmail", "rmail"),
    Channel("shopify_email", "Shopify Email", "Shopify Email",
            f"cm.email_opt_in IS TRUE AND {HAS_ADDRESS} AND cm.first_source = 'shopify'", "email", "shopify_email"),
    Channel("email", "メール", "メール（自社配信）",
            f"cm.email_opt_in IS TRUE AND {HAS_ADDRESS} AND coalesce(cm.first_source, '') <> 'rakuten'",
            "email", "none"),
)}
"""The channel table, in the order pages offer the channels."""

MAIL_LIST = Channel("mail_list", "メール", "メール（配信リスト）", f"cm.email_opt_in IS TRUE AND {HAS_ADDRESS}", "email", "none")
"""A mailing list: customers who allowed e-mail and have an address (the segment builder's 「メールで届く」)."""


def channel(key: str) -> Channel:
    """The :class:`Channel` of ``key`` (also ``mail_list``); a Japanese :class:`InputError` for an unknown key."""
    if key == MAIL_LIST.key:
        return MAIL_LIST
    if key not in CHANNELS:
        raise InputError("配信チャネルは " + "・".join(c.label for c in CHANNELS.values()) + "から選んでください。",
                         f"unknown channel {key!r}")
    return CHANNELS[key]


def reach_sql(key: str) -> str:
    """The reach predicate of a channel, parenthesised (see :class:`Channel`)."""
    return "(" + channel(key).reach + ")"


def labels(keys: Any = None) -> dict[str, str]:
    """``{key: short label}`` for ``keys`` (default: every channel)."""
    return {k: CHANNELS[k].label for k in (keys if keys is not None else CHANNELS)}
