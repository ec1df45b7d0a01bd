"""Who a channel reaches: the one channel table, and why a channel reaches nobody.

Every stage that asks "who does this channel reach" reads :data:`CHANNELS`
(the planner's recipient counts, campaign freezing, live sends through
:func:`crm_core.results.campaigns.audience_ids`, the segment builder's
「メールで届く」/「LINEで届く」 counts, and the cost table of
:mod:`crm_core.planning.costs`).  Each :class:`Channel` says, as a boolean SQL
predicate over ``customer_model AS cm``, who it reaches (FACTS.md §1, §5, §9):

- LINE: customers with a LINE user id (order exports carry none).
- R-Mail: Rakuten buyers who accept shop mail — Rakuten sends R-Mail only to
  its buyers who opted in; the shop never sees a real address.
- Shopify Email: Shopify customers who accept marketing.
- own e-mail (メール): customers who allowed e-mail and have an address, never
  Rakuten buyers: their addresses are Rakuten relay addresses
  (``…@pc.fw.rakuten.ne.jp``), mailable only through Rakuten, and marketing
  to them outside Rakuten's tools needs separate consent.

:data:`MAIL_LIST` is the segment builder's mailing list (its 「メールで届く」
count and the opted-in CSV export): every customer who allowed e-mail and has
an address, whichever tool then sends (own mail, R-Mail, Shopify Email).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from crm_core.audience.channels import CHANNELS, HAS_ADDRESS, MAIL_LIST, Channel, channel, labels, reach_sql
from crm_core.db import Store

__all__ = ["CHANNELS", "MAIL_LIST", "REACH_FIXES", "Channel", "ReachNote", "channel", "explain_reach", "labels",
           "reach_sql"]

REACH_FIXES = {
    "import": "「データ取込」で取り込む",
    "segment": "「セグメント」で条件を見直す",
    "channel": "配信チャネルを変える",
}
"""What a :class:`ReachNote` suggests (pages turn the key into a link)."""


@dataclass(frozen=True)
class ReachNote:
    """How many customers of an audience a channel reaches, and why nobody when it is 0.

    Attributes
    ----------
    channel : str
        A key of :data:`CHANNELS`, or ``"mail_list"`` (:data:`MAIL_LIST`).
    customers : int
        Customers in the segment (before the channel's reach).
    reachable : int
        Of those, the customers the channel reaches.
    reason : str
        Japanese: why ``reachable`` is 0 and what to do ("" when it is not 0).
    fix : str or None
        A key of :data:`REACH_FIXES` (where the fix is), None when nothing to fix.
    """

    channel: str
    customers: int
    reachable: int
    reason: str = ""
    fix: str | None = None


def _opt_in_known(store: Store) -> bool:
    """True when some imported order or contact row carried an e-mail permission (a メルマガ / Accepts Marketing column)."""
    if store.has_table("orders") and store.scalar("SELECT count(*) FROM orders WHERE email_opt_in IS NOT NULL"):
        return True
    return bool(store.has_table("contacts")
                and store.scalar("SELECT count(*) FROM contacts WHERE email_opt_in IS NOT NULL"))


def explain_reach(store: Store, channel_key: str, segment: Any = None) -> ReachNote:
    """Reach of a channel in a segment, with the reason in Japanese when it is 0.

    The one place that explains a zero on every page (segment builder, planner,
    cost tab, campaign recording).  Reasons, in order: nobody matches the
    segment; (LINE) no customer has a LINE user id — order exports carry none, a
    LINE friend list or an ID link list must be imported; (e-mail) no addresses;
    no imported file had an e-mail permission column; nobody allowed e-mail;
    (own e-mail) the opted-in customers are all Rakuten buyers, whose addresses
    are relay addresses; (R-Mail / Shopify Email) nobody bought on that platform.

    Parameters
    ----------
    channel_key : str
        A key of :data:`CHANNELS` or ``"mail_list"``.
    segment : optional
        A segment reference (:func:`crm_core.audience.references.resolve`; None: every customer).
    """
    from crm_core.audience import references, segments

    ch = channel(channel_key)
    if not store.has_table("customer_model"):
        return ReachNote(ch.key, 0, 0, "顧客データ（顧客モデル）がまだありません。注文CSVを取り込むと、届くお客様を数えられます。",
                         "import")
    rule = references.resolve(store, segment)
    compiled = segments.compile_rule(store, rule if rule is not None else {"all": []}, prefix="r")
    # the two counts first: the five that explain a zero are read only when nobody is reached
    n, reachable = segments._run(store, "SELECT count(*), count(*) FILTER (WHERE " + ch.reach + ")"  # noqa: S608
                                 " FROM customer_model AS cm WHERE " + compiled.where, compiled.params, compiled.rule)[0]
    if reachable:
        return ReachNote(ch.key, int(n), int(reachable))
    mail = MAIL_LIST.reach
    sql = (
        "SELECT count(*), count(*) FILTER (WHERE " + ch.reach + "), "  # noqa: S608 - fixed fragments, values bound
        "count(*) FILTER (WHERE " + CHANNELS["line"].reach + "), count(*) FILTER (WHERE " + HAS_ADDRESS + "), "
        "count(*) FILTER (WHERE " + mail + "), "
        "count(*) FILTER (WHERE " + mail + " AND cm.first_source = 'rakuten'), "
        "count(*) FILTER (WHERE " + mail + " AND cm.first_source = 'shopify') "
        "FROM customer_model AS cm WHERE " + compiled.where
    )
    n, reachable, line, with_email, opted, opted_rakuten, opted_shopify = segments._run(
        store, sql, compiled.params, compiled.rule)[0]
    note = ReachNote(ch.key, int(n), int(reachable))
    if reachable:
        return note
    name = ch.label
    if not n:
        return replace(note, reason="この条件に当てはまるお客様がいません。条件をゆるめてください。", fix="segment")
    if ch.key == "line":
        return replace(note, fix="import", reason=(
            "LINEユーザーIDが分かっているお客様がいません。楽天やShopifyの注文CSVにはLINEユーザーIDが含まれないため、"
            "LINE友だちの一覧（LINEユーザーIDと、メールアドレスまたは電話番号の列があるCSV）や、ID連携のリストを"
            "「データ取込」で顧客リストとして取り込むと、LINEで届くお客様が数えられます。"))
    if not with_email:
        return replace(note, fix="import", reason=(
            f"メールアドレスのあるお客様がいないため、{name}では届きません。メールアドレスの列がある注文CSVや顧客リストを取り込んでください。"))
    if not opted:
        if not _opt_in_known(store):
            return replace(note, fix="import", reason=(
                "取り込んだファイルにメール配信許可（メルマガ希望・Accepts Marketing）の列がないため、"
                "広告メールを送ってよいお客様が分かりません（特定電子メール法では事前の同意が必要です）。"
                "Shopifyの「顧客をエクスポート」のCSVや、メルマガ許諾の列がある顧客リストを「データ取込」で取り込んでください。"))
        return replace(note, reason=(
            "この条件のお客様は、全員がメール配信を許可していません（取り込んだメール配信許可の列で「許可しない」）。"
            "許可していないお客様には広告メールを送れません。"))
    if ch.key == "email":
        return replace(note, fix="channel", reason=(
            f"メール配信を許可したお客様{opted:,}人は全員、楽天市場の購入者です。楽天の注文のメールアドレスは転送用の"
            "アドレスのため、自社のメールでは届きません。楽天のお客様にはR-Mail（楽天メルマガ）で配信してください。"))
    if ch.key == "rmail" and not opted_rakuten:
        return replace(note, fix="channel", reason=(
            "R-Mailは楽天市場で購入したお客様にだけ届きますが、この条件でメール配信を許可したお客様に楽天の購入者がいません。"
            "自社のメールかShopify Emailで配信してください。"))
    if ch.key == "shopify_email" and not opted_shopify:
        return replace(note, fix="channel", reason=(
            "Shopify EmailはShopifyで購入したお客様にだけ届きますが、この条件でメール配信を許可したお客様にShopifyの購入者がいません。"
            "楽天のお客様にはR-Mail、そのほかは自社のメールで配信してください。"))
    return replace(note, reason=f"この条件のお客様には{name}で届く方がいません。")
