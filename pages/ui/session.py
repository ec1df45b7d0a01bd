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

PREFIX = "keep:"


def restore(key: str, valid: Collection[Any] | None = None) -> None:
    """Before drawing widget ``key``: bring back its remembered value (if still one of ``valid``)."""
    shadow = PREFIX + key
    if key in st.session_state or shadow not in st.session_state:
        return
    value = st.session_state[shadow]
    if valid is None or value in valid:
        st.session_state[key] = value


def remember(*keys: str) -> None:
    """After drawing the widgets: remember their values for the next visit of the page."""
    for key in keys:
        if key in st.session_state:
            st.session_state[PREFIX + key] = st.session_state[key]


def editor(key: str, rows: Any, **kwargs: Any) -> Any:
    """``st.data_editor(rows, key=...)`` whose unsaved edits survive runs that do not draw it (another tab open).

    Streamlit forgets an editor's edits when a run does not draw it; the edited rows are remembered here and, when
    the editor is drawn again after such a run, become its rows under a fresh widget key (and stay its rows: the
    widget's own edits are relative to them).  Give a new ``key`` when ``rows`` are replaced on purpose (another
    proposal, another plan): edits are kept per key.
    """
    generation, kept, base = f"{PREFIX}{key}:generation", f"{PREFIX}{key}:rows", f"{PREFIX}{key}:base"
    n = st.session_state.get(generation, 0)
    if f"{key}:{n}" not in st.session_state and kept in st.session_state:  # drawn before, not in the last run
        n = st.session_state[generation] = n + 1
        st.session_state[base] = st.session_state[kept]
    edited = st.data_editor(st.session_state[base] if n else rows, key=f"{key}:{n}", **kwargs)
    st.session_state[kept] = edited
    return edited
