"""Deployment settings shared by the console, the worker and the endpoint service.

Nothing here is a secret.  Secrets (LINE channel secret and token, SMTP
password) are read with :func:`secret` from the environment or from
``.streamlit/secrets.toml`` (never from the store, never committed).

* Bind address: ``CRM_BIND`` (default ``127.0.0.1``: closed by default; set
  ``0.0.0.0`` or an interface address only behind a reverse proxy).
* Ports: console ``CRM_CONSOLE_PORT`` (8501), endpoint service ``CRM_SERVICE_PORT`` (8502).
* Public base URL of the endpoint service (used in links sent to customers,
  e.g. one-click unsubscribe, and as the LINE webhook URL to enter in the LINE
  console): ``CRM_PUBLIC_URL`` in the environment, else ``CRM_PUBLIC_URL`` in
  ``.streamlit/secrets.toml``, else the store setting ``public_base_url``,
  else ``http://127.0.0.1:<service port>`` (only reachable from this machine).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from crm_core.db import Store

ROOT = Path(__file__).resolve().parent.parent
SECRETS_FILE = ROOT / ".streamlit" / "secrets.toml"
DEFAULT_BIND = "127.0.0.1"
DEFAULT_CONSOLE_PORT = 8501
DEFAULT_SERVICE_PORT = 8502


def bind_address() -> str:
    """Where the console and the endpoint service listen: ``$CRM_BIND`` or 127.0.0.1."""
    return os.environ.get("CRM_BIND") or DEFAULT_BIND


def console_port() -> int:
    return int(os.environ.get("CRM_CONSOLE_PORT") or DEFAULT_CONSOLE_PORT)


def service_port() -> int:
    return int(os.environ.get("CRM_SERVICE_PORT") or DEFAULT_SERVICE_PORT)


def secret(name: str, default: Any = None) -> Any:
    """A secret from the environment, else from ``.streamlit/secrets.toml`` (top-level key)."""
    value = os.environ.get(name)
    if value:
        return value
    path = Path(os.environ.get("CRM_SECRETS_TOML") or SECRETS_FILE)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return default
    return data.get(name, default)


def public_base_url(store: Store | None = None) -> str:
    """The endpoint service's public base URL, without a trailing slash (see the module doc)."""
    url = secret("CRM_PUBLIC_URL")
    if not url and store is not None:
        url = store.get_setting("public_base_url")
    if not url:
        url = f"http://127.0.0.1:{service_port()}"
    return str(url).rstrip("/")


def public_url(path: str, store: Store | None = None) -> str:
    """An absolute link to ``path`` on the endpoint service (``/unsubscribe/abc`` -> ``https://crm.example.jp/unsubscribe/abc``)."""
    return public_base_url(store) + "/" + path.lstrip("/")


def backup(db_path: str | Path, out_dir: str | Path, *, wait: float | None = None) -> dict[str, Any]:
    """Copy the store and its operations file into ``out_dir`` (consistent, while everything keeps running).

    The DuckDB file is checkpointed and copied while this process holds the
    writer lock (other writers wait a moment; nothing is half-copied); the
    operations file is copied with SQLite's online backup API.  Returns the
    paths and sizes written.
    """
    import datetime as dt
    import shutil
    import sqlite3
    from contextlib import closing

    from crm_core import opsdb

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(db_path).stem + "-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    db_copy = out / (stem + ".duckdb")
    ops_copy = out / (stem + ".ops.sqlite")
    with Store(db_path, wait=wait) as store:
        store.execute("CHECKPOINT")
        shutil.copyfile(store.path, db_copy)
    with closing(opsdb.connect(opsdb.ops_path(db_path))) as src, closing(sqlite3.connect(str(ops_copy))) as dst:
        src.backup(dst)
    return {"store": str(db_copy), "store_bytes": db_copy.stat().st_size,
            "ops": str(ops_copy), "ops_bytes": ops_copy.stat().st_size}
