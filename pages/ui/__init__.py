"""Shared UI helpers for the pages: the store, formatting, error display.

Pages stay thin: read widgets, call ``crm_core``, render with these helpers.
Session-state keys used across pages are initialised in ``app.py``
(see ``SESSION_DEFAULTS`` there); page-local keys carry the page's prefix.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from crm_core.db import WAIT_MESSAGE, Store, StoreBusy, default_db_path, snapshot_path
from crm_core.errors import InputError

log = logging.getLogger("crm_console")
T = TypeVar("T")


_run = threading.local()


READ_ONLY_NOTICE = (
    "データの取込中です。取込を始める前の内容を表示しています（この間は保存できません）。"
    "取込が終わってからページを開き直すと最新の内容になります。"
)


def _open_for_run() -> Store:
    """Open the store for this page run.

    While another process writes: if it is a long write (an import) that
    published a snapshot, read the snapshot (read-only, with a notice);
    otherwise wait for the turn with a spinner.
    """
    path = str(default_db_path())
    try:
        return Store(path, wait=0)
    except StoreBusy:
        pass
    snap = snapshot_path(path)
    if snap.exists():
        try:
            s = Store(snap, read_only=True, wait=2)
            s.cursor()
        except Exception:  # noqa: BLE001 - replaced or removed meanwhile: wait for the store instead
            log.info("snapshot not readable, waiting for the store")
        else:
            st.info(READ_ONLY_NOTICE, icon="⏳")
            return s
    try:
        with st.spinner(WAIT_MESSAGE):
            return Store(path)
    except StoreBusy as exc:
        st.error(exc.message, icon="⏳")
        st.stop()
    raise AssertionError("unreachable")  # pragma: no cover


def store() -> Store:
    """The store for this page run (opened at first use, closed by :func:`store_session` at the end).

    The console never keeps the DuckDB file between runs, so a command-line
    import or the worker can take its turn while nobody clicks; page runs of
    concurrent sessions share one connection (a cursor per thread).
    """
    s = getattr(_run, "store", None)
    if s is None:
        s = _run.store = _open_for_run()
    return s


@contextmanager
def store_session() -> Iterator[None]:
    """Wrap one page run (``app.py``): whatever store the run opened is closed when it ends."""
    try:
        yield
    finally:
        s = getattr(_run, "store", None)
        _run.store = None
        if s is not None:
            s.close()


def data_version() -> tuple[int, str]:
    """A key that changes whenever an import or a rebuild of the customer model changes the data.

    Use it as an argument of ``st.cache_data`` functions so cached results
    are keyed by the data they were computed from.  Rebuilds without an
    import (new RFM or rank settings, corrected sale dates) count too.
    """
    from crm_core import pipeline

    return pipeline.data_version(store())


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call into ``crm_core``; show an ``InputError`` in Japanese and stop.

    Unexpected errors are logged (without customer data) and shown as a
    short Japanese apology instead of a traceback.
    """
    try:
        return fn(*args, **kwargs)
    except InputError as exc:
        st.error(exc.message, icon="⚠️")
        st.stop()
    except Exception as exc:  # noqa: BLE001 - the last line of defence for the UI
        current = getattr(_run, "store", None)
        if current is not None and current.read_only and "read-only" in str(exc).lower():
            st.warning("データの取込中のため、いまは保存できません。取込が終わってからもう一度お試しください。", icon="⏳")
            st.stop()
        # Log where it failed, not the message: messages can quote customer data.
        log.error(
            "unexpected %s in %s\n%s",
            type(exc).__name__,
            getattr(fn, "__name__", fn),
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        st.error(
            "予期しないエラーが発生しました。入力内容を確認して、もう一度お試しください。"
            "解決しない場合は管理者にお問い合わせください。",
            icon="🚨",
        )
        st.stop()
    raise AssertionError("unreachable")  # pragma: no cover


def yen(value: Any) -> str:
    """¥1,234 style (no decimals), or an em dash for missing values."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    return f"¥{round(float(value)):,}"


def count(value: Any, unit: str = "") -> str:
    """1,234人 style."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    return f"{int(value):,}{unit}"


def pct(value: Any, digits: int = 1) -> str:
    """12.3% style from a ratio (0.123)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    return f"{float(value) * 100:.{digits}f}%"


def jdate(value: Any) -> str:
    """2026年11月22日 style."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "—"
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10])
    return f"{value.year}年{value.month}月{value.day}日"


def csv_bytes(df: pd.DataFrame, encoding: str = "utf-8-sig") -> bytes:
    """A DataFrame as CSV that Excel opens (UTF-8 with BOM by default)."""
    from crm_core.export import to_csv_bytes

    return to_csv_bytes(df, encoding=encoding)


def empty_state(message: str) -> None:
    """An explanatory empty state (never a blank chart)."""
    st.info(message, icon="ℹ️")


def require_data() -> Store:
    """The store, or an explanation and a stop when nothing is imported yet."""
    s = store()
    if s.is_empty():
        empty_state(
            "まだ注文データがありません。「データ取込」ページで楽天RMSやShopifyの注文CSVを"
            "アップロードするか、サンプルショップを読み込んでください。"
        )
        st.page_link("pages/data/import_data.py", label="データ取込へ", icon="📥")
        st.stop()
    return s
