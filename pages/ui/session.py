"""Widget values that survive page switches.

Streamlit forgets a widget's value when a run of another page does not draw
that widget, so following 「送信設定へ」 and coming back reset the messages
page to its first template.  :func:`restore` puts a remembered value back
before the widget is drawn, :func:`remember` copies the current value into a
plain session key (``keep:<key>``), which Streamlit never clears.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import streamlit as st

from pages.ui import data_editor

PREFIX = "keep:"


def restore(key: str, valid: Collection[Any] | None = None) -> None:
    """Before drawing widget ``key``: bring back its remembered value (if still one of ``valid``), or the choice
    :func:`reselect` asked for."""
    pending = st.session_state.pop(f"{PREFIX}{key}:reselect", None)
    if pending is not None and (valid is None or pending in valid):
        st.session_state[key] = pending
        return
    shadow = PREFIX + key
    if key in st.session_state or shadow not in st.session_state:
        return
    value = st.session_state[shadow]
    if valid is None or value in valid:
        st.session_state[key] = value


def reselect(key: str) -> None:
    """After an action that changes the label of select box ``key``'s choice (a status, 「（編集済み）」): set the same
    choice again when it is next drawn (via :func:`restore`).  The browser keeps showing a choice's former label
    otherwise, and sends it back as the value (Streamlit maps a choice by its label)."""
    if key in st.session_state:
        st.session_state[f"{PREFIX}{key}:reselect"] = st.session_state[key]


def kept(key: str, default: Any) -> Any:
    """The default to draw widget ``key`` with: its current value, else what :func:`remember` kept of it, else ``default``.

    For a field typed into (text, numbers), with or instead of :func:`restore`: when the tab or page holding it is
    drawn again, the browser can show the default it is drawn with instead of a value the server holds but did not
    set in this run (seen for a field inside an expander: the preview used the kept text while the field showed the
    template's).  A default that is the field's value shows right either way.
    """
    if key in st.session_state:
        return st.session_state[key]
    return st.session_state.get(PREFIX + key, default)


def remember_arrived() -> None:
    """At the start of every page run (``app.py``): update what is remembered with the values this run arrived with.

    A field left by clicking another tab or a page in the menu sends its text with the run that click starts, which
    does not draw the field again; the page's own :func:`remember` then never sees that text.  Only fields remembered
    before (drawn and remembered by their page) are updated.
    """
    for key in list(st.session_state):
        if isinstance(key, str) and not key.startswith(PREFIX) and PREFIX + key in st.session_state:
            st.session_state[PREFIX + key] = st.session_state[key]


def remember(*keys: str) -> None:
    """After drawing the widgets: remember their values for the next visit of the page."""
    for key in keys:
        if key in st.session_state:
            st.session_state[PREFIX + key] = st.session_state[key]


def forget_values(*keys: str) -> None:
    """Drop widgets' values and what :func:`remember` kept of them: they are drawn from their defaults next time."""
    for key in keys:
        st.session_state.pop(key, None)
        st.session_state.pop(PREFIX + key, None)


def editor(key: str, rows: Any, **kwargs: Any) -> Any:
    """``st.data_editor(rows, key=...)`` whose unsaved edits survive runs that do not draw it (another tab open).

    Streamlit forgets an editor's edits when a run does not draw it.  The edited rows are remembered here with the
    ``rows`` they were made on; when the editor is drawn again after such a run and ``rows`` are still those, the
    remembered rows become the editor's rows under a fresh widget key (and stay so while ``rows`` do not change: the
    widget's own edits are relative to them).  When ``rows`` changed meanwhile (saved, changed on another tab or by
    someone else) the editor starts from them: edits on rows that are no longer there are not replayed.
    """
    generation, kept = f"{PREFIX}{key}:generation", f"{PREFIX}{key}:kept"
    n = st.session_state.get(generation, 0)
    drawn_on, base, last_edited = st.session_state.get(kept, (None, None, None))
    same_rows = drawn_on is not None and _same(rows, drawn_on)
    if f"{key}:{n}" not in st.session_state and drawn_on is not None:  # drawn before, not in the last run
        n = st.session_state[generation] = n + 1
        base = last_edited if same_rows and not _same(last_edited, rows) else None  # unsaved edits on the same rows
    elif drawn_on is not None and not same_rows:  # the rows changed under a drawn editor: start from them
        n = st.session_state[generation] = n + 1
        base = None
    edited = data_editor(rows if base is None else base, key=f"{key}:{n}", **kwargs)
    st.session_state[kept] = (rows, base, edited)
    return edited


def forget(key: str) -> None:
    """Drop what :func:`editor` remembers for ``key`` (an editor that will not be drawn again)."""
    for suffix in (":generation", ":kept"):
        st.session_state.pop(f"{PREFIX}{key}{suffix}", None)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a.equals(b))
    except (AttributeError, TypeError, ValueError):
        return False
