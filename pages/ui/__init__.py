"""Shared UI helpers for the pages: the store, formatting, error display.

Pages stay thin: read widgets, call ``crm_core``, render with these helpers.
Session-state keys used across pages are initialised in ``app.py``
(see ``SESSION_DEFAULTS`` there); page-local keys carry the page's prefix.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from crm_core import access, jp, shops
from crm_core.db import WAIT_MESSAGE, Store, StoreBusy, default_wait, snapshot_path, someone_waits, store_is_busy
from crm_core.errors import InputError

log = logging.getLogger("crm_console")
T = TypeVar("T")


_run = threading.local()


READ_ONLY_NOTICE = (
    "データの取込中です。取込を始める前の内容を表示しています（この間は保存できません）。"
    "取込が終わってからページを開き直すと最新の内容になります。"
)


_startup_frozen = False


def freeze_startup_objects() -> None:
    """Once per process: move what the imports created into the garbage collector's permanent generation.

    Streamlit runs a full garbage collection after every page run (``runner.postScriptGC``); with pandas,
    DuckDB, Altair and the console's modules loaded that walk over every object took ≈ 45–65 ms of each
    rerun, during which the browser still shows the page as running.  Objects that exist before the first
    page run are modules, classes and their tables, which live as long as the process anyway; freezing
    them (``gc.freeze``, after one collection) leaves the per-run collection only the objects runs create.
    """
    global _startup_frozen
    if _startup_frozen:
        return
    import gc

    import altair  # noqa: F401 - the charts' schema tables, the biggest of them, are frozen with the rest
    import pandas  # noqa: F401

    gc.collect()
    gc.freeze()
    _startup_frozen = True


@st.cache_resource(show_spinner=False)
def _swept() -> bool:
    """Once per server: remove working folders left by imports that were killed."""
    from crm_core.tempfiles import sweep

    sweep()
    return True


KEEP_OPEN_ENV = "CRM_CONSOLE_KEEP_OPEN"
"""Seconds the console keeps a store open after a page run while nobody else waits for it (default 30; 0: never)."""


def keep_open_seconds() -> float:
    try:
        seconds = float(os.environ.get(KEEP_OPEN_ENV, "30"))
    except ValueError:
        return 30.0
    return max(seconds, 0.0) if math.isfinite(seconds) else 30.0


class _Kept:
    """A store kept open between page runs: how many runs use it now, since when nobody does."""

    def __init__(self, path: str, store: Store) -> None:
        self.path, self.store, self.users, self.idle_since = path, store, 1, 0.0


_kept: dict[str, _Kept] = {}
_kept_lock = threading.Lock()
_closer: threading.Thread | None = None


def _take_kept(path: str) -> Store | None:
    """The store of ``path`` kept open by an earlier run, now this run's too; None when there is none to take."""
    with _kept_lock:
        kept = _kept.get(path)
        if kept is None:
            return None
        if kept.users == 0 and someone_waits(path):  # a writer (an import, the worker) waits: its turn first
            _give_back(kept)
            return None
        kept.users += 1
        return kept.store


def _keep(path: str, store: Store) -> None:
    """Keep ``store`` (just opened for this run) open for later runs, until another process waits or it idles."""
    global _closer
    if store.read_only or keep_open_seconds() <= 0:
        return
    with _kept_lock:
        if path in _kept:  # another run kept its own meanwhile: this one is closed at this run's end
            return
        _kept[path] = _Kept(path, store)
        if _closer is None or not _closer.is_alive():
            _closer = threading.Thread(target=_close_when_wanted, name="crm-store-closer", daemon=True)
            _closer.start()


def _put_back(store: Store) -> bool:
    """At the end of a run: True when ``store`` is a kept one (closed now if another process waits); else False."""
    with _kept_lock:
        kept = next((k for k in _kept.values() if k.store is store), None)
        if kept is None:
            return False
        kept.users -= 1
        if kept.users == 0:
            kept.idle_since = time.monotonic()
            if someone_waits(kept.path) or keep_open_seconds() <= 0:
                _give_back(kept)
        return True


