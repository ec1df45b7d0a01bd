"""Engagement from aggregate reports: opens and clicks per message, not per customer.

LINE (Official Account Manager statistics, or the insight API for sends made
through the console) and R-Mail report counts per message.  They cannot be
tied to recipients, so they sit *beside* the order-based results of a
campaign, never in the lift.  LINE returns any value under its privacy
threshold (20) as ``null`` (FACTS.md §9): such a value is stored as NULL, named
in ``withheld`` and shown as :data:`WITHHELD_LABEL` -- never as 0 -- and every
figure of that report is marked approximate.

Rows live in ``message_stats`` (db migration 2); file imports go through the
importer (kind ``message_stats``), live fetches through
:func:`record_message_stats`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from crm_core import clock
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.messaging import ledger as _ledger  # noqa: F401 - registers send_ledger / send_campaigns, read by the LINE statistics

WITHHELD_LABEL = "非公開（少数のため）"
APPROX_NOTE = (
    "開封・クリックは配信元の集計（メッセージ単位）で、お客様ごとには分かりません。"
    "LINEは少ない数（20未満）を公開しないため、その値は「非公開（少数のため）」と表示し、その行は概算（≈）です。"
    "施策の良し悪しは、上の注文にもとづく結果（送らないグループとの比較）で判断してください。"
)
SOURCE_LABELS = {"line": "LINE", "line_api": "LINE（API）", "rmail": "R-Mail", "report": "配信レポート"}
COUNTS = ("delivered", "opens", "clicks", "unique_clicks")
COUNT_LABELS = {"delivered": "配信数", "opens": "開封数", "clicks": "クリック数", "unique_clicks": "クリックした人数"}
# LINE insight API names (overview of /v2/bot/insight/message/event and .../aggregation) -> our counts.
LINE_API_KEYS = {"delivered": "delivered", "uniqueImpression": "opens", "uniqueClick": "unique_clicks"}


def _normalise(source: str, stats: Mapping[str, Any]) -> dict[str, Any]:
    """One report row from our names or LINE's API names; a key present with None is withheld."""
    row: dict[str, Any] = {"message_name": stats.get("message_name") or stats.get("customAggregationUnit")
                           or stats.get("requestId"), "sent_on": stats.get("sent_on")}
    overview = stats.get("overview") if isinstance(stats.get("overview"), Mapping) else stats
    withheld = []
    for key in COUNTS:
        if key in overview:
            row[key] = overview[key]
            if overview[key] is None:
                withheld.append(key)
    for api, ours in LINE_API_KEYS.items():
        if api in overview and ours not in row:
            row[ours] = overview[api]
            if overview[api] is None:
                withheld.append(ours)
    clicks = stats.get("clicks")
    if isinstance(clicks, list) and "clicks" not in row:
        values = [c.get("click") for c in clicks if isinstance(c, Mapping)]
        row["clicks"] = None if any(v is None for v in values) else sum(values)
        if row["clicks"] is None:
            withheld.append("clicks")
    for key in COUNTS:
        value = row.get(key)
        if value is not None:
            try:
                row[key] = int(value)
            except (TypeError, ValueError):
                raise InputError(f"{COUNT_LABELS[key]}「{value}」を数として読めません。", "bad count") from None
            if row[key] < 0:
                raise InputError(f"{COUNT_LABELS[key]}はマイナスにできません。", "negative count")
    if isinstance(row["sent_on"], str):
        text = row["sent_on"].strip()
        row["sent_on"] = dt.datetime.strptime(text, "%Y%m%d").date() if text.isdigit() else dt.date.fromisoformat(text[:10])
    elif isinstance(row["sent_on"], dt.datetime):
        row["sent_on"] = row["sent_on"].date()
    row["withheld"] = ",".join(dict.fromkeys(withheld)) or None
    return row


