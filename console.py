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

from pages.ui.gate import SignInGate

app = st.App("app.py", middleware=[Middleware(SignInGate)])
