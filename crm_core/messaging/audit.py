"""The audit log of live sends and scenarios: who created, tested, approved, sent, paused, cancelled or suppressed what,
who switched or edited a scenario and changed the caps, and when."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import Any

from crm_core import clock, opsdb

ACTIONS = {"create": "作成", "test_send": "テスト送信", "approve": "承認", "send": "送信開始", "send_done": "送信完了",
           "pause": "一時停止", "resume": "再開", "cancel": "中止", "suppress": "配信停止に追加",
           "unsuppress": "配信停止を解除", "ab_winner": "A/Bの勝ちパターン決定", "mark_sent": "送信済みにした",
           "scenario_on": "シナリオをオン", "scenario_off": "シナリオをオフ", "scenario_edit": "シナリオを変更",
           "scenario_caps": "送信回数の上限を変更"}

MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS audit_log (
        audit_id    INTEGER PRIMARY KEY AUTOINCREMENT,
        at          TEXT NOT NULL,
        actor       TEXT NOT NULL,
        action      TEXT NOT NULL,
        campaign_id INTEGER,
        detail      TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX IF NOT EXISTS audit_by_campaign ON audit_log (campaign_id, at);
    """,
]
opsdb.register("audit", MIGRATIONS)


def log(con: sqlite3.Connection, actor: str, action: str, campaign_id: int | None = None, *,
        now: dt.datetime | None = None, **detail: Any) -> None:
    """Append one entry (never updated or deleted)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    at = (now or clock.now_utc()).astimezone(dt.UTC).isoformat()
    con.execute("INSERT INTO audit_log (at, actor, action, campaign_id, detail) VALUES (?, ?, ?, ?, ?)",
                [at, actor or "unknown", action, campaign_id, json.dumps(detail, ensure_ascii=False, default=str)])


def entries(con: sqlite3.Connection, campaign_id: int | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """Newest first, with the Japanese action label."""
    where, params = ("WHERE campaign_id = ?", [int(campaign_id)]) if campaign_id is not None else ("", [])
    rows = con.execute("SELECT * FROM audit_log " + where + " ORDER BY audit_id DESC LIMIT ?", [*params, int(limit)])  # noqa: S608 - fixed fragment
    out = []
    for r in rows:
        d = dict(r)
        d["detail"] = json.loads(d["detail"] or "{}")
        d["label"] = ACTIONS.get(d["action"], d["action"])
        out.append(d)
    return out
