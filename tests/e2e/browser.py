"""Helpers of the browser tests: a real Streamlit server on localhost and Playwright page helpers.

Screenshots go to ``screenshots/`` (ignored by git) so a person can look at what was tested.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CRM_CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running ``streamlit run app.py`` (or ``script``, e.g. ``console.py``) with its own store."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None, script: str = "app.py",
                 port: int | None = None, args: tuple[str, ...] = ()) -> None:
        self.port = port or _free_port()
        self.db = tmp / "crm.duckdb"
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {
            **os.environ,
            "CRM_DB": str(self.db),
            "CRM_NO_SAMPLE": "1",
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            **(env or {}),
        }
        self.log = open(tmp / "streamlit.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", *args],
            cwd=ROOT, env=full_env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as resp:  # noqa: S310 - localhost
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("streamlit did not start: " + (tmp / "streamlit.log").read_text()[-2000:])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def goto(page, server: Server, path: str = "/") -> None:
    """Open a page of the console the way a marketer does: the start page first.

    Streamlit runs the very first script of a fresh ``streamlit run app.py``
    server in its legacy ``pages/`` mode, so a deep link as its first request
    shows a one-off "page not found" notice (``console.py`` avoids it:
    ``test_deep_link_flow.py``).
    """
    if not getattr(server, "warm", False):
        page.goto(server.url + "/")
        wait_idle(page)
        server.warm = True
    page.goto(server.url + path)
    wait_idle(page)


def shot(page, name: str) -> Path:
    """Save a full-page screenshot for people to look at."""
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_charts(page, at_least: int, timeout: int = 120_000) -> int:
    """Wait until at least ``at_least`` Altair charts are drawn (vega-embed puts an SVG or canvas into each; they
    appear one after another, so the first one drawn says nothing about the others). Returns how many are drawn."""
    page.wait_for_function(
        "n => [...document.querySelectorAll('.vega-embed')].filter(e => e.querySelector('svg, canvas')).length >= n",
        arg=at_least,
        timeout=timeout,
    )
    return page.locator(".vega-embed").count()


_WATCH = """() => {
  const app = document.querySelector("[data-testid='stApp']");
  window.__ran = [];
  new MutationObserver(() => window.__ran.push(app.getAttribute('data-test-script-state')))
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
_RAN = """() => { const i = window.__ran.indexOf('running'); return i >= 0 && window.__ran.slice(i).includes('notRunning'); }"""


def rerun(page, action: Callable[[], Any], timeout: int = 120_000) -> None:
    """Do ``action`` (a click that reruns the page) and wait until that rerun has finished: :func:`wait_idle` right
    after a click can see the previous run's end, before the new one started."""
    page.evaluate(_WATCH)
    action()
    page.wait_for_function(_RAN, timeout=timeout)
    wait_idle(page)


def wait_idle(page) -> None:
    """Wait until Streamlit has rendered the page and finished running the script."""
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=120_000)
    page.wait_for_selector("[data-testid='stMain'] [data-testid='stElementContainer']", timeout=120_000)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=120_000)
