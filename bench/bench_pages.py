"""Every page's first render and its rerun after a widget change, on a store of real size (AppTest, not a browser).

For each page under ``pages/``: the console (``app.py``, so navigation and page links work) is
opened in a fresh ``AppTest``, Streamlit's caches are cleared and the page is shown (first render), then the first widget that can change (a select box with two or more options,
else a radio, a checkbox, a number input, a text input) is changed and the script reruns (rerun).
Medians over ``--runs`` rounds; the targets are a first render ≤ 1.5 s and a rerun ≤ 300 ms. The
peak memory of this process (the console's share: pages, caches and DuckDB in one process) is
printed at the end; the target is < 2 GB.

Usage::

    python bench/bench_pages.py --db /path/to/store.duckdb [--runs 3] [--page analytics]

The store must hold a customer model (``crm-console import`` or ``bench/run_all.py`` make one).
AppTest runs the page scripts in this process without a browser: the timings are of the Python
side (queries, pandas, Streamlit's element tree), not of drawing in a browser.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

FIRST_TARGET = 1.5
RERUN_TARGET = 0.3
RSS_TARGET_MB = 2048
HOME = "pages/start/home.py"  # app.py's default page


def pages(only: str | None = None) -> list[Path]:
    found = [p for p in sorted((ROOT / "pages").glob("*/*.py")) if p.name != "__init__.py" and p.parent.name != "ui"]
    return [p for p in found if not only or only in p.stem]


def _candidates(at) -> list[tuple[str, int]]:
    """Widgets that can change, in the order tried: select boxes, radios, checkboxes, numbers, toggles, texts.

    Widgets inside a form are left out: in a browser changing one does not rerun the page (only the
    form's submit button does), so it is no rerun a marketer waits for.
    """

    def changeable(w) -> bool:
        return not w.disabled and not getattr(w, "form_id", "")

    out = []
    out += [("selectbox", i) for i, w in enumerate(at.selectbox) if len(w.options) >= 2 and changeable(w)]
    out += [("radio", i) for i, w in enumerate(at.radio) if len(w.options) >= 2 and changeable(w)]
    out += [("checkbox", i) for i, w in enumerate(at.checkbox) if changeable(w)]
    out += [("number_input", i) for i, w in enumerate(at.number_input) if changeable(w)]
    out += [("toggle", i) for i, w in enumerate(at.toggle) if changeable(w)]
    out += [("text_input", i) for i, w in enumerate(at.text_input) if changeable(w)]
    return out


def _change(at, kind: str, i: int) -> str:
    w = getattr(at, kind)[i]
    if kind == "selectbox":
        w.select_index(1 if w.index in (0, None) else 0)
    elif kind == "radio":
        w.set_value(w.options[1] if w.index in (0, None) else w.options[0])
    elif kind in ("checkbox", "toggle"):
        w.set_value(not w.value)
    elif kind == "number_input":
        w.increment()
    else:
        w.input((w.value or "") + "a")
    return f"{kind}「{w.label}」"


def _problem(at) -> str | None:
    if not at.exception:
        return None
    return (at.exception[0].value or "exception").splitlines()[0][:120]


def measure(page: Path, runs: int) -> dict:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    firsts, reruns, changed, problems = [], [], None, []
    name = str(page.relative_to(ROOT))
    home = name == HOME

    def opened() -> AppTest:
        """The console (app.py: navigation, sidebar) showing ``page``, caches cleared before the page's render."""
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        if not home:
            at.run()
        st.cache_data.clear()
        st.cache_resource.clear()
        return at

    for _ in range(runs):
        at = opened()
        t = time.perf_counter()
        at.run() if home else at.switch_page(name).run()
        firsts.append(time.perf_counter() - t)
        if _problem(at):
            problems.append(_problem(at))
            break
        # A widget AppTest cannot set (some formatted select boxes) is skipped for the next one.
        rerun = None
        for kind, i in _candidates(at) or [("", -1)]:
            try:
                what = _change(at, kind, i) if kind else "（変更できる部品なし: そのまま再実行）"
                t = time.perf_counter()
                at.run()
                rerun = time.perf_counter() - t
                changed = what
                break
            except Exception:  # noqa: BLE001 - AppTest's own limits; try the next widget
                at = opened()
                at.run() if home else at.switch_page(name).run()
        if rerun is None:  # every changeable widget was one AppTest cannot set: a plain rerun instead
            changed = "（AppTestで変更できる部品なし: そのまま再実行）"
            t = time.perf_counter()
            at.run()
            rerun = time.perf_counter() - t
        reruns.append(rerun)
        if _problem(at):
            problems.append(_problem(at))
            break
    return {
        "page": f"{page.parent.name}/{page.stem}",
        "first": statistics.median(firsts) if firsts else None,
        "rerun": statistics.median(reruns) if reruns else None,
        "changed": changed or "—",
        "problems": problems,
        "load": os.getloadavg()[0],
    }


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(db: str | Path, runs: int = 3, only: str | None = None, printer=print) -> list[dict]:
    os.environ["CRM_DB"] = str(db)
    os.environ.setdefault("CRM_NO_SAMPLE", "1")
    from crm_core import pipeline
    from crm_core.db import Store

    store = Store(db)  # a refresh left pending would run inside the first page's render: finish it first
    t = time.perf_counter()
    if pipeline.finish_pending(store) is not None:
        printer(f"finished a pending refresh first (not timed as a page): {time.perf_counter() - t:.1f} s")
    store.close()
    rows = []
    printer(f"{'page (AppTest)':32s} {'first':>8s} {'rerun':>8s}  first≤{FIRST_TARGET}s rerun≤{RERUN_TARGET * 1000:.0f}ms  "
            "widget changed; load")
    for page in pages(only):
        r = measure(page, runs)
        rows.append(r)
        first = f"{r['first']:7.2f}s" if r["first"] is not None else "      —"
        rerun = f"{r['rerun'] * 1000:6.0f}ms" if r["rerun"] is not None else "      —"
        ok = ("ok " if (r["first"] or 99) <= FIRST_TARGET else "NG ") + ("ok" if (r["rerun"] or 99) <= RERUN_TARGET else "NG")
        printer(f"{r['page']:32s} {first} {rerun}  {ok:24s} {r['changed']}; load {r['load']:.1f}"
                + (f"; {r['problems']}" if r["problems"] else ""))
    printer(f"peak memory of this process (pages + caches + DuckDB): {rss_mb():,.0f} MB (target < {RSS_TARGET_MB:,} MB)")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="the store (a copy is fine; pages only read, except the caches)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--page", default=None, help="only pages whose file name contains this")
    args = parser.parse_args(argv)
    run(args.db, args.runs, args.page)


if __name__ == "__main__":
    main()
