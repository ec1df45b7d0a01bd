"""CRM marketing console — entry point: navigation, shared sidebar, session defaults.

Run with ``streamlit run app.py`` (or ``streamlit run console.py``, which adds the
sign-in gate in front of every HTTP route).  Pages live in ``pages/`` and are
registered explicitly with ``st.navigation`` (the order and Japanese titles
below are the menu).  On first start with an empty store the fictional
sample shop is loaded so every page has something to show
(``CRM_NO_SAMPLE=1`` turns that off).

Sign-in, in this order: an ``[auth]`` section in ``secrets.toml`` turns on
OpenID Connect (``st.login`` / ``st.user`` / ``st.logout``; users and roles per shop,
see ``crm_core.access``); else ``CRM_PASSWORD`` asks for the one shared password
(the one person who knows it is 承認・管理); else nobody signs in (a private machine).
"""

from __future__ import annotations

import functools
import hmac
import os
import time

import streamlit as st

from crm_core import access, shops
from crm_core.analytics import summaries
from pages import ui
from pages.ui import gate, session

ui.freeze_startup_objects()  # once per process: the per-run garbage collection then skips the libraries' objects

st.set_page_config(page_title="リピートCRMコンソール", page_icon="🛍️", layout="wide")

# Session state shared by pages (page-local keys carry the page's prefix; "keep:<widget key>"
# holds a widget's value across page switches, see pages/ui/session.py).
SESSION_DEFAULTS: dict[str, object] = {
    "signed_in": False,  # True after the optional password gate
    "shop": shops.DEFAULT,  # the shop chosen in the sidebar ("" = data/crm.duckdb)
    "auth_user": None,  # access.User: who is signed in and their role in the current shop
}
# Kept when the shop changes; everything else in the session belongs to one shop and is cleared.
SHOP_INDEPENDENT = ("signed_in", "shop", "shop_select", "auth_user")
for key, value in SESSION_DEFAULTS.items():
    st.session_state.setdefault(key, value)
session.remember_arrived()  # a field left by a click on another tab or page: its text arrives with this run


def _secret(name: str) -> str | None:
    try:
        value = st.secrets.get(name)
    except Exception:  # noqa: BLE001 - no secrets.toml is a normal state
        value = None
    return value or os.environ.get(name)


def _auth_section() -> dict | None:
    try:
        section = st.secrets.get("auth")
    except Exception:  # noqa: BLE001 - no secrets.toml is a normal state
        return None
    return dict(section) if section else None


def _admin_emails() -> list[str]:
    return [a for a in (_secret("CRM_ADMIN_EMAILS") or "").split(",") if a.strip()]


def password_gate(password: str) -> None:
    """Ask for the one shared password (failed tries wait exponentially longer, per client and for everyone)."""
    if st.session_state["signed_in"] or gate.password_cookie_ok(st.context.cookies, password):
        st.session_state["signed_in"] = True
        return
    st.title("リピートCRMコンソール")
    entered = st.text_input("パスワード", type="password", help="管理者から共有されたパスワードを入力してください。")
    if entered:
        client = st.context.ip_address or "unknown"
        wait = gate.THROTTLE.wait_for(client)
        if 0 < wait <= 10:
            time.sleep(wait)  # a person who mistyped waits a moment; a guesser waits longer each time
            wait = gate.THROTTLE.wait_for(client)  # another failure meanwhile (parallel guesses) keeps it closed
        if wait > 0:
            st.error(f"ログインの失敗が続いたため、{int(wait) + 1}秒後にもう一度お試しください。", icon="⏳")
        elif hmac.compare_digest(entered.encode(), password.encode()):
            gate.THROTTLE.succeeded(client)
            st.session_state["signed_in"] = True
            st.rerun()
        else:
            gate.THROTTLE.failed(client)
            st.error("パスワードが違います。")
    st.stop()


def oidc_gate(auth: dict) -> None:
    """Sign in with the configured OpenID Connect provider(s) (``st.login``)."""
    if st.user.get("is_logged_in"):
        return
    st.title("リピートCRMコンソール")
    st.write("ご利用には、ショップで使っているアカウントでのログインが必要です。")
    providers = [name for name, value in auth.items() if isinstance(value, dict)]
    if not providers and st.button("ログイン", type="primary", key="login"):
        st.login()
    for name in providers:
        label = auth[name].get("label") or {"google": "Google", "microsoft": "Microsoft"}.get(name, name)
        if st.button(f"{label} でログイン", type="primary", key=f"login_{name}"):
            st.login(name)
    st.stop()


def who_is_signed_in() -> tuple[str, str] | None:
    """(e-mail, name) of the signed-in person with OIDC; None for the password or a private machine."""
    if _auth_section() is None:
        return None
    email = st.user.get("email")
    if not email:
        st.error("ログインしたアカウントにメールアドレスがありません。プロバイダーの設定（scope に email）を確認してください。")
        st.stop()
    return str(email), str(st.user.get("name") or "")


