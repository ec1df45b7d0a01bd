"""pages.ui.session.editor: a data editor drawn again after runs that did not draw it (another tab open)."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest


def _script() -> None:
    import pandas as pd
    import streamlit as st

    from pages.ui import session

    if st.session_state.get("show", True):
        rows = pd.DataFrame({"send": ["予告", "開始"], "exclude": [st.session_state.get("excluded", False), False]})
        edited = session.editor("plan_editor", rows, hide_index=True)
        st.session_state["returned"] = edited


def test_rows_changed_while_the_editor_was_not_drawn_are_what_it_shows_again():
    """A saved plan's rows changed on another tab (an exclusion ticked on 配信頻度): the editor drawn again starts
    from the new rows, not from the ones it remembered (saving it would have undone the exclusion)."""
    at = AppTest.from_function(_script, default_timeout=30)
    at.run()
    assert not at.exception
    assert list(at.session_state["returned"].exclude) == [False, False]
    at.session_state["show"] = False  # another tab open: the editor is not drawn
    at.run()
    at.session_state["excluded"] = True  # meanwhile the stored rows changed
    at.session_state["show"] = True
    at.run()
    assert not at.exception
    assert list(at.session_state["returned"].exclude) == [True, False]


def test_rows_that_change_under_a_drawn_editor_are_shown():
    at = AppTest.from_function(_script, default_timeout=30)
    at.run()
    at.session_state["excluded"] = True
    at.run()
    assert not at.exception
    assert list(at.session_state["returned"].exclude) == [True, False]


def test_unchanged_rows_without_edits_are_drawn_as_they_are():
    at = AppTest.from_function(_script, default_timeout=30)
    at.run()
    at.session_state["show"] = False
    at.run()
    at.session_state["show"] = True
    at.run()
    assert not at.exception
    assert at.session_state["returned"].equals(pd.DataFrame({"send": ["予告", "開始"], "exclude": [False, False]}))
