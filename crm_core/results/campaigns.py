"""Campaign records: recipients frozen at send, holdout and A/B assignment, result imports.

Tables (created by a migration in :mod:`crm_core.db`):

``campaigns``
    ``campaign_id`` (integer), ``name``, ``channel`` ('line' | 'email' |
    'rmail'), ``rule`` (the segment rule, JSON; NULL when recipients were
    given as a list), ``template``, ``coupon_code``, ``sent_at`` (JST),
    ``attribution_days`` (default 7), ``holdout_share`` (default 0.1),
    ``variants`` (JSON list, e.g. ``["A", "B"]``), ``line_plan`` (plan key at
    freeze time, LINE only), ``cost_per_message`` (yen; NULL = the channel's
    rate, see :func:`crm_core.results.attribution.message_cost`), ``fixed_cost`` (yen, e.g.
    design work), ``created_at``, ``marked_only`` (True for sends made outside
    the console that were only "marked as sent", e.g. R-Mail).
``campaign_recipients``
    ``campaign_id, customer_id, variant`` (NULL for the holdout), ``holdout``.
``campaign_events``
    ``campaign_id, customer_id, delivered, opened, clicked, file_name,
    imported_at``: per-recipient delivery results imported from the LINE or
    e-mail tool (one row per recipient, the latest import wins).

Assignment (:func:`assign`) is a pure function of ``(campaign_id,
customer_id)``: SHA-256 of ``"<campaign_id>|<customer_id>"``; the first 8
bytes as a uniform number in [0, 1) decide the holdout (``u < share``), the
next 8 bytes pick the variant among the non-holdout recipients.  The same
inputs always give the same groups, and the frozen rows are never updated.

Global holdout (:func:`in_global_holdout`): a persistent share of all
customers (setting ``global_holdout``, default off) that no campaign ever
reaches.  Membership is SHA-256 of ``"<GLOBAL_SALT>|<customer_id>"`` below
the share: stable for every customer, independent of any campaign's own
split, and raising the share only adds members.  :func:`freeze_campaign`
leaves them out of every campaign's recipients (before the campaign's own
holdout is drawn), and :func:`crm_core.results.programme_lift` compares
them with everyone else month by month.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crm_core import clock
from crm_core.audience import reach as reach_table
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.messaging import choice

CHANNELS = reach_table.labels(("line", "email", "rmail"))
"""The channels a campaign is recorded for (labels from the channel table, :mod:`crm_core.audience.reach`)."""
CHANNEL_LABELS = {**CHANNELS, "line_or_email": choice.LABELS["line_or_email"]}
"""Labels of every campaign's channel, including a live send's 「LINE（なければメール）」 (channel chosen per customer)."""
DEFAULT_ATTRIBUTION_DAYS = 7
DEFAULT_HOLDOUT = 0.1
MAX_VARIANTS = 5
RESULT_FIELDS = {
    "customer_id": "顧客ID",
    "email": "メールアドレス",
    "line_user_id": "LINEユーザーID",
    "delivered": "配信成功",
    "opened": "開封",
    "clicked": "クリック",
}
"""Fields a per-recipient result file can be mapped to (one id field is needed)."""
ID_FIELDS = ("customer_id", "email", "line_user_id")
_TRUE = {"1", "yes", "true", "y", "t", "はい", "○", "◯", "済", "成功", "delivered", "opened", "clicked", "open", "click"}



# -- assignment ---------------------------------------------------------------------------
def _uniforms(campaign_id: int | str, customer_id: str) -> tuple[float, float]:
    digest = hashlib.sha256(f"{campaign_id}|{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64, int.from_bytes(digest[8:16], "big") / 2**64


def assign(campaign_id: int | str, customer_id: str, holdout_share: float, variants: Sequence[str]) -> tuple[str | None, bool]:
    """The group of one customer in one campaign: ``(variant or None, holdout)``.

    Deterministic: a hash of ``(campaign_id, customer_id)``; see the module docstring.
    """
    u_holdout, u_variant = _uniforms(campaign_id, customer_id)
    if u_holdout < holdout_share:
        return None, True
    names = list(variants) or ["A"]
    return names[min(int(u_variant * len(names)), len(names) - 1)], False


# -- global holdout ---------------------------------------------------------------------------
GLOBAL_HOLDOUT_KEY = "global_holdout"
GLOBAL_SALT = "crm-console-global-holdout-v1"
MAX_GLOBAL_HOLDOUT = 0.2


def _global_uniform(customer_id: str) -> float:
    digest = hashlib.sha256(f"{GLOBAL_SALT}|{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# The same membership in SQL (``{col}``: the customer id column; parameters :func:`global_holdout_params`):
# the first 8 bytes of the SHA-256 as an unsigned integer, scaled to [0, 1) exactly as Python does.
GLOBAL_HOLDOUT_SQL = ("($gh_share > 0 AND CAST(CAST('0x' || left(sha256($gh_salt || '|' || {col}), 16) AS UBIGINT) AS DOUBLE)"
                      " / 18446744073709551616.0 < $gh_share)")


def global_holdout_params(share: float) -> dict[str, Any]:
    return {"gh_share": float(share), "gh_salt": GLOBAL_SALT}


def in_global_holdout(customer_id: str, share: float) -> bool:
    """True when the customer belongs to a global holdout of this share (stable; see the module docstring)."""
    return share > 0 and _global_uniform(str(customer_id)) < share


def global_holdout_setting(store: Store) -> dict[str, Any]:
    """``{"share": float (0 = off), "since": "YYYY-MM-DD" or None}`` (when the current share took effect)."""
    value = store.get_setting(GLOBAL_HOLDOUT_KEY) or {}
    share = float(value.get("share") or 0)
    return {"share": share, "since": value.get("since") if share > 0 else None}


def set_global_holdout(store: Store, share: float, today: dt.date | None = None) -> dict[str, Any]:
    """Turn the global holdout on (``share`` > 0), change it, or off (0).

    A changed share starts a new comparison period (``since`` = today): customers
    who join the holdout were reachable before.
    """
    share = round(float(share), 4)
    if not 0 <= share <= MAX_GLOBAL_HOLDOUT:
        raise InputError(f"全体の比較グループの割合は0〜{MAX_GLOBAL_HOLDOUT:.0%}にしてください。", "global holdout out of range")
    current = global_holdout_setting(store)
    if share == current["share"]:
        return current
    value = {"share": share, "since": (today or clock.today()).isoformat() if share > 0 else None}
    store.set_setting(GLOBAL_HOLDOUT_KEY, value)
    return value


def split_global_holdout(store: Store, ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """``(reachable ids, ids held out globally)`` under the current setting."""
    share = global_holdout_setting(store)["share"]
    kept, held = [], []
    for cid in ids:
        (held if in_global_holdout(cid, share) else kept).append(cid)
    return kept, held


# -- validation ---------------------------------------------------------------------------
def _check(name: str, channel: str, holdout_share: float, attribution_days: int, variants: Sequence[str],
           channels: Any = CHANNELS) -> list[str]:
    if not str(name or "").strip():
        raise InputError("施策名を入力してください。", "empty name")
    if channel not in channels:
        raise InputError("チャネルは LINE・メール・R-Mail から選んでください。", f"unknown channel {channel!r}")
    if not 0 <= float(holdout_share) <= 0.5:
        raise InputError("送らないグループ（比較用）の割合は0〜50%にしてください。", "holdout share out of range")
    if not 1 <= int(attribution_days) <= 60:
        raise InputError("効果を数える期間は1〜60日にしてください。", "attribution days out of range")
    names = [str(v).strip() for v in variants if str(v).strip()] or ["A"]
    if len(set(names)) != len(names) or len(names) > MAX_VARIANTS:
        raise InputError(f"パターン名は重複なく{MAX_VARIANTS}個までにしてください（例: A,B）。", "bad variants")
    return names


def parse_datetime(value: str | dt.datetime | dt.date) -> dt.datetime:
    """A JST send time from ``2026-11-20 12:00`` / ``2026/11/20 12:00`` / a date."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    text = str(value).strip().replace("/", "-").replace("T", " ")
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise InputError(f"送信日時「{str(value)[:30]}」を読めません（例: 2026-11-20 12:00）。", "bad datetime")


