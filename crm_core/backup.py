"""Before deleting: what 「すべてのデータを削除」 removes and keeps, and a backup copy of the store.

:func:`clear_plan` counts, per kind of data, what :meth:`crm_core.db.Store.clear_data`
would delete and what it keeps, so the page can say exactly that.  :func:`backup_store`
writes a complete copy of the store (a DuckDB file that opens like the original) into
``backups/`` beside the store file, e.g. ``data/backups/crm-20261203-101500.duckdb``:
DuckDB's ``COPY FROM DATABASE`` copies one consistent snapshot, even while the
console keeps running.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from crm_core import clock
from crm_core.db import Store, quote_ident
from crm_core.errors import InputError

# (table, Japanese label, unit) of what the page lists.
_DELETED = (
    ("orders", "注文", "件"),
    ("order_lines", "注文明細", "行"),
    ("customers", "顧客", "人"),
    ("contacts", "連絡先リスト（LINE友だち・顧客リスト）", "件"),
    ("products", "商品マスタ", "件"),
    ("imports", "取り込み履歴", "件"),
    ("import_rejects", "取り込めなかった行の記録", "行"),
    ("segment_sizes", "保存したセグメントの人数の推移", "件"),
)
_CAMPAIGNS = (
    ("campaigns", "施策の記録", "件"),
    ("campaign_recipients", "施策の対象者", "人"),
    ("campaign_events", "施策の配信結果（開封・クリック）", "件"),
    ("coupon_codes", "発行済みのクーポンコード", "件"),
)
_KEPT = (
    ("segments", "保存したセグメント", "件"),
    ("coupons", "クーポンの定義", "件"),
    ("message_templates", "編集したテンプレート", "件"),
    ("column_mappings", "保存した列の対応", "件"),
    ("send_log", "テスト送信の履歴", "件"),
    ("campaign_plans", "販促カレンダーの計画", "件"),
)
_COUNTABLE = tuple(t for t, _, _ in _DELETED + _CAMPAIGNS + _KEPT)
BACKUP_DOWNLOAD_LIMIT = 100 * 1024 * 1024
"""Backups up to this size are also offered as a download on the page."""


@dataclass
class ClearPlan:
    """What clearing deletes and keeps: ``(label, count, unit)`` rows."""

    deleted: list[tuple[str, int, str]] = field(default_factory=list)
    campaigns: list[tuple[str, int, str]] = field(default_factory=list)
    kept: list[tuple[str, int, str]] = field(default_factory=list)

    @staticmethod
    def text(rows: list[tuple[str, int, str]]) -> str:
        """「注文 3件、顧客 2人、…」 (rows with a count of 0 left out; 「なし」 when none)."""
        parts = [f"{label} {count:,}{unit}" for label, count, unit in rows if count]
        return "、".join(parts) or "なし"


def _count(store: Store, table: str) -> int:
    if not store.has_table(table):
        return 0
    return int(store.scalar("SELECT count(*) FROM " + quote_ident(table, _COUNTABLE)))  # noqa: S608 - allowlisted


def clear_plan(store: Store) -> ClearPlan:
    """Count what :meth:`Store.clear_data` deletes, the campaign data it may keep, and what stays."""
    plan = ClearPlan()
    for rows, spec in ((plan.deleted, _DELETED), (plan.campaigns, _CAMPAIGNS), (plan.kept, _KEPT)):
        rows.extend((label, _count(store, table), unit) for table, label, unit in spec)
    return plan


def backups_folder(store: Store) -> Path:
    """``backups/`` beside the store file (``data/backups/`` by default)."""
    if store.path == ":memory:":
        raise InputError("メモリ上のデータベースはバックアップできません。", "in-memory store")
    return Path(store.path).resolve().parent / "backups"


def backup_store(store: Store, folder: str | Path | None = None, now: dt.datetime | None = None) -> Path:
    """Write a complete copy of the store as a new DuckDB file and return its path.

    Parameters
    ----------
    store : Store
    folder : str or Path, optional
        Where to write (default :func:`backups_folder`).
    now : datetime, optional
        The time in the file name (default: now).

    Raises
    ------
    StorageError
        When the copy cannot be written (full disk, read-only folder).
    """
    target_dir = Path(folder) if folder is not None else backups_folder(store)
    target_dir.mkdir(parents=True, exist_ok=True)
    stamp = (now or clock.now()).strftime("%Y%m%d-%H%M%S")
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", Path(store.path).stem) or "crm"
    target = target_dir / f"{stem}-{stamp}.duckdb"
    n = 1
    while target.exists():
        n += 1
        target = target_dir / f"{stem}-{stamp}-{n}.duckdb"
    source = store.scalar("SELECT current_database()")
    literal = "'" + str(target).replace("'", "''") + "'"
    cur = store.cursor()
    store.execute("ATTACH " + literal + " AS crm_backup")  # path chosen above, not user input
    try:
        store.execute("COPY FROM DATABASE " + _quote_name(source) + " TO crm_backup")
    except BaseException:
        cur.execute("DETACH crm_backup")
        for part in (target, target.with_name(target.name + ".wal")):
            part.unlink(missing_ok=True)  # no half-written backup is left behind
        raise
    cur.execute("DETACH crm_backup")
    return target


def _quote_name(name: str) -> str:
    """A database name (DuckDB takes it from our own file name) as a quoted identifier."""
    return '"' + str(name).replace('"', '""') + '"'

