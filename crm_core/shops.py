"""Several shops on one server: one store (and its own settings, users and send secrets) per shop.

A single-shop install keeps its store where it always was (``data/crm.duckdb``,
or ``$CRM_DB``).  Further shops live in a shops folder, one sub-folder each:
``data/shops/<name>/crm.duckdb`` (``$CRM_SHOPS_DIR`` moves the folder).  Everything of
a shop sits in its own store — orders, customers, segments, templates, the sender
identity, users and roles, the audit log — and its send secrets in
``crm.secrets.json`` beside it, so nothing of one shop can appear in another.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from crm_core.db import DEFAULT_DB, default_db_path
from crm_core.errors import InputError

DEFAULT = ""
"""The name of the default store (``data/crm.duckdb``)."""
STORE_FILE = "crm.duckdb"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def shops_dir() -> Path:
    """The folder of the shops: ``$CRM_SHOPS_DIR`` or ``data/shops``."""
    env = os.environ.get("CRM_SHOPS_DIR")
    return Path(env) if env else DEFAULT_DB.parent / "shops"


def check_name(name: str) -> str:
    """A valid shop name (lower-case letters, digits, ``-`` and ``_``; at most 40)."""
    value = (name or "").strip()
    if not _NAME.match(value):
        raise InputError(
            "ショップ名には半角の英小文字・数字・「-」「_」を40文字まで使えます（例: rakuten-main）。",
            f"bad shop name {name!r}",
        )
    return value


def db_path(name: str = DEFAULT) -> Path:
    """The store file of shop ``name`` (the default store for ``""``)."""
    if name == DEFAULT:
        return default_db_path()
    return shops_dir() / check_name(name) / STORE_FILE


def list_shops() -> list[str]:
    """Names of the shops in the shops folder that have a store, sorted."""
    root = shops_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if _NAME.match(p.name) and (p / STORE_FILE).exists())


def exists(name: str) -> bool:
    """True for the default store and for every shop with a store file."""
    return name == DEFAULT or name in list_shops()
