"""Send credentials a marketer enters in the console, kept in a local file outside the database.

The LINE channel access token and the SMTP server settings entered on 送信設定
are written to a small JSON file that only the console's user can read
(mode ``0600``, written atomically through a ``0600`` temporary file).  The
file sits next to the store (``data/crm.secrets.json`` beside
``data/crm.duckdb``; git-ignored) unless ``CRM_SECRETS_FILE`` names another
path.  Values are never read back to the screen: :func:`configured` only says
which names are set.  ``.streamlit/secrets.toml`` and environment variables
still win over this file (see :func:`crm_core.sends.load_settings`).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from crm_core.errors import InputError

ENV_PATH = "CRM_SECRETS_FILE"
SUFFIX = ".secrets.json"


def secrets_path(db_path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """Where the local secrets live: ``$CRM_SECRETS_FILE``, else ``<store name>.secrets.json`` beside the store."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_PATH):
        return Path(environ[ENV_PATH]).expanduser()
    if db_path in (None, "", ":memory:"):
        from crm_core.db import default_db_path

        db_path = default_db_path()
    db = Path(db_path)
    return db.with_name(db.stem + SUFFIX)


def read(path: Path) -> dict[str, str]:
    """The stored values (empty when there is no file or it cannot be read as JSON)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (FileNotFoundError, ValueError, OSError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str | int | bool) and str(v) != ""}


def configured(path: Path) -> set[str]:
    """Names that have a value in the file (never the values)."""
    return set(read(path))


def write(path: Path, updates: Mapping[str, str | None], allowed: Iterable[str], remove: Iterable[str] = ()) -> None:
    """Merge ``updates`` into the file; empty values keep what is stored, ``remove`` deletes names.

    The file is replaced atomically and is readable and writable by its owner only.

    Raises
    ------
    InputError
        When a name is not one of ``allowed`` or the folder cannot be written.
    """
    allowed = set(allowed)
    unknown = (set(updates) | set(remove)) - allowed
    if unknown:
        raise InputError("保存できない設定が含まれています。", f"unknown secret names {sorted(unknown)}")
    data = read(path)
    for name in remove:
        data.pop(name, None)
    for name, value in updates.items():
        value = "" if value is None else str(value).strip()
        if value:
            data[name] = value
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".crm-secrets-", dir=path.parent)  # created 0600
        try:
            os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, ensure_ascii=False, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise InputError(
            "送信設定を保存できませんでした。保存先のフォルダに書き込めるか確認してください。", f"secrets write: {type(exc).__name__}"
        ) from None
