"""A marketer's first real import, in a real browser: every zero reach is explained and links to its fix.

Issue 11: item 9 (reach explanations), item 18 (the sidebar counts follow an import at once) and
item 19 (phone width: Japanese line breaks, a labelled menu button).
"""

from __future__ import annotations

import re

from tests import fixtures as fx
from tests.e2e.browser import goto, shot, wait_idle


def _import_rakuten(page, server, tmp_path) -> None:
    path = fx.rakuten_current(tmp_path / "楽天受注.csv")
    goto(page, server, "/import_data")
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_text("データ未登録").wait_for()
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(path))
    page.get_by_role("button", name="1件のファイルを取り込む").click()
    page.get_by_text("取り込み結果").first.wait_for(timeout=120_000)
    wait_idle(page)


def test_zero_reach_is_explained_with_a_link_to_the_fix(server, page, tmp_path):
    _import_rakuten(page, server, tmp_path)
    # item 18: the sidebar shows the imported shop on the same run, without another click
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_text("顧客 1人 ・ 注文 2件").wait_for()
    assert sidebar.get_by_text("データ未登録").count() == 0

    # the segment builder: both channels reach 0 and say why
    goto(page, server, "/segments")
    main = page.locator("[data-testid='stMain']")
    line = main.locator("[data-testid='stAlert']").filter(has_text="LINEで届くお客様が0人です。")
    mail = main.locator("[data-testid='stAlert']").filter(has_text="メールで届くお客様が0人です。")
    line.wait_for()
    assert "LINE友だちの一覧" in line.inner_text()
    assert "メール配信許可" in mail.inner_text()
    shot(page, "reach_segments")
    main.get_by_role("link", name=re.compile("データ取込へ")).first.click()
    page.wait_for_url(re.compile(r"/import_data"))
    wait_idle(page)
    page.get_by_text("取り込み履歴").first.wait_for()

    # the planner: a plan's audience of 0 says why before it is saved
    goto(page, server, "/calendar")
    page.get_by_role("tab", name="キャンペーン計画").click()
    plan_note = main.locator("[data-testid='stAlert']").filter(has_text="この計画の対象者数は0人です")
    plan_note.first.wait_for()
    assert "LINEユーザーID" in plan_note.first.inner_text()
    shot(page, "reach_calendar")


def test_phone_width_titles_and_menu(server, browser, tmp_path):
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP")
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        goto(page, server, "/")
        page.wait_for_function("document.documentElement.lang === 'ja'")
        menu = page.locator("[data-testid='stExpandSidebarButton']")
        assert menu.get_attribute("aria-label") == "メニューを開く"
        label = menu.evaluate("b => getComputedStyle(b, '::after').content")
        assert label == '"メニュー"'
        title = page.locator("h1").first
        assert title.evaluate("h => getComputedStyle(h).wordBreak") == "auto-phrase"
        # a title that must wrap on a phone wraps between phrases: "リピート" stays whole on its line
        lines = title.evaluate("""h => { const r = document.createRange(); const t = h.textContent; const out = [];
            const walker = document.createTreeWalker(h, NodeFilter.SHOW_TEXT); let node, top = null, line = '';
            while ((node = walker.nextNode())) { for (let i = 0; i < node.length; i++) { r.setStart(node, i); r.setEnd(node, i + 1);
              const y = Math.round(r.getBoundingClientRect().top); if (top !== null && y > top + 5) { out.push(line); line = ''; }
              if (top === null || y > top + 5) top = y; line += node.data[i]; } } out.push(line); return out; }""")
        assert len(lines) >= 2, lines
        assert not any(line.endswith(("リピ", "リピー", "コンソー", "CR")) for line in lines), lines
        shot(page, "phone_home")
    finally:
        context.close()
