"""Saved column mappings for generic CSV files (e.g. a Yahoo!ショッピング layout)."""

from __future__ import annotations

import json

from crm_core import clock
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.ingest.formats import FIELD_SYNONYMS, KIND_FIELDS


def save_mapping(store: Store, name: str, kind: str, mapping: dict[str, str]) -> None:
    """Store ``{csv header: field}`` under ``name`` (replacing a mapping of that name)."""
    name = name.strip()
    if not name:
        raise InputError("保存する名前を入力してください。", "empty mapping name")
    if kind not in KIND_FIELDS:
        raise InputError(f"データの種類「{kind}」には対応していません。", f"unknown kind {kind}")
    mapping = {h: FIELD_SYNONYMS.get(f, f) for h, f in mapping.items()}
    bad = [f for f in mapping.values() if f not in KIND_FIELDS[kind]]
    if bad:
        raise InputError(f"使えない項目があります: {', '.join(bad)}", "bad fields in mapping")
    with store.transaction() as cur:
        cur.execute("DELETE FROM column_mappings WHERE name = ?", [name])
        cur.execute(
            "INSERT INTO column_mappings VALUES (?, ?, ?, ?)",
            [name, kind, json.dumps(mapping, ensure_ascii=False), clock.now()],
        )


def load_mapping(store: Store, name: str) -> tuple[str, dict[str, str]]:
    """The kind and mapping saved under ``name``."""
    row = store.fetchone("SELECT kind, mapping FROM column_mappings WHERE name = ?", [name])
    if row is None:
        raise InputError(f"保存された列の対応「{name}」が見つかりません。", "mapping not found")
    return row[0], json.loads(row[1])


def list_mappings(store: Store) -> list[dict]:
    """Saved mappings, newest first."""
    rows = store.fetchall("SELECT name, kind, mapping, saved_at FROM column_mappings ORDER BY saved_at DESC")
    return [{"name": r[0], "kind": r[1], "mapping": json.loads(r[2]), "saved_at": r[3]} for r in rows]


def parse_map_args(items: list[str]) -> dict[str, str]:
    """``["注文ID=order_id", ...]`` from the command line into a mapping."""
    mapping: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--map は「列名=項目」の形で指定してください: {item}", "bad --map")
        column, fld = item.rsplit("=", 1)
        mapping[column.strip()] = fld.strip()
    return mapping