def sign_in_gate() -> None:
    """OIDC when ``[auth]`` is configured, else the shared password when ``CRM_PASSWORD`` is set, else open."""
    auth = _auth_section()
    if auth is not None:
        oidc_gate(auth)
        return
    password = _secret("CRM_PASSWORD")
    if password:
        password_gate(password)


def shop_member(shop: str, who: tuple[str, str] | None, claim: bool = True) -> access.User | None:
    """The signed-in person's role in ``shop`` (None when they have no access to it)."""
    if who is None:  # one-person install: whoever passed the password (or the private machine) manages it
        return access.User("password" if _secret("CRM_PASSWORD") else "local",
                           "共有パスワード" if _secret("CRM_PASSWORD") else "このパソコン", access.Role.ADMIN)
    store = ui.shop_store(shop)
    return ui.run(access.member, store, who[0], who[1], admin_emails=_admin_emails(), claim=claim)


def choose_shop(who: tuple[str, str] | None) -> None:
    """Sidebar shop choice (only shops the person may use); clears the session's shop data on a switch."""
    names = shops.list_shops()
    if not names:
        st.session_state["shop"] = shops.DEFAULT
        return
    options = [shops.DEFAULT, *names]
    if who is not None:
        options = [n for n in options if n == st.session_state["shop"] or shop_member(n, who, claim=False) is not None]
    current = st.session_state["shop"] if st.session_state["shop"] in options else options[0]
    chosen = st.sidebar.selectbox(
        "ショップ", options, index=options.index(current), key="shop_select",
        format_func=lambda n: n or "既定のショップ", help="ショップごとにデータ・設定・ユーザーが分かれています。",
    )
    if chosen != st.session_state["shop"]:
        for key in list(st.session_state.keys()):
            if key not in SHOP_INDEPENDENT:
                del st.session_state[key]
        st.session_state["shop"] = chosen
        st.session_state["auth_user"] = None


def resolve_user() -> access.User:
    """The signed-in person's role in the current shop (first sign-in is audited), or a refusal and a stop."""
    who = who_is_signed_in()
    choose_shop(who)
    shop = st.session_state["shop"]
    user = shop_member(shop, who)
    if user is not None and who is not None and st.session_state.get("auth_user") is None:
        ui.run(access.audit, ui.real_store(), user, "sign_in", f"shop={shop or 'default'}")
    st.session_state["auth_user"] = user
    if user is None:
        st.title("リピートCRMコンソール")
        st.error(f"{who[0]} には、このショップを利用する権限がありません。ショップの「承認・管理」の担当者に、"
                 "ユーザーとして追加してもらってください。", icon="🔒")
        if st.button("ログアウト"):
            st.logout()
        st.stop()
    return user


def current_member() -> access.User | None:
    """The signed-in person's role in the current shop as it is now, read again without any sign-in screen or
    record (None: not signed in, or no access to this shop any more)."""
    if _auth_section() is not None:
        email = st.user.get("email") if st.user.get("is_logged_in") else None
        if not email:
            return None
        who: tuple[str, str] | None = (str(email), str(st.user.get("name") or ""))
    elif _secret("CRM_PASSWORD") and not st.session_state["signed_in"]:
        return None
    else:
        who = None
    return shop_member(st.session_state["shop"], who, claim=False)


def recheck_user(action: str) -> None:
    """Before a fragment's own rerun (which skips this script): the role read again and the page's action required,
    as every page run does, so a person removed or demoted meanwhile cannot save from a part of a page left open."""
    user = current_member()
    st.session_state["auth_user"] = user
    ui.run(access.require, user, action)


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

    # A read-only store is another process's snapshot (an import or its refresh is running there) or a read-only
    # file: the refresh is that process's to finish, or nobody's.
    due = [s for s in {id(x): x for x in (ui.real_store(), ui.store())}.values() if not s.read_only and pipeline.refresh_due(s)]
    if not due:
        return
    with st.status("前回中断された取り込みの仕上げ（顧客分析の更新）を行っています…", expanded=True) as status:
        bar = st.progress(0.0)
        for store in due:
            ui.run(pipeline.finish_pending, store, lambda f, t: bar.progress(min(max(f, 0.0), 1.0), text=t))
        status.update(label="前回の取り込みの仕上げが終わりました。", state="complete", expanded=False)


