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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from crm_core import clock
from crm_core.db import Store
from crm_core.errors import InputError

CHANNELS = {"line": "LINE", "email": "メール", "rmail": "R-Mail"}
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


# -- validation ---------------------------------------------------------------------------
def _check(name: str, channel: str, holdout_share: float, attribution_days: int, variants: Sequence[str]) -> list[str]:
    if not str(name or "").strip():
        raise InputError("施策名を入力してください。", "empty name")
    if channel not in CHANNELS:
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


def _reachable_ids(store: Store, rule: Any, channel: str) -> list[str]:
    from crm_core.audience import segments

    c = segments.compile_rule(store, rule)
    reach = {"line": "cm.has_line", "email": "cm.email_opt_in AND cm.email IS NOT NULL",
             "rmail": "coalesce(cm.email_opt_in, FALSE)"}[channel]
    sql = "SELECT cm.customer_id FROM customer_model AS cm WHERE (" + c.where + ") AND " + reach + " ORDER BY 1"  # noqa: S608 - compiled rule, fixed fragments
    return [r[0] for r in segments._run(store, sql, c.params, c.rule)]


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
) -> int:
    """Freeze a campaign's recipients and groups at send time; return the campaign id.

    Parameters
    ----------
    rule : dict, optional
        A segment rule; recipients are the matching customers of
        ``customer_model`` reachable on the channel (LINE: with a LINE user
        id; e-mail / R-Mail: opted in).
    customer_ids : iterable of str, optional
        The recipients as a list instead (sends made outside the console).
    holdout_share : float
        Share of recipients kept as the holdout (not sent; 0 for none).
    variants : sequence of str
        A/B variant names split among the non-holdout recipients.

    Raises
    ------
    InputError
        Bad inputs, no recipients, or a campaign id that already exists.
    """
    names = _check(name, channel, holdout_share, attribution_days, variants)
    sent = parse_datetime(sent_at)
    if customer_ids is None:
        if rule is None:
            raise InputError("配信対象（セグメント）を選んでください。", "no rule and no ids")
        ids = _reachable_ids(store, rule, channel)
    else:
        ids = sorted({str(c) for c in customer_ids if c})
    if not ids:
        reason = ""
        if customer_ids is None:  # say why the channel reaches nobody (the planner's one explanation)
            from crm_core.planning import planner

            reason = planner.explain_reach(store, channel, rule).reason
        raise InputError("配信対象のお客様が0人です。" + (reason or "条件かチャネルを見直してください。"), "no recipients")
    if line_plan is None and channel == "line":
        from crm_core.planning.costs import line_plan_setting

        line_plan = line_plan_setting(store)
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


def delete_campaign(store: Store, campaign_id: int) -> None:
    """Remove a campaign with its recipients and results."""
    with store.transaction() as cur:
        for table in ("campaign_events", "campaign_recipients", "campaigns"):
            cur.execute("DELETE FROM " + table + " WHERE campaign_id = ?", [int(campaign_id)])  # noqa: S608 - fixed names


# -- result imports -----------------------------------------------------------------------
def read_result_csv(data: bytes | str | Path) -> pd.DataFrame:
    """A result CSV (UTF-8 with or without BOM, or cp932) as text columns."""
    raw = Path(data).read_bytes() if isinstance(data, (str, Path)) else data
    if len(raw) > 200 * 1024 * 1024:
        raise InputError("結果ファイルが大きすぎます（200MBまで）。", "result file too large")
    for enc in ("utf-8-sig", "cp932"):
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise InputError("結果ファイルの文字コードを判別できません（UTF-8かShift_JISで保存してください）。", "undecodable")
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        raise InputError("結果ファイルをCSVとして読めません。", "csv parse error") from None


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


def _flag(series: pd.Series) -> pd.Series:
    s = series.fillna("").astype(str).str.strip().str.lower()
    numeric = pd.to_numeric(s, errors="coerce")
    return s.isin(_TRUE) | (numeric.fillna(0) > 0)


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
    frame = data if isinstance(data, pd.DataFrame) else read_result_csv(data)
    used = {col: f for col, f in mapping.items() if f}
    bad = [f for f in used.values() if f not in RESULT_FIELDS]
    missing_cols = [c for c in used if c not in frame.columns]
    if bad or missing_cols:
        raise InputError("列の対応が正しくありません。ファイルの列と項目を選び直してください。", f"bad mapping {bad} {missing_cols}")
    by_field = {f: col for col, f in used.items()}
    id_field = next((f for f in ID_FIELDS if f in by_field), None)
    if id_field is None:
        raise InputError("お客様を特定する列（顧客ID・メールアドレス・LINEユーザーIDのいずれか）を選んでください。", "no id column")
    ids = frame[by_field[id_field]].fillna("").astype(str).str.strip()
    if id_field == "email":
        ids = ids.str.lower()
    n = len(frame)
    delivered = _flag(frame[by_field["delivered"]]) if "delivered" in by_field else pd.Series(True, index=frame.index)
    opened = _flag(frame[by_field["opened"]]) if "opened" in by_field else pd.Series(False, index=frame.index)
    clicked = _flag(frame[by_field["clicked"]]) if "clicked" in by_field else pd.Series(False, index=frame.index)
    opened = opened | clicked
    delivered = delivered | opened
    rows = pd.DataFrame({"key": ids, "delivered": delivered, "opened": opened, "clicked": clicked})
    rows = rows[rows["key"] != ""]
    key_sql = {
        "customer_id": "r.customer_id",
        "email": "lower(trim(c.email))",
        "line_user_id": "trim(c.line_user_id)",
    }[id_field]
    with store.transaction() as cur:
        cur.register("result_rows", rows)
        cur.execute(
            "CREATE OR REPLACE TEMP TABLE result_matched AS "
            "SELECT r.customer_id, bool_or(x.delivered) AS delivered, bool_or(x.opened) AS opened, bool_or(x.clicked) AS clicked "
            "FROM campaign_recipients r LEFT JOIN customers c ON c.customer_id = r.customer_id "
            "JOIN result_rows x ON x.key = " + key_sql + " "  # noqa: S608 - fixed fragment chosen from a table
            "WHERE r.campaign_id = ? GROUP BY r.customer_id",
            [int(campaign_id)],
        )
        count_sql = "SELECT count(DISTINCT x.key) FROM result_rows x JOIN campaign_recipients r ON r.campaign_id = ? LEFT JOIN customers c ON c.customer_id = r.customer_id WHERE x.key = " + key_sql  # noqa: S608 - fixed fragment
        matched_keys = int(cur.execute(count_sql, [int(campaign_id)]).fetchone()[0])
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
        cur.unregister("result_rows")
    unmatched = int(rows["key"].nunique()) - matched_keys
    return {"rows": n, "matched": stored, "unmatched": max(unmatched, 0)}


def results_version(store: Store) -> tuple:
    """Changes whenever orders, campaigns or imported results change (a cache key for the results page)."""
    return store.fetchone(
        "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM campaigns), (SELECT max(created_at) FROM campaigns), "
        "(SELECT count(*) FROM campaign_events), (SELECT max(imported_at) FROM campaign_events)"
    )