def _give_back(kept: _Kept) -> None:
    """Close a kept store nobody uses (with ``_kept_lock`` held): the file and the writers' turn are free again."""
    _kept.pop(kept.path, None)
    try:
        kept.store.close()
    except Exception:  # noqa: BLE001 - closing must not stop the closer; the next run opens the file again
        log.exception("closing a kept store failed")


def _close_when_wanted() -> None:
    """The closer: every 50 ms, give back each kept store nobody uses when another process waits or it idled;
    it ends when nothing is kept (:func:`_keep` starts it again)."""
    global _closer
    while True:
        time.sleep(0.05)
        with _kept_lock:
            now, limit = time.monotonic(), keep_open_seconds()
            for kept in list(_kept.values()):
                if kept.users == 0 and (someone_waits(kept.path) or now - kept.idle_since >= limit):
                    _give_back(kept)
            if not _kept:
                _closer = None
                return


def release_kept_stores() -> None:
    """Close every kept store nobody uses now (tests; a process about to hand the files to another)."""
    with _kept_lock:
        for kept in list(_kept.values()):
            if kept.users == 0:
                _give_back(kept)


def _open_for_run(path: str) -> Store:
    """Open the store file ``path`` for this page run.

    The store a run opens stays open after it (:data:`KEEP_OPEN_ENV` seconds, 30) for the next runs, which
    then skip opening the file and read DuckDB's warm cache; it is closed within 50 ms of another process
    (a command-line import or command, the worker) starting to wait for the turn
    (:func:`crm_core.db.someone_waits`), and after a run that ends while one waits.
    While another process writes: if it is a long write (an import) that
    published a snapshot, read the snapshot (read-only, with a notice);
    otherwise wait for the turn with a spinner.  When the file cannot be
    opened at all (a program outside the console holds it, no permission, …)
    the page says why in Japanese and stops; the next rerun tries again.
    """
    _swept()
    kept = _take_kept(path)
    if kept is not None:
        return kept
    _let_the_waiting_go_first(path)
    opened = _open_store(path)
    if not opened.path.endswith(".snapshot"):
        _keep(path, opened)
    return opened


def _let_the_waiting_go_first(path: str, limit: float = 0.5) -> None:
    """When another process waits for the store (the console has just given it back), let it take the turn before
    this run asks: it polls every 50 ms, and a run opening the file at once would win and make it wait a whole run.
    Returns once it holds the turn (this run then reads the snapshot or waits with the spinner), its signal went
    stale, or after ``limit`` seconds (a reader waiting for the readers' gate holds no writer's turn)."""
    deadline = time.monotonic() + limit
    while someone_waits(path) and not store_is_busy(path) and time.monotonic() < deadline:
        time.sleep(0.02)


def _open_store(path: str) -> Store:
    try:
        try:
            return Store(path, wait=0)
        except StoreBusy:
            pass
        snap = _snapshot_store(path)
        if snap is not None:
            return snap
        with st.spinner(WAIT_MESSAGE):
            # A writer that has just taken its turn publishes its snapshot a moment later (checkpoint and copy):
            # look for it between short waits instead of waiting for the whole write.
            limit = default_wait()
            deadline = time.monotonic() + limit
            while True:
                try:
                    return Store(path, wait=min(0.5, max(deadline - time.monotonic(), 0)))
                except StoreBusy:
                    snap = _snapshot_store(path)
                    if snap is not None:
                        return snap
                    if time.monotonic() >= deadline:
                        raise StoreBusy(limit) from None
    except InputError as exc:  # StoreBusy after the wait, or a machine failure
        st.error(exc.message, icon="⚠️")
        st.stop()
    raise AssertionError("unreachable")  # pragma: no cover


def _snapshot_store(path: str) -> Store | None:
    """The snapshot a long writer of ``path`` published, opened read-only with the notice; None when there is none."""
    snap = snapshot_path(path)
    if not snap.exists():
        return None
    try:
        s = Store(snap, read_only=True, wait=2)
        s.cursor()
    except Exception:  # noqa: BLE001 - replaced or removed meanwhile: wait for the store instead
        log.info("snapshot not readable, waiting for the store")
        return None
    st.info(READ_ONLY_NOTICE, icon="⏳")
    return s