REACH = {
    "channel": "チャネルで届くお客様だけ（LINE: LINEユーザーIDあり／メール: 配信許可とアドレスあり）",
    "all": "セグメントに当てはまるお客様全員（コンソールの外で送った配信）",
}
"""Who of a segment becomes a recipient: those the console can reach on the channel, or everyone.

``freeze_campaign(reach="auto")`` uses ``channel`` for sends the console makes
and ``all`` for sends made elsewhere (``marked_only``, R-Mail): the console's
reach rules describe what the console can send, not what RMS or another tool did."""
_REACH_WORDS = {
    "line": ("LINEユーザーIDが登録されている",
             "LINE友だちリスト（LINEユーザーIDの一覧）を取り込むと、LINEで届くお客様が分かります。"),
    "email": ("メール配信を許可していてメールアドレスがある（楽天市場の購入者を除く）",
              "メール配信の許可（メルマガ希望など）の列がある顧客リストを取り込んでください。"
              "楽天の注文のメールアドレスは転送用のため、コンソールからは送れません。"),
    "rmail": ("楽天市場で購入してメール配信を許可している",
              "R-Mailの送信先は楽天が管理しています。RMSから送った配信なら、配信対象を「セグメントに当てはまるお客様全員」にしてください。"),
}


def resolve_reach(reach: str, channel: str, marked_only: bool) -> str:
    """``channel`` or ``all`` for a freeze (``auto``: ``all`` for sends made outside the console)."""
    if reach == "auto":
        return "all" if marked_only or channel == "rmail" else "channel"
    if reach not in REACH:
        raise InputError("配信対象の決め方は「チャネルで届くお客様だけ」か「セグメントのお客様全員」から選んでください。",
                         f"unknown reach {reach!r}")
    return reach


