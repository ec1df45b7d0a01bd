"""Page reruns as a marketer waits for them: a real ``streamlit run`` server and headless Chromium.

``bench_pages.py`` times the page scripts under AppTest, which compiles ``app.py`` and the page
again on every run (a server compiles each script once) and draws nothing.  This bench opens the
console in Chromium (Playwright, ``/usr/bin/chromium``), visits each page and then changes the
widget ``bench_pages.py`` changes on it (AppTest picks it: the first select box, else radio,
checkbox, number input — ＋ in the browser — outside forms; a tab is opened first if it sits in
another tab, which reruns nothing) and times, in the browser, from that click
(``pointerdown``) to the moment Streamlit reports the script finished
(``data-test-script-state`` back to ``notRunning``): the round trip over the WebSocket, the script,
and every element's delta received by the browser.  Widgets AppTest cannot set but a marketer changes
most (``ALSO``: the month shown on 販促カレンダー and its proposal's audience) are timed as rows of their own.

First visits are timed too (from the navigation to the script finished), but the server's caches
are shared between pages (the sidebar's counts and the data version are cached by the first page);
``bench_pages.py`` clears every cache before each first render and stays the figure for first renders.
Each run starts a fresh server on the same store (``--runs``); medians are printed with the targets
(rerun ≤ 300 ms).

Usage::

    python bench/bench_pages_browser.py --db /path/to/store.duckdb [--runs 3] [--page calendar]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

RERUN_TARGET = 0.3

# Installed before the console loads: when the page sends a message to the server (the rerun request), and the
# browser's long tasks (its main thread busy for 50 ms or more: drawing charts and tables), for the breakdown.
_TRACE = """
(() => {
  window.__sent = []; window.__long = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) { window.__sent.push(performance.now()); return send.call(this, data); };
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__long.push([e.startTime, e.duration]); })
    .observe({type: 'longtask', buffered: true});
})();
"""
# Records, in the page, when the script state changes and when the marketer last pressed or typed.
_OBSERVE = """
() => {
  const app = document.querySelector("[data-testid='stApp']");
  window.__states = [];
  window.__input = null;
  window.__sent = []; window.__long = [];
  new MutationObserver(() => window.__states.push([performance.now(), app.getAttribute('data-test-script-state')]))
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  for (const ev of ['pointerdown', 'keydown']) {
    document.addEventListener(ev, () => { window.__input = performance.now(); }, true);
  }
}
"""
_FINISHED = """
() => {
  if (window.__input === null) return false;
  const after = window.__states.filter(([t]) => t > window.__input);
  const ran = after.findIndex(([, s]) => s === 'running');
  return ran >= 0 && after.slice(ran).some(([, s]) => s === 'notRunning');
}
"""
_ELAPSED = """
() => {
  const after = window.__states.filter(([t]) => t > window.__input);
  const ran = after.findIndex(([, s]) => s === 'running');
  const done = after.slice(ran).find(([, s]) => s === 'notRunning');
  return (done[0] - window.__input) / 1000;
}
"""
# Where the browser's part of that time went: the request sent after the click, and the main thread's long tasks
# (each ≥ 50 ms: Vega drawing a chart, a table laid out) between the click and the script finished in the browser.
_BREAKDOWN = """
() => {
  const t0 = window.__input;
  const after = window.__states.filter(([t]) => t > t0);
  const ran = after.findIndex(([, s]) => s === 'running');
  const done = after.slice(ran).find(([, s]) => s === 'notRunning')[0];
  const sent = window.__sent.find((t) => t > t0);
  const busy = window.__long.filter(([s]) => s >= t0 && s < done).reduce((a, [, d]) => a + d, 0);
  return {sent: sent === undefined ? null : (sent - t0) / 1000, long_tasks: busy / 1000};
}
"""
# Widgets a marketer changes most on a page that AppTest cannot set (formatted select boxes) or that are not on the
# page's first tab: each is timed as a row of its own after the page's AppTest widget.  On 販促カレンダー the month
# shown is the calendar's first control (each run's server is fresh, so it is a month the server has not drawn yet)
# and the proposal's audience reruns the proposal alone (a fragment, on the キャンペーン計画 tab).
ALSO = {"plan/calendar": [("selectbox", "表示する最初の月"), ("selectbox", "配信対象（セグメント）")]}


def apptest_widget(page_file: str) -> tuple[str, str] | None:
    """The (kind, label) of the widget ``bench_pages.py`` changes on this page, or None when it changes none.

    AppTest decides, as in ``bench_pages.measure``: the first candidate it can set and rerun (some formatted
    select boxes it cannot set are skipped), so both benches change the same widget.
    """
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from bench.bench_pages import HOME, _candidates
    from bench.bench_pages import _change as apptest_change

    def opened() -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.run()
        if page_file != HOME:
            at.switch_page(page_file).run()
        return at

    at = opened()
    st.cache_data.clear()
    for kind, i in _candidates(at):
        label = getattr(at, kind)[i].label
        try:
            apptest_change(at, kind, i)
            at.run()
        except Exception:  # noqa: BLE001 - AppTest's own limits: bench_pages tries the next widget too
            at = opened()
            continue
        return None if kind == "text_input" else (kind, label)
    return None


def _visible(page, locator) -> bool:
    """Make ``locator`` visible, opening the page's tabs one by one and their closed expanders."""
    from playwright.sync_api import Error as PlaywrightError

    if locator.count() and locator.first.is_visible():
        return True
    tabs = page.locator("[data-testid='stMain'] [role='tab']")
    for i in range(max(tabs.count(), 1)):
        if tabs.count():
            tabs.nth(i).click()
            with contextlib.suppress(PlaywrightError):  # a tab that runs only when open draws its widgets after its rerun
                locator.first.wait_for(state="visible", timeout=3_000)
            page.wait_for_timeout(500)  # that rerun (if any) ends before anything else is clicked or timed
            _wait_idle(page)
        if locator.count() and locator.first.is_visible():
            return True
        closed = page.locator("[data-testid='stMain'] [data-testid='stExpander'] details:not([open]) > summary")
        for j in range(closed.count()):
            if closed.nth(j).is_visible():
                closed.nth(j).click()
        if locator.count() and locator.first.is_visible():
            return True
    return False


