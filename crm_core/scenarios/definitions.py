"""Scenarios as data: trigger + steps, stored in the operations store, presets in ``data/scenarios/presets.toml``.

Tables (operations store, component ``scenarios``)
-----------------------------------------------------
``scenarios``
    One row per scenario: ``name`` (key), the definition as JSON, ``enabled``,
    who switched it and when.  The presets are written here (switched off) the
    first time scenarios are read.
``scenario_occurrences``
    One row per (scenario, step, customer, trigger event) — UNIQUE — written
    in the same transaction as its send-ledger row and before any delivery:
    the state (``queued`` = handed to the ledger, ``held_out``, ``suppressed``,
    ``capped``, ``daily_cap``, ``exited``, ``not_matched``), the run day, the
    campaign id of the ledger rows.  A second run, a re-import or a restarted
    worker finds the row and sends nothing again.
``scenario_holdout``
    The holdout assignment per (scenario, customer, trigger event), made once
    by a stable hash and recorded.
``scenario_batches``
    The ledger campaign of each (scenario, step, day, channel).
``scenario_settings``
    The per-customer daily cap and quiet hours of scenario sends (the 7-day limit is the shop's one setting,
    :func:`crm_core.planning.frequency.max_per_week`).
"""

from __future__ import annotations

import copy
import json
import re
import sqlite3
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crm_core import clock, filecache, opsdb
from crm_core.errors import InputError
from crm_core.messaging import choice

PRESETS_PATH = Path(__file__).resolve().parents[2] / "data" / "scenarios" / "presets.toml"
DEFAULT_HOLDOUT = 0.1
DEFAULT_DAILY_CAP = 1
DEFAULT_QUIET_HOURS = "21-08"
MAX_HOLDOUT = 0.5
MAX_DAILY_CAP = 10

TRIGGERS = {
    "first_order": "初回購入",
    "any_order": "購入（毎回）",
    "product_order": "商品の購入",
    "category_order": "カテゴリの購入",
    "subscription_delivery": "定期のお届け回数",
    "reorder_due": "買い替え時期（購入周期）",
    "birthday_month": "誕生月",
    "no_order": "購入のない日数",
    "rank_up": "ランクアップ",
    "rank_down": "ランクダウン",
    "segment": "セグメントに入った",
}
CHANNELS = choice.LABELS
EXITS = {"": "なし", "ordered": "きっかけの後に購入したら終了"}
STATES = {
    "queued": "送信",
    "held_out": "比較用に送らない",
    "suppressed": "配信停止・宛先なし",
    "capped": "送信回数の上限（7日間）",
    "daily_cap": "同じ日のより重要なシナリオを優先",
    "global_holdout": "全体の比較グループ",
    "exited": "購入したためシナリオ終了",
    "not_matched": "送信時の条件に合わない",
}
_NAME = re.compile(r"^[a-z0-9_][a-z0-9_-]{0,39}$")
_SLOT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