def send_day_as_of(store: Store, sent: dt.datetime) -> dt.date | None:
    """The day a backdated send's segment is evaluated on, or None when the stored model can be used.

    When the store holds orders placed at or after the send time, the send is
    recorded after the fact: its segment is evaluated on the model as of the
    last full day before the send, so orders placed after the send cannot
    decide who was sent to (nor add customers who first bought later).
    Otherwise (a send recorded as it happens) the stored model is used.
    """
    later = store.scalar("SELECT count(*) FROM orders WHERE ordered_at >= ?", [sent])
    return sent.date() - dt.timedelta(days=1) if later else None


def _recipient_counts(store: Store, rule: Any, channel: str, reach: str) -> tuple[list[str], dict[str, Any]]:
    """Recipient ids and the count after each filter: ``customers``, ``segment``, ``reachable``."""
    from crm_core.audience import segments

    c = segments.compile_rule(store, rule)
    where = "(" + c.where + ")"
    if reach == "channel":
        where += " AND " + reach_table.reach_sql(channel)
    sql = "SELECT cm.customer_id FROM customer_model AS cm WHERE " + where + " ORDER BY 1"  # noqa: S608 - compiled rule, fixed fragments
    ids = [r[0] for r in segments._run(store, sql, c.params, c.rule)]
    counts: dict[str, Any] = {"description": c.description, "reachable": len(ids)}
    if not ids:
        counts["customers"] = int(store.scalar("SELECT count(*) FROM customer_model") or 0)
        counts["segment"] = segments.count(store, rule)
    return ids, counts


def _no_recipients(channel: str, reach: str, counts: dict[str, Any], as_of: dt.date | None, sent: dt.datetime) -> InputError:
    """「配信対象のお客様が0人です」 with the filter that removed everyone and what to do."""
    head = "配信対象のお客様が0人です。"
    when = f"{sent.year}年{sent.month}月{sent.day}日 {sent:%H:%M}"
    if not counts.get("customers"):
        if as_of is not None:
            return InputError(
                head + f"送信日時（{when}）の前日までに購入したお客様がいません。送信日時を確認してください。",
                "no customers before the send", )
        return InputError(head + "顧客データがありません。注文データを取り込んでください。", "no customers")
    if not counts.get("segment"):
        at = f"送信日の前日（{as_of.year}年{as_of.month}月{as_of.day}日）時点で、" if as_of is not None else ""
        return InputError(
            head + f"{at}セグメントの条件（{counts['description']}）に当てはまるお客様がいません"
            f"（顧客{counts['customers']:,}人中）。条件を見直してください。",
            "segment empty",
        )
    who, fix = _REACH_WORDS[channel]
    if counts.get("why"):  # the one explanation of reach (audience.reach.explain_reach); R-Mail keeps its recording advice
        fix = counts["why"] + (fix if channel == "rmail" else "")
    return InputError(
        head + f"セグメントに当てはまる{counts['segment']:,}人のうち、{who}お客様がいません（{CHANNELS[channel]}で届く人の絞り込みで0人）。"
        + fix
        + "コンソールの外で送った配信を記録するときは「送信済みとして記録」にすると、この絞り込みをしません。",
        f"reach filter for {channel} removed all {counts['segment']} customers",
    )


