"""Failures the machine causes, explained in Japanese (the one place they are recognised).

DuckDB and the operating system report a locked store file, a read-only
store, a full disk and similar problems as English exceptions — sometimes
hidden behind a later one (a failed ``ROLLBACK`` after a commit that could
not be written says only "cannot rollback - no transaction is active").
:func:`translate` walks an exception and the exceptions it was raised from,
recognises these failures and returns a :class:`crm_core.errors.StorageError`
whose message says what happened and what to do; anything else gives
``None`` and stays what it is.

Used by :class:`crm_core.db.Store` (opening, queries, transactions), the
command line's entry point and the pages' ``ui.run``.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

import duckdb

from crm_core.errors import StorageError

_LOCK = re.compile(r"Could not set lock on file", re.I)
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<prog>.+?) \(PID (?P<pid>\d+)\)")
_DISK_FULL = re.compile(r"No space left on device|Disk full|max_temp_directory_size|disk quota exceeded", re.I)
_READ_ONLY = re.compile(r"read-only mode|Read-only file system|read only file system|attached in read-only", re.I)
_MISSING = re.compile(r"database does not exist|No such file or directory", re.I)
_DENIED = re.compile(r"Permission denied", re.I)
_INVALIDATED = re.compile(r"database has been invalidated", re.I)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, then the ones it was raised from or while handling (oldest last)."""
    out: list[BaseException] = []
    todo = [exc]
    while todo and len(out) < 20:
        e = todo.pop(0)
        if e in out:
            continue
        out.append(e)
        todo.extend(x for x in (e.__cause__, e.__context__) if x is not None)
    return out


def _name(path: str | Path | None) -> str:
    if not path or str(path) == ":memory:":
        return "データベースファイル"
    return f"データベースファイル「{Path(str(path)).name}」"


def translate(exc: BaseException, path: str | Path | None = None) -> StorageError | None:
    """A Japanese :class:`StorageError` for a machine failure anywhere in ``exc``'s chain, else None.

    Parameters
    ----------
    exc : BaseException
        What was raised.
    path : str or Path, optional
        The store file (named in the message).
    """
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, StorageError):
            return e
    where = _name(path)
    # The root cause first: the error that started it is the one to explain.
    for e in reversed(chain):
        text = str(e)
        os_errno = e.errno if isinstance(e, OSError) else None
        if _LOCK.search(text):
            holder = _LOCK_HOLDER.search(text)
            who = f"（PID {holder['pid']}：{Path(holder['prog']).name}）" if holder else ""
            return StorageError(
                f"{where}は、別のプログラム{who}が使用中のため開けません。"
                "コンソールやほかのコマンドを終了してから、もう一度お試しください"
                "（同時に使うときは、別のデータベースファイルを指定してください）。",
                "store file locked by another process",
                "locked",
            )
        if os_errno in (errno.ENOSPC, errno.EDQUOT) or _DISK_FULL.search(text):
            return StorageError(
                "ディスクの空き容量が足りないため、データベースに書き込めませんでした。書き込めなかった変更は保存されていません"
                "（それまでのデータはそのままです）。不要なファイルを削除して空き容量を増やしてから、もう一度お試しください。",
                "disk full",
                "disk_full",
            )
        if os_errno == errno.EROFS or _READ_ONLY.search(text):
            return StorageError(
                f"{where}が読み取り専用のため、保存できません。閲覧や集計はこのままできます。"
                "取り込みや保存をするには、書き込みできる場所にファイルを置くか、ファイルの書き込み権限を確認してください。",
                "store is read-only",
                "read_only",
            )
        if _INVALIDATED.search(text):
            return StorageError(
                "前に起きたエラー（ディスクの空き容量不足など）のため、データベースへの接続が使えなくなりました。"
                "コンソール（またはコマンド）を起動し直してください。保存済みのデータは失われていません。",
                "database invalidated after a fatal error",
                "invalidated",
            )
        if isinstance(e, RecursionError):
            return StorageError(
                "条件やテンプレートの入れ子が深すぎるため、処理できません。入れ子を浅くしてください。",
                "recursion too deep",
                "too_deep",
            )
        if isinstance(e, (MemoryError, duckdb.OutOfMemoryException)):
            return StorageError(
                "メモリが足りないため、処理を完了できませんでした。ほかのアプリを終了してから、もう一度お試しください。",
                "out of memory",
                "memory",
            )
        if os_errno == errno.EACCES or (isinstance(e, duckdb.Error) and _DENIED.search(text)):
            return StorageError(
                f"{where}を開く権限がありません。ファイルとフォルダの権限を確認してください。",
                "permission denied",
                "no_permission",
            )
        if isinstance(e, duckdb.IOException) and _MISSING.search(text):
            return StorageError(
                f"{where}が見つかりません。ファイルの場所（--db の指定）を確認してください。",
                "store file missing",
                "missing",
            )
    return None