MIGRATIONS = [
    """
    CREATE TABLE IF NOT EXISTS scenarios (
        name        TEXT PRIMARY KEY,
        definition  TEXT NOT NULL,
        enabled     INTEGER NOT NULL DEFAULT 0,
        changed_by  TEXT,
        changed_at  TEXT
    );
    CREATE TABLE IF NOT EXISTS scenario_batches (
        scenario    TEXT NOT NULL,
        step        INTEGER NOT NULL,
        day         TEXT NOT NULL,
        channel     TEXT NOT NULL,
        campaign_id INTEGER NOT NULL UNIQUE,
        PRIMARY KEY (scenario, step, day, channel)
    );
    CREATE TABLE IF NOT EXISTS scenario_occurrences (
        scenario    TEXT NOT NULL,
        step        INTEGER NOT NULL,
        customer_id TEXT NOT NULL,
        trigger_key TEXT NOT NULL,
        trigger_day TEXT NOT NULL,
        day         TEXT NOT NULL,
        state       TEXT NOT NULL,
        channel     TEXT,
        campaign_id INTEGER,
        created_at  TEXT NOT NULL,
        UNIQUE (scenario, step, customer_id, trigger_key)
    );
    CREATE INDEX IF NOT EXISTS scenario_occ_day ON scenario_occurrences (day, customer_id);
    CREATE TABLE IF NOT EXISTS scenario_holdout (
        scenario    TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        trigger_key TEXT NOT NULL,
        held_out    INTEGER NOT NULL,
        share       REAL NOT NULL,
        assigned_at TEXT NOT NULL,
        PRIMARY KEY (scenario, customer_id, trigger_key)
    );
    CREATE TABLE IF NOT EXISTS scenario_settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
]
opsdb.register("scenarios", MIGRATIONS)


@dataclass
class Step:
    day: int
    template: str
    channel: str = "line_or_email"
    slot: str = "10:00"
    condition: dict[str, Any] | None = None
    coupon: dict[str, Any] | None = None
    exit: str = ""
    enabled: bool = True


@dataclass
class Scenario:
    name: str
    title: str
    trigger: dict[str, Any]
    steps: list[Step]
    priority: int = 100
    holdout: float = DEFAULT_HOLDOUT
    enabled: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("enabled")
        return out

    def trigger_label(self) -> str:
        t = self.trigger
        label = TRIGGERS.get(t.get("type", ""), t.get("type", ""))
        if t["type"] == "no_order":
            return f"{label}（{t['days']}日）"
        if t["type"] == "subscription_delivery":
            return f"{label}（{t['number']}回目）"
        if t["type"] == "reorder_due":
            return f"{label}の{t.get('days_before', 0)}日前"
        return label


def _err(name: str, message: str) -> InputError:
    return InputError(f"シナリオ「{name}」: {message}", f"bad scenario {name}: {message}")


def parse(data: dict[str, Any]) -> Scenario:
    """Validate a scenario definition (a dict as in the presets file)."""
    name = str(data.get("name", "")).strip()
    if not _NAME.match(name):
        raise InputError("シナリオ名は半角英小文字・数字・_ - で40文字以内にしてください。", f"bad name {name!r}")
    trigger = dict(data.get("trigger") or {})
    kind = trigger.get("type")
    if kind not in TRIGGERS:
        raise _err(name, f"きっかけ「{kind}」はありません（{'、'.join(TRIGGERS)}）。")
    for key, needed in (("no_order", "days"), ("subscription_delivery", "number"), ("product_order", "products"),
                        ("category_order", "categories")):
        if kind == key and not trigger.get(needed):
            raise _err(name, f"きっかけ「{TRIGGERS[kind]}」には {needed} が必要です。")
    if kind == "segment":
        if not any(trigger.get(k) for k in ("preset", "segment", "rule")):
            raise _err(name, "セグメントのきっかけには preset・segment・rule のどれかが必要です。")
        if trigger.get("rule"):
            from crm_core.audience import rules

            trigger["rule"] = rules.validate(trigger["rule"])
    steps = []
    for i, s in enumerate(data.get("steps") or data.get("step") or []):
        try:
            int(s.get("day", 0))
        except (TypeError, ValueError):
            raise _err(name, f"ステップ{i + 1}の日数は数字で入力してください。") from None
        step = Step(day=int(s.get("day", 0)), template=str(s.get("template", "")), channel=s.get("channel", "line_or_email"),
                    slot=s.get("slot", "10:00"), condition=s.get("condition"), coupon=s.get("coupon") or None, exit=s.get("exit", "") or "",
                    enabled=bool(s.get("enabled", True)))
        if not 0 <= step.day <= 3650:
            raise _err(name, f"ステップ{i + 1}の日数は0〜3650日にしてください。")
        if step.channel not in CHANNELS:
            raise _err(name, f"ステップ{i + 1}のチャネルは line・email・line_or_email から選んでください。")
        if not _SLOT.match(step.slot):
            raise _err(name, f"ステップ{i + 1}の送信時刻は「10:00」のように入力してください。")
        if step.exit not in EXITS:
            raise _err(name, f"ステップ{i + 1}の終了条件は ordered（購入したら終了）か空にしてください。")
        if not step.template:
            raise _err(name, f"ステップ{i + 1}のテンプレートを選んでください。")
        if step.coupon:
            _check_coupon(name, i, step.coupon)
        if step.condition:
            from crm_core.audience import rules

            step.condition = rules.validate(step.condition)
        steps.append(step)
    if not steps:
        raise _err(name, "ステップが1つもありません。")
    try:
        holdout = float(data.get("holdout", DEFAULT_HOLDOUT))
        priority = int(data.get("priority", 100))
    except (TypeError, ValueError):
        raise _err(name, "重要度と比較用に送らない割合は数字で入力してください。") from None
    if not 0 <= holdout <= MAX_HOLDOUT:
        raise _err(name, f"比較用に送らない割合は0〜{MAX_HOLDOUT:.0%}にしてください。")
    if not 1 <= priority <= 999:
        raise _err(name, "重要度は1〜999の整数にしてください（小さいほど優先して送ります）。")
    return Scenario(name=name, title=str(data.get("title") or name), trigger=trigger, steps=steps,
                    priority=priority, holdout=holdout)


COUPON_KINDS = {"yen": "円引き", "percent": "％割引", "free_shipping": "送料無料"}


def _check_coupon(name: str, i: int, spec: dict[str, Any]) -> None:
    """A step's coupon: name, kind, value, minimum purchase and ``valid_days`` (days from the send)."""
    where = f"ステップ{i + 1}のクーポン"
    if not str(spec.get("name", "")).strip():
        raise _err(name, f"{where}の名前を入力してください。")
    if spec.get("kind", "yen") not in COUPON_KINDS:
        raise _err(name, f"{where}の種類は円引き・％割引・送料無料から選んでください。")
    try:
        value, minimum = float(spec.get("value", 0)), float(spec.get("min_purchase", 0))
        days = int(spec.get("valid_days", 0) or 0)
    except (TypeError, ValueError):
        raise _err(name, f"{where}の金額・割引率・有効日数は数字で入力してください。") from None
    if spec.get("kind", "yen") == "percent" and not 0 < value <= 100:
        raise _err(name, f"{where}の割引率は1〜100%にしてください。")
    if spec.get("kind", "yen") == "yen" and value <= 0:
        raise _err(name, f"{where}の割引額は1円以上にしてください。")
    if minimum < 0:
        raise _err(name, f"{where}の最低購入金額は0円以上にしてください。")
    if "valid_days" in spec and not 1 <= days <= 365:
        raise _err(name, f"{where}の有効日数（送信日から何日間使えるか）は1〜365日にしてください。")


def load_presets(path: Path | None = None) -> list[Scenario]:
    """The preset scenarios (``data/scenarios/presets.toml``), parsed once per version of the file; callers get copies."""
    return _read_presets(path or PRESETS_PATH)


@filecache.read_once
def _read_presets(path: str) -> list[Scenario]:
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    return [parse(s) for s in data.get("scenario", [])]


@filecache.read_once
def _preset_rows(path: str) -> list[tuple[str, str]]:
    """``(name, definition JSON)`` of each preset, as :func:`_seed` stores them."""
    return [(s.name, json.dumps(s.to_dict(), ensure_ascii=False)) for s in _read_presets(path)]


def _seed(con: sqlite3.Connection) -> None:
    """Add the presets the shop does not have yet (every read does this: cheap once the file is parsed)."""
    now = clock.now_utc().isoformat()
    rows = [(name, definition, now) for name, definition in _preset_rows(PRESETS_PATH)]
    con.executemany("INSERT OR IGNORE INTO scenarios (name, definition, enabled, changed_by, changed_at) VALUES (?, ?, 0, 'preset', ?)",
                    rows)


def _from_row(row: sqlite3.Row) -> Scenario:
    s = parse(json.loads(row["definition"]))
    s.enabled = bool(row["enabled"])
    return s


def list_scenarios(con: sqlite3.Connection) -> list[Scenario]:
    """Every scenario (presets included), most important first."""
    _seed(con)
    rows = con.execute("SELECT * FROM scenarios").fetchall()
    return sorted((_from_row(r) for r in rows), key=lambda s: (s.priority, s.name))


def get(con: sqlite3.Connection, name: str) -> Scenario:
    _seed(con)
    row = con.execute("SELECT * FROM scenarios WHERE name = ?", [name]).fetchone()
    if row is None:
        names = "、".join(r[0] for r in con.execute("SELECT name FROM scenarios ORDER BY name"))
        raise InputError(f"「{name}」というシナリオはありません（{names}）。", f"unknown scenario {name!r}")
    return _from_row(row)


def save(con: sqlite3.Connection, scenario: Scenario, actor: str = "") -> None:
    """Store a (new or changed) definition; the on/off switch is kept."""
    parse(scenario.to_dict())
    _seed(con)
    con.execute("INSERT INTO scenarios (name, definition, enabled, changed_by, changed_at) VALUES (?, ?, 0, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, changed_by = excluded.changed_by,"
                " changed_at = excluded.changed_at",
                [scenario.name, json.dumps(scenario.to_dict(), ensure_ascii=False), actor or None,
                 clock.now_utc().isoformat()])


def set_enabled(con: sqlite3.Connection, name: str, enabled: bool, actor: str = "") -> Scenario:
    get(con, name)
    con.execute("UPDATE scenarios SET enabled = ?, changed_by = ?, changed_at = ? WHERE name = ?",
                [int(enabled), actor or None, clock.now_utc().isoformat(), name])
    return get(con, name)


def settings(con: sqlite3.Connection) -> dict[str, Any]:
    """``daily_cap`` (scenario messages per customer per day) and ``quiet_hours`` of scenario sends.

    The 7-day frequency cap is the shop's one limit (:func:`crm_core.planning.frequency.max_per_week`,
    shared with the calendar planner and live sends); :func:`crm_core.scenarios.engine.settings` adds it.
    """
    out: dict[str, Any] = {"daily_cap": DEFAULT_DAILY_CAP, "quiet_hours": DEFAULT_QUIET_HOURS}
    for key, value in con.execute("SELECT key, value FROM scenario_settings WHERE key IN ('daily_cap', 'quiet_hours')"):
        out[key] = json.loads(value)
    return out


def set_setting(con: sqlite3.Connection, key: str, value: Any) -> None:
    if key not in ("daily_cap", "quiet_hours"):
        raise InputError("設定できる項目は daily_cap・quiet_hours です（7日間の上限はショップ全体の設定です）。", f"unknown setting {key!r}")
    if key == "daily_cap":
        try:
            value = int(value)
        except (TypeError, ValueError):
            raise InputError("1日の上限は数字で入力してください。", f"bad daily cap {value!r}") from None
        if not 1 <= value <= MAX_DAILY_CAP:
            raise InputError(f"1人あたり1日の上限は1〜{MAX_DAILY_CAP}通にしてください。", f"daily cap {value} out of range")
    con.execute("INSERT INTO scenario_settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, json.dumps(value)])


SCHEDULE = "scenarios"
DAILY = "cron:5 8-20 * * *"
"""The worker's scenario runs: every hour from 08:05 to 20:05 JST.  The first run of a day records it; the
later ones deliver each step when its send slot has come (and pick up orders imported meanwhile)."""


def ensure_schedule(ops_path: Any) -> None:
    """The daily scenario run (kept as it is when it exists, e.g. changed or switched off by a person)."""
    from crm_core import jobs

    jobs.set_schedule(ops_path, SCHEDULE, "scenario_run", DAILY, replace=False)


def copy_of(scenario: Scenario) -> Scenario:
    return copy.deepcopy(scenario)