def freeze_campaign(
    store: Store,
    name: str,
    channel: str,
    sent_at: str | dt.datetime | dt.date,
    *,
    rule: Any = None,
    customer_ids: Iterable[str] | None = None,
    template: str = "",
    coupon_code: str = "",
    attribution_days: int = DEFAULT_ATTRIBUTION_DAYS,
    holdout_share: float = DEFAULT_HOLDOUT,
    variants: Sequence[str] = ("A",),
    line_plan: str | None = None,
    cost_per_message: float | None = None,
    fixed_cost: float = 0.0,
    marked_only: bool = False,
    campaign_id: int | None = None,
    now: dt.datetime | None = None,
    reach: str = "auto",
) -> int:
    """Freeze a campaign's recipients and groups at send time; return the campaign id.

    Parameters
    ----------
    rule : dict, optional
        A segment rule; recipients are the matching customers of
        ``customer_model`` (reachable on the channel, see ``reach``).  A send
        recorded after the fact (orders from the send day or later are in
        the store) is evaluated on the model as of the day before the send
        (:func:`send_day_as_of`, :func:`crm_core.model.model_as_of`): customers
        who first bought after it are not recipients, and the stored model
        is not replaced.
    customer_ids : iterable of str, optional
        The recipients as a list instead (sends made outside the console).
        Either way, customers in the global holdout are left out.
    holdout_share : float
        Share of recipients kept as the holdout (not sent; 0 for none).
    variants : sequence of str
        A/B variant names split among the non-holdout recipients.
    reach : {"auto", "channel", "all"}
        ``channel``: only customers the console can reach on the channel
        (LINE: with a LINE user id; e-mail: opted in with an address;
        R-Mail: opted in); ``all``: every customer of the segment; ``auto``
        (default): ``all`` for sends made outside the console (``marked_only``
        or R-Mail, which RMS sends to its own members), else ``channel``.

    Raises
    ------
    InputError
        Bad inputs, no recipients (saying which filter removed everyone), or
        a campaign id that already exists.
    """
    # a live send's list of recipients may mix channels (line_or_email); a segment is reached on one channel
    names = _check(name, channel, holdout_share, attribution_days, variants,
                   CHANNEL_LABELS if customer_ids is not None else CHANNELS)
    sent = parse_datetime(sent_at)
    if customer_ids is None:
        if rule is None:
            raise InputError("配信対象（セグメント）を選んでください。", "no rule and no ids")
        how = resolve_reach(reach, channel, marked_only)
        as_of = send_day_as_of(store, sent)
        if as_of is None:
            ids, counts = _recipient_counts(store, rule, channel, how)
        else:
            from crm_core import model

            with model.model_as_of(store, as_of):
                ids, counts = _recipient_counts(store, rule, channel, how)
        if not ids:
            if counts.get("segment"):  # the channel's reach removed everyone: the one explanation
                counts["why"] = reach_table.explain_reach(store, channel, rule).reason
            raise _no_recipients(channel, how, counts, as_of, sent)
    else:
        ids = sorted({str(c) for c in customer_ids if c})
    if not ids:
        raise InputError("配信対象のお客様が0人です。お客様の一覧が空です。", "no recipients")
    ids, held = split_global_holdout(store, ids)
    if not ids:
        raise InputError("配信対象のお客様が全員、全体の比較グループ（どの施策も送らないお客様）に入っています。", "all globally held out")
    if line_plan is None and channel in ("line", "line_or_email"):
        from crm_core.planning.costs import line_plan_setting

        line_plan = line_plan_setting(store)
    if campaign_id is None:
        campaign_id = _recorded_id(store)
    with store.transaction() as cur:
        if campaign_id is None:
            campaign_id = int(cur.execute("SELECT coalesce(max(campaign_id), 0) + 1 FROM campaigns").fetchone()[0])
        elif cur.execute("SELECT count(*) FROM campaigns WHERE campaign_id = ?", [campaign_id]).fetchone()[0]:
            raise InputError(f"施策番号 {campaign_id} はすでにあります。", "duplicate campaign id")
        cur.execute(
            "INSERT INTO campaigns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [campaign_id, name.strip(), channel, None if rule is None else json.dumps(rule, ensure_ascii=False),
             template, coupon_code.strip() or None, sent, int(attribution_days), float(holdout_share),
             json.dumps(names, ensure_ascii=False), line_plan, cost_per_message, float(fixed_cost or 0),
             bool(marked_only), now or clock.now()],
        )
        rows = [(campaign_id, cid, *assign(campaign_id, cid, holdout_share, names)) for cid in ids]
        frame = pd.DataFrame(rows, columns=["campaign_id", "customer_id", "variant", "holdout"])
        cur.register("frozen_recipients", frame)
        cur.execute("INSERT INTO campaign_recipients SELECT campaign_id, customer_id, variant, holdout FROM frozen_recipients")
        cur.unregister("frozen_recipients")
    return campaign_id


# -- reading ----------------------------------------------------------------------------
def next_campaign_id(store: Store, ops: Any, kind: str, now: dt.datetime | None = None) -> int:
    """The one campaign-id allocator: live campaigns, scenario batches and recorded campaigns
    (:func:`crm_core.messaging.ledger.next_campaign_id` above every campaign of the DuckDB store)."""
    from crm_core.messaging import ledger

    floor = int(store.scalar("SELECT coalesce(max(campaign_id), 0) FROM campaigns") or 0) if store.has_table("campaigns") else 0
    return ledger.next_campaign_id(ops, kind, floor=floor, now=now)


def _recorded_id(store: Store) -> int | None:
    """A recorded campaign's id from the allocator when the shop has an operations store (where live campaigns and
    scenario batches take theirs), else None (the next id of the DuckDB store is then free everywhere)."""
    from contextlib import closing

    from crm_core import opsdb
    from crm_core.messaging import ledger  # noqa: F401 - registers its tables before the connection below migrates

    if not store.path or str(store.path) == ":memory:":
        return None
    path = opsdb.ops_path(store.path)
    if not Path(path).exists():
        return None
    with closing(opsdb.connect(path)) as ops:
        return next_campaign_id(store, ops, "recorded")


