"""A page's address opened as the first request of a freshly started console (a bookmark after a restart).

Streamlit runs a server's very first script in its legacy ``pages/`` mode when a ``pages/`` folder sits beside the
script, which put an English 「Page not found」 notice over the requested page; ``console.py`` (what ``./run.sh``
starts) tells Streamlit at start-up that the app uses ``st.navigation``.
"""

from __future__ import annotations

import pytest

from tests.e2e.browser import Server, wait_idle


@pytest.fixture()
def console(tmp_path):
    srv = Server(tmp_path, script="console.py")
    yield srv
    srv.stop()


@pytest.mark.parametrize("path, title", [("/calendar", "販促カレンダー"), ("/import_data", "データ取込")])
def test_a_bookmarked_page_opens_first_after_a_start_without_a_not_found_notice(console, page, path, title):
    page.goto(console.url + path)  # nothing has run on this server before
    wait_idle(page)
    page.wait_for_timeout(500)  # the notice arrives with the run's first messages
    assert title in page.locator("h1").first.inner_text()
    assert page.get_by_text("Page not found").count() == 0
    assert page.get_by_role("dialog").count() == 0
    assert page.url.endswith(path)