HERE = os.path.dirname(os.path.abspath(__file__))
# Menu: section -> (file, Japanese title, icon).  The first page is the default.
# Who may open a page: PAGE_ACTIONS (crm_core.access decides; pages a role may not use are not in its menu).
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
        ("pages/send/live_send.py", "配信（本番送信）", "🚀"),
        ("pages/automation/scenarios.py", "シナリオ（ステップ配信）", "🔁"),
        ("pages/plan/calendar.py", "販促カレンダー", "📅"),
        ("pages/results/results.py", "施策の効果", "📈"),
    ],
    "設定": [
        ("pages/shop/shop_info.py", "ショップ情報", "🏪"),
        ("pages/settings/settings.py", "送信設定", "⚙️"),
        ("pages/settings/model_settings.py", "RFM・ランクの基準", "🧮"),
        ("pages/settings/users.py", "ユーザーと権限", "👥"),
    ],
}
PAGE_ACTIONS: dict[str, str] = {
    "pages/start/home.py": "analytics.view",
    "pages/data/import_data.py": "import",
    "pages/jobs/history.py": "import",
    "pages/analysis/analytics.py": "analytics.view",
    "pages/audience/segments.py": "segments.edit",
    "pages/messages/messages.py": "messages.edit",
    "pages/send/live_send.py": "live_send.prepare",
    "pages/automation/scenarios.py": "scenarios.edit",
    "pages/plan/calendar.py": "plans.edit",
    "pages/results/results.py": "results.view",
    "pages/shop/shop_info.py": "send_settings.edit",
    "pages/settings/settings.py": "send_settings.edit",
    "pages/settings/model_settings.py": "model.edit",
    "pages/settings/users.py": "users.manage",
}


PAGE_OF_URL: dict[str, str] = {}  # a page's url_path -> its action (filled by build_pages on each run)


def build_pages(user: access.User) -> dict[str, list[st.Page]]:
    """``st.navigation`` input from :data:`MENU`: the pages ``user``'s role may open."""
    pages: dict[str, list[st.Page]] = {}
    first = True
    for section, entries in MENU.items():
        for path, title, icon in entries:
            if not os.path.exists(os.path.join(HERE, path)):
                continue  # a page still being built is simply not in the menu
            action = PAGE_ACTIONS.get(path, "users.manage")  # a page nobody classified: 承認・管理 only
            if not access.can(user, action):
                continue
            entry = st.Page(path, title=title, icon=icon, default=first)
            PAGE_OF_URL[entry.url_path] = action
            if first:
                PAGE_OF_URL[""] = action
            pages.setdefault(section, []).append(entry)
            first = False
    return pages


def account(user: access.User) -> None:
    """Who is signed in and a sign-out, at the top of the sidebar."""
    with st.sidebar:
        if user.email not in ("local", "password"):
            st.caption(f"👤 {user.name}（{user.role.label}）")
            if st.button("ログアウト", key="logout"):
                st.logout()
        elif user.email == "password":
            if gate.COOKIE in st.context.cookies:  # signed in at the gate: its sign-out removes the cookie
                st.link_button("ログアウト", gate.SIGN_OUT_PATH)
            elif st.button("ログアウト", key="logout"):
                st.session_state["signed_in"] = False
                st.rerun()


@st.cache_data(ttl=600, max_entries=16, show_spinner=False)
def _sidebar_counts(db: str, version: tuple) -> tuple:
    """The counts scan every order (1.5 s at 5 M orders under load): stored by the refresh, else once per data version."""
    return summaries.get(ui.store(), "sidebar_counts", version[1:])


def sidebar(holder) -> None:
    """The shop's counts in the sidebar (the same definitions as the home page: non-cancelled orders)."""
    store = ui.store()
    with holder.container():
        if store.read_only and not store.path.endswith(".snapshot"):  # a snapshot during an import says so itself
            st.warning("データベースファイルが読み取り専用のため、閲覧だけできます。取り込みや設定の変更は保存されません。", icon="🔒")
        if store.is_empty():
            st.caption("データ未登録")
            return
        customers, orders, last = _sidebar_counts(str(store.path), ui.data_version())
        st.caption(f"顧客 {ui.count(customers, '人')} ・ 注文 {ui.count(orders, '件')}")
        st.caption(f"最終注文日 {ui.jdate(last)}")
        if store.get_setting("sample_loaded", False):
            st.caption("🧪 架空のサンプルショップを表示中（あなたのデータとは別のファイルです）")


# The store is opened for this run only (see pages/ui.store): other processes
# (command-line imports, the worker) take their turns between runs.
with ui.store_session():
    sign_in_gate()
    USER = resolve_user()
    page = st.navigation(build_pages(USER), expanded=True)  # every page listed (no English "View more")
    page_action = PAGE_OF_URL.get(page.url_path, "users.manage")
    ui.run(access.require, USER, page_action)  # the library decides, not the menu
    st.session_state[ui.FRAGMENT_CHECK] = functools.partial(recheck_user, page_action)  # before a fragment's own rerun
    if access.can(USER, "import") and ui.current_shop() == shops.DEFAULT:
        ensure_sample()
    finish_pending_refresh()
    account(USER)
    # The sidebar's counts are drawn before the page and drawn again after it, so an import or a deletion
    # made on this run shows at once (a page that stops early with st.stop keeps the first drawing).
    holder = st.sidebar.empty()
    sidebar(holder)
    ui.page_chrome(st.sidebar)
    page.run()
    sidebar(holder)
