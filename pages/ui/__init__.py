"""Shared UI helpers for the pages: the store, formatting, error display.

Pages stay thin: read widgets, call ``crm_core``, render with these helpers.
Session-state keys used across pages are initialised in ``app.py``
(see ``SESSION_DEFAULTS`` there); page-local keys carry the page's prefix.
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from crm_core.db import Store, default_db_path
from crm_core.errors import InputError

log = logging.getLogger("crm_console")
T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def _open_store(path: str) -> Store:
    from crm_core.tempfiles import sweep

    sweep()  # working folders left by imports that were killed
    return Store(path)


def real_store() -> Store:
    """The shop's own store (imports always go here, never into the sample's file).

    When the file cannot be opened (another program holds it, no
    permission, …) the page shows why in Japanese and stops; the next
    rerun tries again.
    """
    try:
        return _open_store(str(default_db_path()))
    except InputError as exc:
        st.error(exc.message, icon="⚠️")
        st.stop()
    raise AssertionError("unreachable")  # pragma: no cover


def store() -> Store:
    """The store the console shows: the shop's own, or the sample shop's own file while it is shown.

    One DuckDB connection per file and server; a cursor per thread.
    """
    from crm_core.sample import store as sample_store

    real = real_store()
    if sample_store.showing_sample(real):
        path = sample_store.sample_path(real.path)
        if path is not None:
            return _open_store(str(path))
    return real


def viewing_sample() -> bool:
    """True while the console shows the sample shop instead of the shop's own data."""
    return store() is not real_store()


def data_version() -> tuple[str, int, str]:
    """A key that changes whenever an import or a rebuild of the customer model changes the data.

    Use it as an argument of ``st.cache_data`` functions so cached results
    are keyed by the data they were computed from.  Rebuilds without an
    import (new RFM or rank settings, corrected sale dates) count too.
    """
    from crm_core import pipeline

    s = store()
    return (s.path, *pipeline.data_version(s))  # the path: the sample's file and the shop's never share a cache entry


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
        from crm_core.failures import translate

        problem = translate(exc, default_db_path())
        if problem is not None:  # the machine failed (disk full, read-only store, …): say so
            log.warning("storage failure in %s: %s", getattr(fn, "__name__", fn), problem.detail)
            st.error(problem.message, icon="⚠️")
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
