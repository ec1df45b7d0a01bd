"""Browser tests: a real Streamlit server on localhost, driven by Playwright in Debian's Chromium.

Each test gets its own server and a fresh DuckDB file (helpers in ``tests/e2e/browser.py``).
Every test in this folder is marked ``e2e`` (see ``tests/conftest.py``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, Server


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run the README's test command, which installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="ja-JP", accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


@pytest.fixture()
def server(tmp_path):
    srv = Server(tmp_path)
    yield srv
    srv.stop()