def _change(page, kind: str, label: str) -> bool:
    """Change the widget ``kind`` labelled ``label`` in the page's main area as a marketer would; False if not found."""
    main = page.locator("[data-testid='stMain']")
    if kind == "selectbox":
        box = main.get_by_role("combobox", name=label, exact=True)
        if not _visible(page, box):
            return False
        current = box.first.input_value()
        box.first.click()
        options = page.get_by_role("option")
        options.first.wait_for(timeout=10_000)
        texts = [options.nth(i).inner_text().strip() for i in range(options.count())]
        others = [i for i, t in enumerate(texts) if t != current]
        if not others:
            page.keyboard.press("Escape")
            return False
        options.nth(others[0]).click()
        return True
    testid = {"radio": "stRadio", "checkbox": "stCheckbox", "toggle": "stCheckbox", "number_input": "stNumberInput"}[kind]
    widget = main.locator(f"[data-testid='{testid}']").filter(has_text=label)
    if not _visible(page, widget):
        return False
    widget = widget.first
    if kind == "radio":
        choices = widget.locator("label:has(input[type='radio'])")
        unchecked = [i for i in range(choices.count()) if not choices.nth(i).locator("input").is_checked()]
        choices.nth(unchecked[0]).click()
    elif kind in ("checkbox", "toggle"):
        widget.locator("label").first.click()
    else:
        widget.locator("[data-testid='stNumberInputStepUp']").click()
    return True


def _time_change(page, row: str, kind: str, label: str) -> float | None:
    """Change the widget and return the seconds to the script finished in the browser; None if it cannot be changed."""
    from playwright.sync_api import Error as PlaywrightError

    _wait_idle(page)
    page.evaluate(_OBSERVE)
    try:
        found = _change(page, kind, label)
    except PlaywrightError as exc:
        page.screenshot(path=str(Path(tempfile.gettempdir()) / f"bench_pages_{row.replace('/', '_').replace(' ', '')}.png"))
        print(f"{row}: could not change it: {str(exc).splitlines()[0]}", file=sys.stderr)
        found = False
    if not found:
        return None
    page.wait_for_function(_FINISHED, timeout=600_000)
    elapsed = page.evaluate(_ELAPSED)
    _breakdowns.setdefault(row, []).append(page.evaluate(_BREAKDOWN))
    return elapsed


_breakdowns: dict[str, list[dict]] = {}


def _median_of(row: str, key: str) -> float | None:
    values = [b[key] for b in _breakdowns.get(row, []) if b.get(key) is not None]
    return statistics.median(values) if values else None