def record_message_stats(store: Store, campaign_id: int | None, source: str,
                         stats: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> int:
    """Store per-message statistics of a campaign (e.g. fetched from LINE's insight API after a console send).

    Parameters
    ----------
    campaign_id : int or None
        The campaign the message belongs to (None: shown as an unlinked report).
    source : {"line", "line_api", "rmail", "report"}
    stats : mapping or iterable of mappings
        Our names (``message_name, sent_on, delivered, opens, clicks,
        unique_clicks``) or LINE's response (``overview`` with
        ``delivered / uniqueImpression / uniqueClick``, ``clicks[].click``,
        ``customAggregationUnit`` or ``requestId``).  A count given as None
        is a withheld value (never stored as 0); a count not given is unknown.

    Returns
    -------
    int
        Rows written.  A row with the same campaign, source, message name and
        date replaces the earlier one (a later fetch updates the numbers).
    """
    if source not in SOURCE_LABELS:
        raise InputError(f"配信レポートの種類「{source}」には対応していません。", f"unknown source {source}")
    items = [stats] if isinstance(stats, Mapping) else list(stats)
    rows = [_normalise(source, s) for s in items]
    now = clock.now()
    with store.transaction() as cur:
        base = int(cur.execute("SELECT coalesce(max(stats_id), 0) FROM message_stats").fetchone()[0])
        for i, r in enumerate(rows, start=1):
            cur.execute(
                "DELETE FROM message_stats WHERE campaign_id IS NOT DISTINCT FROM ? AND source = ? "
                "AND message_name IS NOT DISTINCT FROM ? AND sent_on IS NOT DISTINCT FROM ?",
                [campaign_id, source, r["message_name"], r["sent_on"]],
            )
            cur.execute(
                "INSERT INTO message_stats (stats_id, campaign_id, source, message_name, sent_on, delivered, opens, clicks, "
                "unique_clicks, withheld, import_id, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                [base + i, campaign_id, source, r["message_name"], r["sent_on"], r.get("delivered"), r.get("opens"),
                 r.get("clicks"), r.get("unique_clicks"), r["withheld"], now],
            )
    return len(rows)


def message_stats(store: Store, campaign_id: int | None = None, unlinked: bool = False) -> pd.DataFrame:
    """Stored reports: of one campaign, or (``unlinked=True``) those not yet linked to a campaign.

    Returns
    -------
    DataFrame
        ``stats_id, campaign_id, source, message_name, sent_on, delivered,
        opens, clicks, unique_clicks, withheld`` (newest first).
    """
    return store.df(
        "SELECT stats_id, campaign_id, source, message_name, sent_on, delivered, opens, clicks, unique_clicks, withheld "
        "FROM message_stats WHERE (? AND campaign_id IS NULL) OR (NOT ? AND (? IS NULL OR campaign_id = ?)) "
        "ORDER BY sent_on DESC NULLS LAST, stats_id DESC",
        [unlinked, unlinked, campaign_id, campaign_id],
    )


def link_report(store: Store, stats_id: int, campaign_id: int | None) -> None:
    """Attach an imported report row to a campaign (or detach it with None)."""
    with store.transaction() as cur:
        found = cur.execute("SELECT count(*) FROM message_stats WHERE stats_id = ?", [int(stats_id)]).fetchone()[0]
        if not found:
            raise InputError("その配信レポートは見つかりません。", "unknown stats id")
        cur.execute("UPDATE message_stats SET campaign_id = ? WHERE stats_id = ?",
                    [None if campaign_id is None else int(campaign_id), int(stats_id)])


def _cell(value: Any, withheld: bool) -> str:
    if withheld:
        return WITHHELD_LABEL
    if value is None or value != value:
        return "—"
    return f"{int(value):,}"


def _rate(num: Any, den: Any, approx: bool) -> str:
    if num is None or den is None or num != num or den != den or not den:
        return "—"
    return ("≈" if approx else "") + f"{num / den:.1%}"


def engagement_table(store: Store, campaign_id: int) -> pd.DataFrame:
    """The campaign's reports as the results page shows them (Japanese columns, text cells).

    Withheld values read :data:`WITHHELD_LABEL`; unknown ones ``—``; rates
    need both numbers and carry ``≈`` when the report withheld anything or
    comes from LINE (whose opens are approximate).
    """
    df = message_stats(store, campaign_id)
    df = df.astype(object).where(df.notna(), None)
    out = []
    for r in df.itertuples():
        hidden = set((r.withheld or "").split(",")) - {""}
        approx = bool(hidden) or r.source in ("line", "line_api")
        out.append({
            "配信元": SOURCE_LABELS.get(r.source, r.source),
            "メッセージ": r.message_name or "",
            "配信日": "" if r.sent_on is None or r.sent_on != r.sent_on else f"{pd.Timestamp(r.sent_on):%Y年%-m月%-d日}",
            **{COUNT_LABELS[k]: _cell(getattr(r, k), k in hidden) for k in COUNTS},
            "開封率": _rate(None if "opens" in hidden else r.opens, None if "delivered" in hidden else r.delivered, approx),
            "クリック率": _rate(None if "unique_clicks" in hidden else r.unique_clicks,
                              None if "delivered" in hidden else r.delivered, approx),
            "概算": "≈ 概算" if approx else "",
        })
    return pd.DataFrame(out, columns=["配信元", "メッセージ", "配信日", *COUNT_LABELS.values(), "開封率", "クリック率", "概算"])


def stats_version(store: Store) -> tuple:
    """Changes whenever a report is stored or linked (a cache key for the page)."""
    return store.fetchone("SELECT count(*), max(recorded_at), sum(coalesce(campaign_id, 0)) FROM message_stats")


