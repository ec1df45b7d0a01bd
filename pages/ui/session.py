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