def _wait_idle(page) -> None:
    page.wait_for_selector("[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=600_000)
    page.wait_for_selector("[data-testid='stMain'] [data-testid='stElementContainer']", timeout=600_000)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=600_000)


def url_paths(only: str | None) -> list[tuple[str, str]]:
    """(page file, URL path) of every page, as ``st.navigation`` names them (the file's stem)."""
    from bench.bench_pages import pages

    return [(f"{p.parent.name}/{p.stem}", "/" if p.stem == "home" else f"/{p.stem}") for p in pages(only)]


def run(db: str | Path, runs: int = 3, only: str | None = None, printer=print) -> list[dict]:
    from playwright.sync_api import sync_playwright

    from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, Server

    os.environ["CRM_DB"] = str(db)  # AppTest (which widget to change) reads the same store
    os.environ.setdefault("CRM_NO_SAMPLE", "1")
    targets = url_paths(only)
    widgets = {name: apptest_widget(f"pages/{name}.py") for name, _ in targets}
    firsts: dict[str, list[float]] = {name: [] for name, _ in targets}
    reruns: dict[str, list[float]] = {name: [] for name, _ in targets}
    changed: dict[str, str] = {}
    peaks: list[float] = []
    env = {"CRM_DB": str(db), "CRM_NO_SAMPLE": "1"}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                server = Server(Path(tmp), env=env)
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    page.add_init_script(_TRACE)
                    page.goto(server.url + "/")  # the first script of a fresh server (see tests/e2e/browser.goto)
                    _wait_idle(page)
                    for name, path in targets:
                        t = time.perf_counter()
                        page.goto(server.url + path)
                        _wait_idle(page)
                        firsts[name].append(time.perf_counter() - t)
                        for row, widget in ((name, widgets[name]), *((f"{name} ·{lb}", (k, lb)) for k, lb in ALSO.get(name, []))):
                            if widget is None:
                                changed[row] = "（変更できる部品なし）"
                                continue
                            kind, label = widget
                            print(f"{row}: {kind}「{label}」", file=sys.stderr, flush=True)
                            elapsed = _time_change(page, row, kind, label)
                            if elapsed is not None:
                                reruns.setdefault(row, []).append(elapsed)
                            changed[row] = f"{kind}「{label}」" + ("" if elapsed is not None else "がブラウザで見つからない")
                    page.close()
                    peaks.append(_peak_mb(server.proc.pid))
                finally:
                    server.stop()
        browser.close()
    rows = []
    printer(f"{'page (Chromium)':32s} {'visit':>8s} {'rerun':>8s}  rerun≤{RERUN_TARGET * 1000:.0f}ms  "
            "widget changed; in the browser: request sent after the click, long tasks (drawing); load")
    for name in [row for n, _ in targets for row in (n, *(f"{n} ·{lb}" for _, lb in ALSO.get(n, [])))]:
        first = statistics.median(firsts[name]) if firsts.get(name) else None
        rerun = statistics.median(reruns[name]) if reruns.get(name) else None
        row = {"page": name, "first": first, "rerun": rerun, "changed": changed.get(name, "—"),
               "load": os.getloadavg()[0]}
        rows.append(row)
        shown_first = f"{first:7.2f}s" if first is not None else "      —"
        shown_rerun = f"{rerun * 1000:6.0f}ms" if rerun is not None else "      —"
        ok = "—" if rerun is None else "ok" if rerun <= RERUN_TARGET else "NG"
        row["sent"], row["long_tasks"] = _median_of(name, "sent"), _median_of(name, "long_tasks")
        browser_part = ("" if row["sent"] is None else
                        f"; sent +{row['sent'] * 1000:.0f} ms, long tasks {row['long_tasks'] * 1000:.0f} ms")
        printer(f"{name:32s} {shown_first} {shown_rerun}  {ok:13s} {row['changed']}{browser_part}; load {row['load']:.1f}")
    printer(f"peak memory of the console's server process (every page above): {max(peaks, default=0):,.0f} MB (target < 2,048 MB)")
    return rows


def _peak_mb(pid: int) -> float:
    """The process's peak resident memory (``VmHWM``), in MB (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="the store (a copy is fine; pages only read, except the caches)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--page", default=None, help="only pages whose file name contains this")
    args = parser.parse_args(argv)
    run(args.db, args.runs, args.page)


if __name__ == "__main__":
    main()