def get_campaign(store: Store, campaign_id: int) -> dict[str, Any]:
    """One campaign as a dict (``variants`` and ``rule`` decoded)."""
    df = store.df("SELECT * FROM campaigns WHERE campaign_id = ?", [int(campaign_id)])
    if df.empty:
        raise InputError(f"施策番号 {campaign_id} は見つかりません。", "unknown campaign")
    row = df.iloc[0].to_dict()
    row["variants"] = json.loads(row["variants"]) if row["variants"] else ["A"]
    row["rule"] = json.loads(row["rule"]) if row["rule"] else None
    row["sent_at"] = pd.Timestamp(row["sent_at"]).to_pydatetime()
    return row


def list_campaigns(store: Store) -> pd.DataFrame:
    """All campaigns, newest send first, with recipient and holdout counts."""
    return store.df(
        """SELECT c.campaign_id, c.name, c.channel, c.sent_at, c.attribution_days, c.holdout_share, c.coupon_code,
                  c.variants, c.marked_only,
                  count(r.customer_id) AS recipients, count(*) FILTER (WHERE r.holdout) AS holdout
           FROM campaigns c LEFT JOIN campaign_recipients r USING (campaign_id)
           GROUP BY ALL ORDER BY c.sent_at DESC, c.campaign_id DESC"""
    )


def recipients(store: Store, campaign_id: int) -> pd.DataFrame:
    """Frozen recipients: ``customer_id, variant, holdout``."""
    return store.df(
        "SELECT customer_id, variant, holdout FROM campaign_recipients WHERE campaign_id = ? ORDER BY customer_id",
        [int(campaign_id)],
    )


def audience_ids(store: Store, rule: Any, channel: str) -> dict[str, list[str]]:
    """Who a campaign with this rule and channel would reach: ``{"ids": [...], "global_holdout": [...]}``."""
    if channel not in CHANNELS:
        raise InputError("チャネルは LINE・メール・R-Mail から選んでください。", f"unknown channel {channel!r}")
    kept, held = split_global_holdout(store, _recipient_counts(store, rule, channel, "channel")[0])
    return {"ids": kept, "global_holdout": held}


# The audience's purchases per (customer, window) pair; the audience is the relation ``aud`` (``customer_id``).
_BASE_RATES_SQL = """
    last AS (SELECT max(ordered_at) + INTERVAL 1 SECOND AS end_at FROM orders),
    pairs AS (
        SELECT o.customer_id, floor(epoch(l.end_at - o.ordered_at) / (86400 * $days)) AS w,
               sum(CAST(coalesce(o.total_amount, 0) AS DOUBLE)) AS revenue
        FROM orders o CROSS JOIN last l
        WHERE o.customer_id IN (SELECT customer_id FROM aud) AND NOT coalesce(o.cancelled, FALSE)
          AND o.ordered_at >= l.end_at - to_days($days * $k) AND o.ordered_at < l.end_at
        GROUP BY ALL)
    SELECT count(*) FILTER (WHERE revenue > 0), coalesce(sum(revenue), 0), coalesce(sum(revenue * revenue), 0) FROM pairs"""


