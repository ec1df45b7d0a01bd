"""Mail permission columns of imported files as plain rows (who allowed or refused marketing e-mail, and as of when).

Read by :mod:`crm_core.pipeline` after a committed import and handed to
:func:`crm_core.messaging.consent.record_imported` (ingest sits below
messaging, so it only reads).  Columns: Rakuten ``メールフラグ`` /
``メルマガ希望``, Shopify ``Accepts Marketing`` / ``Accepts Email Marketing``
and the generic ``メルマガ許諾`` (see :mod:`crm_core.ingest.formats`).

Order rows carry the order time (the buyer's choice as of that order; the
latest order of an address in the import wins); customer lists carry no date
(``occurred_at`` None: "as of the import").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from crm_core.db import Store


def imports(store: Store) -> list[tuple[int, str]]:
    """Every import as ``(import_id, imported_at)`` (the pair names an import even after delete-all restarts the ids)."""
    if not store.has_table("imports"):
        return []
    return [(int(r[0]), str(r[1])) for r in store.fetchall("SELECT import_id, imported_at FROM imports ORDER BY import_id")]


def mail_permissions(store: Store, import_ids: Sequence[int]) -> list[dict[str, Any]]:
    """``address`` (lower case), ``opt_in`` (bool), ``occurred_at`` (naive JST datetime or None), ``customer_id``.

    Only rows with an address and a yes/no value; one row per address and
    kind of file (orders, then customer lists).
    """
    ids = [int(i) for i in import_ids]
    if not ids:
        return []
    out: list[dict[str, Any]] = []
    if store.has_table("orders"):
        rows = store.fetchall(
            """
            SELECT lower(trim(email)) AS address, arg_max(email_opt_in, ordered_at), max(ordered_at), arg_max(customer_id, ordered_at)
            FROM orders
            WHERE import_id IN (SELECT unnest(?)) AND email_opt_in IS NOT NULL AND ordered_at IS NOT NULL
              AND nullif(trim(email), '') IS NOT NULL
            GROUP BY 1 ORDER BY 1
            """,
            [ids],
        )
        out += [{"address": a, "opt_in": bool(v), "occurred_at": _naive(t), "customer_id": c} for a, v, t, c in rows]
    if store.has_table("contacts"):
        rows = store.fetchall(
            """
            SELECT lower(trim(email)) AS address, bool_and(email_opt_in)
            FROM contacts
            WHERE import_id IN (SELECT unnest(?)) AND email_opt_in IS NOT NULL AND nullif(trim(email), '') IS NOT NULL
            GROUP BY 1 ORDER BY 1
            """,
            [ids],
        )
        out += [{"address": a, "opt_in": bool(v), "occurred_at": None, "customer_id": None} for a, v in rows]
    return out


def _naive(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=None) if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