# -- LINE statistics of the console's own sends (the worker's ``line_stats`` job) ------------------
STATS_DAYS = 30
"""LINE answers per-unit statistics for a window of at most 30 days (FACTS.md §9): fetched for 30 days after a send."""


def line_campaigns_to_fetch(ops: Any, now: dt.datetime) -> list[dict[str, Any]]:
    """Live campaigns with a LINE part sent in the last :data:`STATS_DAYS` days (``campaign_id``, ``name``, ``sent_on`` JST,
    ``sent``: the recipients LINE accepted — the LINE part of a LINE（なければメール） send)."""
    jst = dt.timezone(dt.timedelta(hours=9))
    today = now.astimezone(jst).date()
    out = []
    for r in ops.execute("SELECT campaign_id, name, prepared_at FROM send_campaigns WHERE channel IN ('line', 'line_or_email')"
                         " AND prepared_at IS NOT NULL ORDER BY campaign_id").fetchall():
        sent_on = dt.datetime.fromisoformat(r[2]).astimezone(jst).date()
        sent = int(ops.execute("SELECT count(*) FROM send_ledger_now WHERE campaign_id = ? AND channel = 'line' AND state = 'sent'",
                               [r[0]]).fetchone()[0])
        if sent and 0 <= (today - sent_on).days < STATS_DAYS:
            batches = ops.execute("SELECT kind, request_id FROM send_batches WHERE campaign_id = ? AND channel = 'line' AND state = 'sent'",
                                  [r[0]]).fetchall()
            out.append({"campaign_id": int(r[0]), "name": r[1], "sent_on": sent_on, "sent": sent,
                        "multicast": any(b[0] == "multicast" for b in batches),
                        "narrowcasts": [b[1] for b in batches if b[0] == "narrowcast" and b[1]]})
    return out


def _sum_withheld(parts: list[dict[str, Any]], key: str) -> int | None:
    """The sum of one statistic over a campaign's parts (disjoint recipients: each is in one batch); None — withheld —
    when LINE withheld it for any part (a partial sum would read as a lower number than the truth)."""
    values = [p.get(key) for p in parts]
    return None if not values or any(v is None for v in values) else int(sum(values))


def fetch_line_stats(store: Store, ops: Any, line: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    """Fetch LINE's per-campaign statistics (custom aggregation unit) of recent console sends into ``message_stats``.

    ``line`` is a :class:`crm_core.messaging.channels.line_bulk.LineBulk`.
    The delivered count is the console's own (recipients LINE accepted, from
    the send ledger); opens (unique impressions) and clicks (unique) are
    LINE's, and a value LINE withholds (under 20) stays withheld, never 0.
    A later fetch replaces the earlier numbers of the same campaign.

    Returns
    -------
    dict
        ``fetched`` (campaign ids), ``failed`` ({id: Japanese reason}), ``summary`` (Japanese).
    """
    from crm_core.messaging.channels.line_bulk import aggregation_unit

    now = now or clock.now_utc()
    jst = dt.timezone(dt.timedelta(hours=9))
    today = now.astimezone(jst).date()
    known = {int(r[0]) for r in store.fetchall("SELECT campaign_id FROM campaigns")} if store.has_table("campaigns") else set()
    fetched: list[int] = []
    failed: dict[int, str] = {}
    for c in line_campaigns_to_fetch(ops, now):
        if c["campaign_id"] not in known:
            continue  # the campaign's record was deleted on the results page
        unit = aggregation_unit(c["campaign_id"])
        last = min(today, c["sent_on"] + dt.timedelta(days=STATS_DAYS - 1))
        try:
            # multicasts: the campaign's aggregation unit; narrowcasts (no unit): each request id (FACTS.md §9)
            parts = [line.unit_statistics(unit, f"{c['sent_on']:%Y%m%d}", f"{last:%Y%m%d}")] if c.get("multicast", True) else []
            parts += [line.request_statistics(rid) for rid in c.get("narrowcasts", [])]
        except Exception as exc:  # noqa: BLE001 - one campaign's failure must not stop the others; reported in the summary
            failed[c["campaign_id"]] = str(getattr(exc, "reason", "") or type(exc).__name__)[:200]
            continue
        record_message_stats(store, c["campaign_id"], "line_api", {
            "message_name": c["name"], "sent_on": c["sent_on"],
            "overview": {"delivered": c["sent"], "uniqueImpression": _sum_withheld(parts, "uniqueImpression"),
                         "uniqueClick": _sum_withheld(parts, "uniqueClick")}})
        fetched.append(c["campaign_id"])
    summary = (f"LINEの配信統計を{len(fetched)}件の配信について取得しました。" if fetched else "統計を取得するLINEの配信（30日以内）はありません。")
    if failed:
        summary += f" {len(failed)}件は取得できませんでした（次回もう一度取得します）。"
    return {"fetched": fetched, "failed": failed, "summary": summary}