def _windows(days: int, lookback_days: int) -> tuple[int, int]:
    days = max(int(days), 1)
    return days, max(int(lookback_days) // days, 1)


def _rates(customers: int, days: int, k: int, row: Sequence[Any] | None) -> dict[str, float]:
    out = {"conversion": math.nan, "mean": math.nan, "sd": math.nan, "windows": k, "customers": customers}
    if not customers or row is None:
        return out
    pairs = customers * k
    buyers, total, total_sq = int(row[0]), float(row[1]), float(row[2])
    mean = total / pairs
    var = max((total_sq - pairs * mean * mean) / (pairs - 1), 0.0) if pairs > 1 else math.nan
    out.update(conversion=buyers / pairs, mean=mean, sd=math.sqrt(var) if not math.isnan(var) else math.nan)
    return out


def audience_base_rates(store: Store, customer_ids: Sequence[str], days: int = DEFAULT_ATTRIBUTION_DAYS,
                        lookback_days: int = 364) -> dict[str, float]:
    """The audience's own purchase behaviour per ``days``-day window over the last ``lookback_days``.

    The windows end at the latest order in the store; each (customer,
    window) pair is one observation, as a recipient's attribution window is.

    Returns
    -------
    dict
        ``conversion`` (share of pairs with a purchase), ``mean`` and ``sd``
        of revenue per pair (zeros included), ``windows``, ``customers``.
    """
    ids = sorted({str(c) for c in customer_ids if c})
    days, k = _windows(days, lookback_days)
    row = None
    if ids:
        frame = pd.DataFrame({"customer_id": ids})
        with store.transaction() as cur:
            cur.register("audience_frame", frame)
            row = cur.execute("WITH aud AS (SELECT customer_id FROM audience_frame), " + _BASE_RATES_SQL,  # noqa: S608
                              {"days": days, "k": k}).fetchall()[0]
            cur.unregister("audience_frame")
    return _rates(len(ids), days, k, row)


def detectable_effect(store: Store, customer_ids: Sequence[str], holdout_share: float,
                      days: int = DEFAULT_ATTRIBUTION_DAYS) -> dict[str, Any]:
    """What a test of these recipients with this holdout share can detect (:func:`crm_core.experiments.detectable_effect`)."""
    from crm_core.results import experiments

    base = audience_base_rates(store, customer_ids, days)
    out = experiments.detectable_effect(len(customer_ids), float(holdout_share), base["conversion"], base["mean"], base["sd"])
    out["base"] = base
    return out


def audience_purchases(store: Store, rule: Any, channel: str, lookback_days: int = 364) -> dict[str, Any]:
    """The audience :func:`audience_ids` gives, as counts, with its purchases of the last ``lookback_days``.

    The rule, reach and global holdout are applied in DuckDB; no list of (possibly millions of) ids
    leaves it.  What leaves is one row per purchase in the window, as numbers: ``customer`` (a dense
    index), ``before`` (seconds before the end of the windows, as :func:`audience_base_rates` counts
    them), ``revenue``; plus ``n`` (the audience) and ``global_holdout`` (left out by the global
    holdout).  :func:`outlook` turns it into the detectable effect for any holdout share and window
    length up to ``lookback_days``, without another query (a page keeps it per data version).
    """
    from crm_core.audience import segments

    if channel not in CHANNELS:
        raise InputError("チャネルは LINE・メール・R-Mail から選んでください。", f"unknown channel {channel!r}")
    c = segments.compile_rule(store, rule)
    share = global_holdout_setting(store)["share"]
    held = GLOBAL_HOLDOUT_SQL.format(col="cm.customer_id") if share > 0 else "FALSE"  # no hashing when it is off
    seg = ("WITH seg AS (SELECT cm.customer_id, " + held + " AS held FROM customer_model AS cm WHERE ("  # noqa: S608
           + c.where + ") AND " + reach_table.reach_sql(channel) + "), aud AS (SELECT customer_id FROM seg WHERE NOT held)")
    params = {**c.params, **(global_holdout_params(share) if share > 0 else {})}
    counts = seg + " SELECT count(*) FILTER (WHERE NOT held), count(*) FILTER (WHERE held) FROM seg"  # noqa: S608
    n, global_held = segments._run(store, counts, params, c.rule)[0]
    out: dict[str, Any] = {"n": int(n), "global_holdout": int(global_held), "lookback_days": int(lookback_days),
                           "customer": np.zeros(0, np.int64), "before": np.zeros(0), "revenue": np.zeros(0)}
    if not n:
        return out
    rows = store.execute(
        seg + """, last AS (SELECT max(ordered_at) + INTERVAL 1 SECOND AS end_at FROM orders),
        bought AS (
            SELECT o.customer_id, epoch(l.end_at - o.ordered_at) AS before,
                   CAST(coalesce(o.total_amount, 0) AS DOUBLE) AS revenue
            FROM orders o CROSS JOIN last l
            WHERE o.customer_id IN (SELECT customer_id FROM aud) AND NOT coalesce(o.cancelled, FALSE)
              AND o.ordered_at >= l.end_at - to_days($lookback) AND o.ordered_at < l.end_at)
        SELECT dense_rank() OVER (ORDER BY customer_id) AS customer, before, revenue FROM bought""",  # noqa: S608
        {**params, "lookback": int(lookback_days)},
    ).fetchnumpy()
    out.update(customer=np.asarray(rows["customer"], np.int64), before=np.asarray(rows["before"], float),
               revenue=np.asarray(rows["revenue"], float))
    return out


def outlook(purchases: dict[str, Any], holdout_share: float, days: int = DEFAULT_ATTRIBUTION_DAYS) -> dict[str, Any]:
    """:func:`detectable_effect` of the audience of :func:`audience_purchases` (the same base rates as
    :func:`audience_base_rates` on its ids), with ``global_holdout`` (the count left out)."""
    from crm_core.results import experiments

    n = purchases["n"]
    if not n:
        return {"n": 0, "global_holdout": purchases["global_holdout"], "message": "", "too_small": True}
    days, k = _windows(days, purchases["lookback_days"])
    inside = purchases["before"] <= days * k * 86400.0  # ordered_at >= end - (days × k) days
    window = np.floor(purchases["before"][inside] / (86400.0 * days)).astype(np.int64)  # as the SQL's floor(epoch / …)
    pair = purchases["customer"][inside] * (k + 1) + window
    _, which = np.unique(pair, return_inverse=True)
    revenue = np.bincount(which, weights=purchases["revenue"][inside]) if len(pair) else np.zeros(0)
    base = _rates(n, days, k, (int((revenue > 0).sum()), float(revenue.sum()), float((revenue * revenue).sum())))
    out = experiments.detectable_effect(n, float(holdout_share), base["conversion"], base["mean"], base["sd"])
    out["base"] = base
    out["global_holdout"] = purchases["global_holdout"]
    return out


def audience_outlook(store: Store, rule: Any, channel: str, holdout_share: float,
                     days: int = DEFAULT_ATTRIBUTION_DAYS, lookback_days: int = 364) -> dict[str, Any]:
    """:func:`detectable_effect` of the audience :func:`audience_ids` gives, with ``n`` and the ``global_holdout``
    count, without a list of ids through Python (:func:`audience_purchases`, then :func:`outlook`)."""
    return outlook(audience_purchases(store, rule, channel, lookback_days), holdout_share, days)


def delete_campaign(store: Store, campaign_id: int) -> None:
    """Remove a campaign with its recipients and results."""
    with store.transaction() as cur:
        for table in ("campaign_events", "campaign_recipients", "campaigns"):
            cur.execute("DELETE FROM " + table + " WHERE campaign_id = ?", [int(campaign_id)])  # noqa: S608 - fixed names


# -- result imports -----------------------------------------------------------------------
def preview_result_csv(data: bytes, nrows: int = 5) -> pd.DataFrame:
    """The header and first rows of a result CSV (UTF-8 with or without BOM, or cp932), as text.

    Reads at most the first 256 KiB: the page shows columns to map without
    holding a decoded copy of a big file.
    """
    from crm_core.ingest.reader import SNIFF, read_header, sniff_encoding

    sample = data[:SNIFF]
    if not sample.strip():
        raise InputError("結果ファイルが空です。", "empty result file")
    try:
        encoding = sniff_encoding(sample)
    except InputError:
        raise InputError("結果ファイルの文字コードを判別できません（UTF-8かShift_JISで保存してください）。", "undecodable") from None
    text = sample.decode(encoding, errors="ignore")
    headers = read_header(text)
    if not any(headers):
        raise InputError("結果ファイルをCSVとして読めません（見出し行がありません）。", "no header")
    reader = csv.reader(io.StringIO(text))
    next(reader, None)
    rows = []
    for row in reader:
        if len(rows) >= nrows:
            break
        rows.append((row + [""] * len(headers))[: len(headers)])
    return pd.DataFrame(rows, columns=headers, dtype="str")


def suggest_mapping(columns: Sequence[str]) -> dict[str, str]:
    """Guess ``{csv column: field}`` from common header words."""
    words = {
        "customer_id": ("顧客id", "顧客番号", "customer_id", "customer id"),
        "email": ("メール", "email", "e-mail", "mail"),
        "line_user_id": ("lineユーザー", "line user", "userid", "user_id", "uid"),
        "delivered": ("配信", "到達", "delivered", "送信成功", "delivery"),
        "opened": ("開封", "open"),
        "clicked": ("クリック", "click"),
    }
    out: dict[str, str] = {}
    for col in columns:
        low = str(col).lower().replace("＿", "_")
        for key, keys in words.items():
            if key not in out.values() and any(w in low for w in keys):
                out[col] = key
                break
    return out


def _flag_sql(column: str) -> str:
    """SQL: a yes-like text (:data:`_TRUE`) or a positive number in ``column`` (a generated name)."""
    return f"(list_contains($true_words, lower(trim(coalesce({column}, '')))) OR coalesce(TRY_CAST(trim({column}) AS DOUBLE), 0) > 0)"


def _stage_results(cur: Any, data: bytes | str | Path | pd.DataFrame, headers_out: list[str], workdir: str) -> str:
    """Make ``data`` readable by DuckDB under generated column names ``c0, c1, ...``; return its FROM clause.

    A file is streamed (cp932 transcoded to a UTF-8 copy in ``workdir``, UTF-8
    read in place): memory stays flat however big the file is.
    """
    from crm_core.ingest.reader import prepare

    if isinstance(data, pd.DataFrame):
        frame = data.set_axis([f"c{i}" for i in range(len(data.columns))], axis=1).astype("object")
        headers_out.extend(str(c) for c in data.columns)
        cur.register("result_frame", frame)
        return "result_frame"
    if isinstance(data, (bytes, bytearray)):
        path = Path(workdir) / "results.csv"
        path.write_bytes(data)
    else:
        path = Path(data)
    try:
        raw = prepare(path, workdir)
    except InputError as exc:
        raise InputError("結果ファイルを読めません: " + exc.message, exc.detail) from None
    headers_out.extend(raw.headers)
    names = [f"c{i}" for i in range(len(raw.headers))]
    cur.execute(
        "CREATE OR REPLACE TEMP VIEW result_file AS SELECT * FROM read_csv($paths, header = false, skip = $skip, "
        "all_varchar = true, names = $names, delim = ',', quote = '\"', escape = '\"', null_padding = true, "
        "max_line_size = 10000000)".replace("$paths", _list_literal([str(p) for p in raw.parts]))
        .replace("$skip", str(int(raw.skip))).replace("$names", _list_literal(names))
    )
    return "result_file"


def _list_literal(values: Sequence[str]) -> str:
    """Our own paths and generated names as a SQL list literal (views take no parameters)."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def import_results(store: Store, campaign_id: int, data: bytes | str | Path | pd.DataFrame, mapping: dict[str, str],
                   file_name: str = "", now: dt.datetime | None = None) -> dict[str, Any]:
    """Import a per-recipient delivery / open / click file for one campaign.

    Parameters
    ----------
    data : bytes, path or DataFrame
        The CSV (any columns).
    mapping : dict
        ``{csv column: field}`` with fields from :data:`RESULT_FIELDS`; one id
        field (customer id, e-mail or LINE user id) is required.  Without a
        ``delivered`` column every listed recipient counts as delivered; an
        open or a click implies delivery, a click implies an open.

    Returns
    -------
    dict
        ``rows`` read, ``matched`` recipients stored, ``unmatched`` rows
        (ids that are not recipients of this campaign).
    """
    get_campaign(store, campaign_id)
    used = {col: f for col, f in mapping.items() if f}
    bad = [f for f in used.values() if f not in RESULT_FIELDS]
    by_field = {f: col for col, f in used.items()}
    id_field = next((f for f in ID_FIELDS if f in by_field), None)
    if bad:
        raise InputError("列の対応が正しくありません。ファイルの列と項目を選び直してください。", f"bad mapping {bad}")
    if id_field is None:
        raise InputError("お客様を特定する列（顧客ID・メールアドレス・LINEユーザーIDのいずれか）を選んでください。", "no id column")
    key_sql = {
        # the console's customer id or the shop's own customer number
        "customer_id": "x.key IN (r.customer_id, c.customer_key)",
        "email": "x.key = lower(trim(c.email))",
        "line_user_id": "x.key = trim(c.line_user_id)",
    }[id_field]
    from crm_core.tempfiles import work_dir

    with work_dir("results") as workdir, store.transaction() as cur:
        headers: list[str] = []
        source = _stage_results(cur, data, headers, workdir)
        position = {}
        for i, h in enumerate(headers):
            position.setdefault(h, i)
        missing_cols = [c for c in used if c not in position]
        if missing_cols:
            raise InputError("列の対応が正しくありません。ファイルの列と項目を選び直してください。", f"missing columns {len(missing_cols)}")
        col = {f: f"c{position[c]}" for f, c in by_field.items()}
        key = f"trim({col[id_field]})"
        if id_field == "email":
            key = f"lower({key})"
        clicked = _flag_sql(col["clicked"]) if "clicked" in col else "FALSE"
        opened = f"({_flag_sql(col['opened'])} OR {clicked})" if "opened" in col else clicked
        delivered = f"({_flag_sql(col['delivered'])} OR {opened})" if "delivered" in col else "TRUE"
        # identifiers are generated names (c0, c1, ...) and fixed fragments; values are bound
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE result_rows AS SELECT " + key + " AS key, "  # noqa: S608
            + delivered + " AS delivered, " + opened + " AS opened, " + clicked + " AS clicked FROM " + source,
            {"true_words": sorted(_TRUE)},
        )
        n = int(cur.execute("SELECT count(*) FROM result_rows").fetchone()[0])
        cur.execute("DELETE FROM result_rows WHERE key IS NULL OR key = ''")
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE result_matched AS "
            "SELECT r.customer_id, bool_or(x.delivered) AS delivered, bool_or(x.opened) AS opened, bool_or(x.clicked) AS clicked, "
            "list(DISTINCT x.key) AS keys "
            "FROM campaign_recipients r LEFT JOIN customers c ON c.customer_id = r.customer_id "
            "JOIN result_rows x ON " + key_sql + " "  # noqa: S608 - fixed fragment chosen from a table
            "WHERE r.campaign_id = ? GROUP BY r.customer_id",
            [int(campaign_id)],
        )
        matched_keys = int(cur.execute("SELECT count(DISTINCT k) FROM (SELECT unnest(keys) AS k FROM result_matched)").fetchone()[0])
        all_keys = int(cur.execute("SELECT count(DISTINCT key) FROM result_rows").fetchone()[0])
        cur.execute(
            "DELETE FROM campaign_events WHERE campaign_id = ? AND customer_id IN (SELECT customer_id FROM result_matched)",
            [int(campaign_id)],
        )
        cur.execute(
            "INSERT INTO campaign_events SELECT ?, customer_id, delivered, opened, clicked, ?, ? FROM result_matched",
            [int(campaign_id), file_name or None, now or clock.now()],
        )
        stored = int(cur.execute("SELECT count(*) FROM result_matched").fetchone()[0])
        cur.execute("DROP TABLE result_matched")
        cur.execute("DROP TABLE result_rows")
        if source == "result_frame":
            cur.unregister("result_frame")
        else:
            cur.execute("DROP VIEW result_file")
    unmatched = all_keys - matched_keys
    return {"rows": n, "matched": stored, "unmatched": max(unmatched, 0)}


def results_version(store: Store) -> tuple:
    """Changes whenever orders, campaigns or imported results change (a cache key for the results page)."""
    return store.fetchone(
        "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM campaigns), (SELECT max(created_at) FROM campaigns), "
        "(SELECT count(*) FROM campaign_events), (SELECT max(imported_at) FROM campaign_events)"
    )