def _run_store(path: str) -> Store:
    """The store of ``path`` for this page run (opened once per run, closed by :func:`store_session`)."""
    opened = getattr(_run, "stores", None)
    if opened is None:
        opened = _run.stores = {}
    s = opened.get(path)
    if s is None:
        s = opened[path] = _open_for_run(path)
    return s


def shop_store(name: str) -> Store:
    """The store of shop ``name`` for this page run (``""``: the default store ``data/crm.duckdb``)."""
    return _run_store(str(shops.db_path(name)))


def current_shop() -> str:
    """The shop chosen in the sidebar (``""`` for the default store)."""
    return st.session_state.get("shop", shops.DEFAULT)


def real_store() -> Store:
    """The current shop's own store for this page run (imports always go here, never into the sample's file)."""
    return shop_store(current_shop())


def current_user() -> access.User | None:
    """Who is signed in, with their role in the current shop (set by ``app.py``; None before sign-in)."""
    return st.session_state.get("auth_user")


def allowed(action: str) -> bool:
    """True when the signed-in user may do ``action`` (for showing or hiding controls; the check is :func:`run`'s)."""
    return access.can(current_user(), action)


def store() -> Store:
    """The store the console shows: the shop's own, or the sample shop's own file while it is shown.

    Taken at first use in a page run and given back by :func:`store_session` at its end: kept open for
    the next runs only while no other process waits for it (see :func:`_open_for_run`), so a command-line
    import or the worker takes its turn between runs, within 50 ms of asking while nobody clicks.
    """
    from crm_core.sample import store as sample_store

    real = real_store()
    if sample_store.showing_sample(real):
        path = sample_store.sample_path(real.path)
        if path is not None:
            return _run_store(str(path))
    return real


@contextmanager
def store_session() -> Iterator[None]:
    """Wrap one page run (``app.py``) or a fragment's own run: the stores it opened are closed when it ends.

    Inside a run already wrapped (a fragment drawn by its page run) it does nothing: the outer run closes them.
    """
    if getattr(_run, "session", False):
        yield
        return
    _run.session = True
    try:
        yield
    finally:
        _run.session = False
        opened = getattr(_run, "stores", None) or {}
        _run.stores = None
        for s in opened.values():
            if not _put_back(s):
                s.close()


F = TypeVar("F", bound=Callable[..., None])
FRAGMENT_CHECK = "fragment_check"
"""Session key of the check ``app.py`` leaves for a fragment's own reruns: the role read again, the page's action."""


def fragment(fn: F) -> F:
    """A part of a page that reruns on its own when one of its widgets changes (``st.fragment``).

    Its own reruns happen outside ``app.py``'s page run, so they open and close the store themselves (as a
    page run does); drawn by the page run, it uses that run's store.  The part must take the store from
    :func:`store` inside, never from the page's variable: that one is closed once the page run ends, and
    using it would open the file again and keep it, so the worker and command-line imports would wait.
    A fragment's own rerun skips ``app.py``, which reads the signed-in person's role on every page run: it runs
    the check ``app.py`` left in the session (:data:`FRAGMENT_CHECK`) first, so a person removed or demoted
    meanwhile is refused before anything is saved.  Writes go through :func:`run` (the role, the audit log); a
    button that changes what the rest of the page shows ends with ``st.rerun()`` (the whole page).
    """

    @functools.wraps(fn)
    def part(*args: Any, **kwargs: Any) -> None:
        own_run = not getattr(_run, "session", False)
        with store_session():
            check = st.session_state.get(FRAGMENT_CHECK) if own_run else None
            if check is not None:
                check()
            fn(*args, **kwargs)

    return st.fragment(part)  # type: ignore[return-value]


def viewing_sample() -> bool:
    """True while the console shows the sample shop instead of the shop's own data."""
    return store() is not real_store()


def data_version() -> tuple[str, int, str]:
    """A key that changes whenever an import or a rebuild of the customer model changes the data.

    Use it as an argument of ``st.cache_data`` functions so cached results
    are keyed by the data they were computed from.  Rebuilds without an
    import (new RFM or rank settings, corrected sale dates) count too.
    """
    from crm_core import pipeline

    s = store()
    return (s.path, *pipeline.data_version(s))  # the path: the sample's file and the shop's never share a cache entry


