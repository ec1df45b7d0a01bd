"""The console behind its sign-in gate: ``streamlit run console.py`` (same flags as ``app.py``).

``app.py`` is the Streamlit script (navigation, pages, sign-in screens).  This file
wraps it in ``st.App`` so that :class:`pages.ui.gate.SignInGate` stands in front of
every HTTP route Streamlit serves — the page shell, the websocket, uploads and
``/media`` downloads — whenever a password or OIDC sign-in is configured.  Without
either, the gate lets everything through (a private machine; bind to localhost).
"""

from __future__ import annotations

import streamlit as st
from starlette.middleware import Middleware
from streamlit.runtime.pages_manager import PagesManager

from pages.ui.gate import SignInGate

# The console's pages are registered by app.py's st.navigation.  With a pages/ folder beside app.py, Streamlit runs
# the server's very first script in its legacy "pages/ folder" mode until st.navigation is first called (which sets
# this flag to False itself), so a page's address opened first after a start showed an English "Page not found"
# notice over the page.  Set at start-up what the first st.navigation call sets (tests/e2e/test_deep_link_flow.py).
PagesManager.uses_pages_directory = False

app = st.App("app.py", middleware=[Middleware(SignInGate)])
