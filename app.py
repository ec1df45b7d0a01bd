"""CRM marketing console — entry point: navigation, shared sidebar, session defaults.

Run with ``streamlit run app.py``.  Pages live in ``pages/`` and are
registered explicitly with ``st.navigation`` (the order and Japanese titles
below are the menu).  On first start with an empty store the fictional
sample shop is loaded so every page has something to show
(``CRM_NO_SAMPLE=1`` turns that off).
"""

from __future__ import annotations

import hmac
import os

import streamlit as st

from crm_core.analytics import overview
from pages import ui

st.set_page_config(page_title="リピートCRMコンソール", page_icon="🛍️", layout="wide")

# Session state shared by pages (page-local keys carry the page's prefix; "keep:<widget key>"
# holds a widget's value across page switches, see pages/ui/session.py).
SESSION_DEFAULTS: dict[str, object] = {
    "signed_in": False,  # True after the optional password gate
}
for key, value in SESSION_DEFAULTS.items():
    st.session_state.setdefault(key, value)


def _secret(name: str) -> str | None:
    try:
        value = st.secrets.get(name)
    except Exception:  # noqa: BLE001 - no secrets.toml is a normal state
        value = None
    return value or os.environ.get(name)


def sign_in_gate() -> None:
    """Ask for the console password when ``CRM_PASSWORD`` is configured."""
    password = _secret("CRM_PASSWORD")
    if not password or st.session_state["signed_in"]:
        return
    st.title("リピートCRMコンソール")
    entered = st.text_input("パスワード", type="password", help="管理者から共有されたパスワードを入力してください。")
    if entered:
        if hmac.compare_digest(entered.encode(), password.encode()):
            st.session_state["signed_in"] = True
            st.rerun()
        st.error("パスワードが違います。")
    st.stop()


def ensure_sample() -> None:
    """On the very first start (empty store, sample never turned off) show the sample shop.

    The sample lives in its own DuckDB file beside the store
    (:mod:`crm_core.sample.store`); the shop's own store is never written to.
    """
    from crm_core.sample import store as sample_store

    real = ui.real_store()
    if os.environ.get("CRM_NO_SAMPLE") != "1" and sample_store.wants_first_sample(real) and not sample_store.showing_sample(real):
        sample_store.show_sample(real)
    if not ui.viewing_sample():
        return
    store = ui.store()
    if not store.is_empty():
        return
    from crm_core.sample.load import load_sample

    with st.status("サンプルショップのデータを準備しています…（あなたのデータとは別のファイルです）", expanded=True) as status:
        bar = st.progress(0.0)
        ui.run(load_sample, store, progress=lambda f, t: bar.progress(f, text=t))
        status.update(label="サンプルショップを読み込みました。", state="complete", expanded=False)


def finish_pending_refresh() -> None:
    """Finish the refresh of an import whose process was stopped before it ended (issue 11)."""
    from crm_core import pipeline

    due = [s for s in {id(x): x for x in (ui.real_store(), ui.store())}.values() if pipeline.refresh_due(s)]
    if not due:
        return
    with st.status("前回中断された取り込みの仕上げ（顧客分析の更新）を行っています…", expanded=True) as status:
        bar = st.progress(0.0)
        for store in due:
            ui.run(pipeline.finish_pending, store, lambda f, t: bar.progress(min(max(f, 0.0), 1.0), text=t))
        status.update(label="前回の取り込みの仕上げが終わりました。", state="complete", expanded=False)


HERE = os.path.dirname(os.path.abspath(__file__))
# Menu: section -> (file, Japanese title, icon).  The first page is the default.
# Page scripts live in sub-folders of pages/: Streamlit treats *.py files directly
# in pages/ as "v1" pages that a first request could open without this shell
# (skipping the password gate and the sidebar), so none are placed there.
MENU: dict[str, list[tuple[str, str, str]]] = {
    "": [("pages/start/home.py", "ホーム", "🏠")],
    "データ": [
        ("pages/data/import_data.py", "データ取込", "📥"),
        ("pages/jobs/history.py", "ジョブ履歴", "🗂️"),
    ],
    "分析": [("pages/analysis/analytics.py", "顧客分析", "📊")],
    "施策": [
        ("pages/audience/segments.py", "セグメント", "🎯"),
        ("pages/messages/messages.py", "メッセージ・クーポン", "✉️"),
        ("pages/automation/scenarios.py", "シナリオ（ステップ配信）", "🔁"),
        ("pages/plan/calendar.py", "販促カレンダー", "📅"),
        ("pages/results/results.py", "施策の効果", "📈"),
    ],
    "設定": [
        ("pages/shop/shop_info.py", "ショップ情報", "🏪"),
        ("pages/settings/settings.py", "送信設定", "⚙️"),
        ("pages/settings/model_settings.py", "RFM・ランクの基準", "🧮"),
    ],
}


def build_pages() -> dict[str, list[st.Page]]:
    """``st.navigation`` input from :data:`MENU`."""
    pages: dict[str, list[st.Page]] = {}
    first = True
    for section, entries in MENU.items():
        for path, title, icon in entries:
            if not os.path.exists(os.path.join(HERE, path)):
                continue  # a page still being built is simply not in the menu
            pages.setdefault(section, []).append(st.Page(path, title=title, icon=icon, default=first))
            first = False
    return pages


def sidebar(holder) -> None:
    """The shop's counts in the sidebar (the same definitions as the home page: non-cancelled orders)."""
    store = ui.store()
    with holder.container():
        if store.read_only and not store.path.endswith(".snapshot"):  # a snapshot during an import says so itself
            st.warning("データベースファイルが読み取り専用のため、閲覧だけできます。取り込みや設定の変更は保存されません。", icon="🔒")
        if store.is_empty():
            st.caption("データ未登録")
            return
        customers, orders, last = overview.sidebar_counts(store)
        st.caption(f"顧客 {ui.count(customers, '人')} ・ 注文 {ui.count(orders, '件')}")
        st.caption(f"最終注文日 {ui.jdate(last)}")
        if store.get_setting("sample_loaded", False):
            st.caption("🧪 架空のサンプルショップを表示中（あなたのデータとは別のファイルです）")


# The store is opened for this run only (see pages/ui.store): other processes
# (command-line imports, the worker) take their turns between runs.
with ui.store_session():
    sign_in_gate()
    page = st.navigation(build_pages())
    ensure_sample()
    finish_pending_refresh()
    # The sidebar's counts are drawn before the page and drawn again after it, so an import or a deletion
    # made on this run shows at once (a page that stops early with st.stop keeps the first drawing).
    holder = st.sidebar.empty()
    sidebar(holder)
    ui.page_chrome(st.sidebar)
    page.run()
    sidebar(holder)
