"""Which channel reaches one customer now: LINE, e-mail, or LINE（なければメール）.

The one place that decides, per customer, the channel a message goes out on —
used by live campaigns (:mod:`crm_core.results.live`) and scenario steps
(:mod:`crm_core.scenarios.engine`).  Who a channel can reach at all comes from
the channel table (:mod:`crm_core.audience.channels`, reasons in
:mod:`crm_core.audience.reach`); this module adds what only the operations
store knows (opt-outs, LINE blocks, bounces) and the Rakuten relay rule:

- LINE: a LINE user id (linked or a friend) that is not blocked/opted out.
- e-mail: allowed e-mail, has an address, not a Rakuten buyer (the channel
  table), not opted out or bounced, and not a Rakuten relay address — those
  are refused for marketing mail and go to the R-Mail export instead
  (reason ``rakuten_relay``).
- ``line_or_email``: LINE when LINE reaches the customer, else e-mail (the
  way LINE-first CRM tools offer 「LINE（なければメール）」).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from crm_core.audience.channels import CHANNELS as REACH
from crm_core.db import Store
from crm_core.messaging import consent
from crm_core.messaging.channels.email_bulk import is_rakuten_relay

__all__ = ["LABELS", "MODES", "Choice", "blocked", "choose", "modes_of", "people"]

MODES: dict[str, tuple[str, ...]] = {"line": ("line",), "email": ("email",), "line_or_email": ("line", "email")}
"""A send's channel setting → the channels tried, in order."""
LABELS = {"line": "LINE", "email": "メール", "line_or_email": "LINE（なければメール）"}
EXPLANATION = ("お客様ごとに、LINEで届く方（LINEユーザーIDがあり、ブロック・配信停止していない方）にはLINEで、"
               "LINEで届かない方にはメール（配信許可とアドレスがあり、配信停止していない方）で、1人に1通だけ送ります。"
               "楽天の中継アドレスにはメールを送らず、R-Mail用のリストに入れます。")
"""What 「LINE（なければメール）」 does, for the pages."""


@dataclass(frozen=True)
class Choice:
    """The channel of one customer: ``state`` ``queued`` (send on ``channel`` to ``address``),
    ``suppressed`` (``reason`` ``opt_out`` or ``rakuten_relay``; ``channel`` the refused one) or
    ``unreachable`` (no channel of the setting reaches the customer)."""

    state: str
    channel: str | None
    address: str
    reason: str | None = None


def modes_of(setting: str) -> tuple[str, ...]:
    """The channels a setting tries (``line``, ``email``, ``line_or_email``)."""
    return MODES[setting]


def people(store: Store, ids: Sequence[str]) -> dict[str, dict[str, str | None]]:
    """``{customer_id: {"line": user id or None, "email": address or None}}``: the address of each channel
    that reaches the customer by the channel table (before opt-outs, which :func:`choose` applies)."""
    if not ids:
        return {}
    sql = ("SELECT customer_id, CASE WHEN " + REACH["line"].reach + " THEN trim(cm.line_user_id) END,"  # noqa: S608 - fixed fragments
           " CASE WHEN " + REACH["email"].reach + " THEN trim(cm.email) END"
           " FROM customer_model AS cm WHERE customer_id IN (SELECT unnest(?))")
    return {r[0]: {"line": r[1] or None, "email": r[2] or None} for r in store.fetchall(sql, [list(ids)])}


def blocked(ops: sqlite3.Connection) -> dict[str, set[str]]:
    """The suppressed addresses of each channel (opt-outs, LINE blocks, bounces), normalised."""
    return {ch: consent.suppressed(ops, ch) for ch in consent.CHANNELS}


def choose(person: dict[str, Any] | None, setting: str, suppressed: dict[str, set[str]]) -> Choice:
    """The channel one customer gets for a send ``setting`` (see the module docstring).

    When no channel of the setting may be used, the refusal says why: a Rakuten relay address
    (→ R-Mail) wins over an opt-out, since the customer can still get R-Mail.
    """
    refused: list[Choice] = []
    for ch in MODES[setting]:
        address = (person or {}).get(ch)
        if not address:
            continue
        if consent.normalise(ch, address) in suppressed.get(ch, ()):
            refused.append(Choice("suppressed", ch, address, "opt_out"))
        elif ch == "email" and is_rakuten_relay(address):
            refused.append(Choice("suppressed", ch, address, "rakuten_relay"))
        else:
            return Choice("queued", ch, address)
    if not refused:
        return Choice("unreachable", None, "")
    return next((c for c in refused if c.reason == "rakuten_relay"), refused[0])