@st.cache_data(ttl=900, max_entries=16, show_spinner="粗利を集計しています…")
def _shop_profit(db: str, version: tuple, costs_version: tuple) -> dict[str, Any]:
    from crm_core.analytics import summaries

    return summaries.get(store(), "profit_overview", version[1:])  # stored by the refresh when current


def shop_profit(s: Store) -> dict[str, Any]:
    """The shop's gross profit overview (every order line against the costs), once per data and costs version."""
    from crm_core.ingest import products

    return run(_shop_profit, str(s.path), data_version(), run(products.costs_version, s))


def audit(action: str, detail: str = "") -> None:
    """Write ``action`` by the signed-in user to the shop's audit log (``detail``: never customer data)."""
    if not real_store().read_only:  # a read-only store refused the change itself already
        access.audit(real_store(), current_user(), action, detail)


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call into ``crm_core``; show an ``InputError`` in Japanese and stop.

    A function that changes the shop (see ``crm_core.access.FUNCTION_ACTIONS``) runs
    only when the signed-in user's role allows it, and is written to the shop's audit
    log with the user's address.  Unexpected errors are logged (without customer data)
    and shown as a short Japanese apology instead of a traceback.
    """
    try:
        action = access.action_for(fn)
        if action is None:
            return fn(*args, **kwargs)
        user = current_user()
        access.require(user, action)
        result = fn(*args, **kwargs)
        audit(action, getattr(fn, "__qualname__", ""))
        return result
    except InputError as exc:
        st.error(exc.message, icon="⚠️")
        st.stop()
    except Exception as exc:  # noqa: BLE001 - the last line of defence for the UI
        from crm_core.failures import translate  # (a write to an import's snapshot arrives as a StorageError already)

        problem = translate(exc, shops.db_path(current_shop()))
        if problem is not None:  # the machine failed (disk full, read-only store, …): say so
            log.warning("storage failure in %s: %s", getattr(fn, "__name__", fn), problem.detail)
            st.error(problem.message, icon="⚠️")
            st.stop()
        # Log where it failed, not the message: messages can quote customer data.
        log.error(
            "unexpected %s in %s\n%s",
            type(exc).__name__,
            getattr(fn, "__name__", fn),
            "".join(traceback.format_tb(exc.__traceback__)),
        )
        st.error(
            "予期しないエラーが発生しました。入力内容を確認して、もう一度お試しください。"
            "解決しない場合は管理者にお問い合わせください。",
            icon="🚨",
        )
        st.stop()
    raise AssertionError("unreachable")  # pragma: no cover


# Formatting lives in crm_core.jp (one module for every page, message and export);
# the short names stay here because every page calls ui.yen(...), ui.pct(...).
yen = jp.yen
count = jp.count
pct = jp.pct
points = jp.points
days = jp.days
times = jp.times
jdate = jp.jdate
encoding_label = jp.encoding_label

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md(text: Any) -> str:
    """Text shown literally inside Markdown: names typed by users (segments, ranks) are never markup.

    Streamlit renders Markdown in messages, captions and widget labels, where
    ``![x](https://…)`` would fetch an image from outside; escaping every
    Markdown character shows the name as typed.
    """
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def count_columns(df: pd.DataFrame, *columns: str) -> dict[str, Any]:
    """``column_config`` showing whole counts with separators (1,234): Streamlit shows plain 1234 otherwise.

    Without ``columns``, every integer column of ``df``.
    """
    names = columns or tuple(c for c in df.columns if pd.api.types.is_integer_dtype(df[c]))
    return {c: st.column_config.NumberColumn(c, format="localized") for c in names if c in df.columns}


def yen_column(label: str, **kwargs: Any) -> Any:
    """A table column of yen amounts: numbers with separators under a header that says 円.

    Streamlit's ``format="yen"`` follows the browser's locale (``￥`` in Japanese
    browsers, ``¥`` elsewhere, ``-￥`` for negatives); a plain localized number under
    「（円）」 stays sortable and shows one way everywhere.
    """
    return st.column_config.NumberColumn(label if "円" in label else f"{label}（円）", format="localized", **kwargs)


def dataframe(data: Any = None, **kwargs: Any) -> Any:
    """``st.dataframe`` whose empty cells read ``—`` (Streamlit writes a grey 「None」, which reads as a fault)."""
    kwargs.setdefault("placeholder", jp.DASH)
    return st.dataframe(data, **kwargs)


def data_editor(data: Any, **kwargs: Any) -> Any:
    """``st.data_editor`` whose empty cells read ``—``, as in :func:`dataframe` (an edited cell shows its value)."""
    kwargs.setdefault("placeholder", jp.DASH)
    return st.data_editor(data, **kwargs)


def csv_bytes(df: pd.DataFrame, encoding: str = "utf-8-sig") -> bytes:
    """A DataFrame as CSV that Excel opens (UTF-8 with BOM by default)."""
    from crm_core.export import to_csv_bytes

    return to_csv_bytes(df, encoding=encoding)


def download_data(make: Callable[..., T], s: Store, *args: Any) -> Callable[[], T]:
    """The ``data`` of an ``st.download_button`` made when the button is pressed: ``make(store, *args)`` on its own
    opening of the store (``s``'s file and mode), closed right after.

    Streamlit calls it outside any page run, after :func:`store_session` closed the run's stores: ``s`` itself would
    open the file again and keep it (with the writers' turn) until the session ends, so the worker and command-line
    imports would wait for a marketer's download.
    """
    path, read_only = s.path, s.read_only

    def build() -> T:
        with Store(path, read_only=read_only, wait=default_wait()) as own:
            return make(own, *args)

    return build


def empty_state(message: str) -> None:
    """An explanatory empty state (never a blank chart)."""
    st.info(message, icon="ℹ️")


def require_data() -> Store:
    """The store, or an explanation and a stop when nothing is imported yet."""
    s = store()
    if s.is_empty():
        empty_state(
            "まだ注文データがありません。「データ取込」ページで楽天RMSやShopifyの注文CSVを"
            "アップロードするか、サンプルショップを読み込んでください。"
        )
        st.page_link("pages/data/import_data.py", label="データ取込へ", icon="📥")
        st.stop()
    return s


REACH_FIX_LINKS = {
    "import": ("pages/data/import_data.py", "データ取込へ（顧客リスト・LINE友だちの一覧・注文CSV）", "📥"),
    "segment": ("pages/audience/segments.py", "セグメントへ（条件を見直す）", "🎯"),
}
"""Where the fix of a :class:`crm_core.planning.planner.ReachNote` is (its ``fix`` key → page, label, icon)."""


@st.cache_data(ttl=600, max_entries=64, show_spinner=False)
def _explain_reach(db: str, version: tuple, channel: str, segment: Any, rule: Any) -> Any:
    from crm_core.audience.reach import explain_reach as explain

    return explain(store(), channel, segment)


def explain_reach(s: Store, channel: str, segment: Any = None) -> Any:
    """:func:`crm_core.audience.reach.explain_reach`, kept per data version, channel and the rule the segment
    stands for (it counts every customer of the model; pages ask it on every rerun)."""
    from crm_core.audience import references
    from crm_core.results import campaigns

    rule = run(references.resolve, s, segment)  # a saved segment edited since: another key
    version = (data_version(), *run(campaigns.results_version, s))  # a rule may refer to campaigns
    return run(_explain_reach, str(s.path), version, channel, segment, rule)


@st.cache_data(ttl=900, max_entries=64, show_spinner=False)
def _chart_spec(builder: str, args: tuple, _build: Callable[..., Any]) -> dict[str, Any] | None:
    """The Vega-Lite spec (data as Arrow) that ``st.altair_chart`` would send for ``_build(*args)``.

    Keyed by the builder's name and the arguments' contents (the frames drawn), so new data, an
    edited event or another threshold is another entry; building and validating an Altair chart
    costs 0.05–0.2 s per chart, and a rerun that did not change a chart's data reuses it.
    """
    from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec

    chart = _build(*args)
    if chart is None or isinstance(chart, dict):  # nothing to draw, or already a spec with its datasets (frames)
        return chart
    # Streamlit calls chart.to_dict(), which validates the whole spec against Vega-Lite's JSON schema: 40 % of the
    # conversion (25 ms of the calendar's 58).  Each builder's spec is validated by its tests instead (to_dict() in
    # tests/analytics/test_charts.py, tests/events/test_calendar.py, …; st.altair_chart in tests/pages/test_ui_charts.py);
    # the spec is the same either way.
    object.__setattr__(chart, "to_dict", functools.partial(chart.to_dict, validate=False))
    return _convert_altair_to_vega_lite_spec(chart)


def altair_chart(build: Callable[..., Any], *args: Any, width: Any = "stretch") -> bool:
    """Draw ``build(*args)`` (an Altair chart, a Vega-Lite spec dict with its ``datasets``, or None for nothing to draw)
    as ``st.altair_chart`` / ``st.vega_lite_chart`` would, building it only when the arguments changed; returns whether
    a chart was drawn.

    ``build`` must depend on its arguments only (pass the frames, not the store).
    """
    spec = run(_chart_spec, f"{build.__module__}.{build.__qualname__}", args, build)
    if spec is None:
        return False
    st.vega_lite_chart(spec=spec, width=width)
    return True


def reach_note(note: Any, lead: str = "", key: str | None = None) -> bool:
    """Explain a channel that reaches nobody (reason + a link to the fix); False when it reaches someone.

    ``note`` is a :class:`crm_core.planning.planner.ReachNote`; ``lead`` is put before
    the reason (e.g. 「LINEで届くお客様が0人です。」).
    """
    if note.reachable or not note.reason:
        return False
    st.warning(lead + note.reason, icon="📭")
    if note.fix in REACH_FIX_LINKS:
        page, label, icon = REACH_FIX_LINKS[note.fix]
        st.page_link(page, label=label, icon=icon)
    return True


PAGE_STYLE = """<style>
/* Japanese titles break between phrases, not inside a word (needs lang="ja", set below). */
h1, h2, h3, h4, [data-testid="stMetricLabel"], [data-testid="stSidebar"] [data-testid="stCaptionContainer"] {
  word-break: auto-phrase;
}
/* The menu button on a phone says what it is, not only an arrow icon. */
[data-testid="stExpandSidebarButton"]::after { content: "メニュー"; font-size: 0.875rem; margin-left: 0.25rem; }
[data-testid="stExpandSidebarButton"] { width: auto; padding-right: 0.5rem; }
</style>"""
"""CSS every page gets (see :func:`page_chrome`)."""

PAGE_SCRIPT = """<script>
(() => {
  const doc = window.parent ? window.parent.document : document;
  const apply = () => {
    doc.documentElement.lang = "ja";
    const menu = doc.querySelector('[data-testid="stExpandSidebarButton"]');
    if (menu) { menu.setAttribute("aria-label", "メニューを開く"); menu.setAttribute("title", "メニューを開く"); }
    const close = doc.querySelector('[data-testid="stSidebarCollapseButton"] button');
    if (close) { close.setAttribute("aria-label", "メニューを閉じる"); }
  };
  apply();
  if (!doc.documentElement.dataset.crmChrome) {
    doc.documentElement.dataset.crmChrome = "1";
    new MutationObserver(apply).observe(doc.body, {childList: true, subtree: true});
  }
})();
</script>"""
"""The page is Japanese (lang="ja": phrase-aware line breaks, Japanese glyphs, screen readers) and the menu
buttons are labelled in Japanese."""


def page_chrome(holder: Any = None) -> None:
    """Page-wide style and labels: called once per run by ``app.py``.

    The style goes to Streamlit's event container (no space on the page); the
    small script runs in a 1 px iframe in ``holder`` (the sidebar's end) and
    reaches the console's document as its same-origin parent.
    """
    st.html(PAGE_STYLE)
    # Our own fixed script in a same-origin iframe (st.iframe runs scripts of an HTML string), so that no
    # script is ever written into the page itself; 1 px high at the end of the sidebar.
    (holder or st).iframe(PAGE_SCRIPT, height=1)
