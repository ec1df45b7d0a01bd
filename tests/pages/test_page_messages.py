"""AppTest for the message/coupon page and the send-settings page."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from crm_core.db import Store
from crm_core.messaging import coupons as K
from crm_core.messaging.sends import add_test_recipient
from tests.servers.customers import LINE_USER, seed_customers
from tests.servers.line_mock import LineMock
from tests.servers.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "page-test-token-XYZ"
SETTING_VARS = ("LINE_CHANNEL_ACCESS_TOKEN", "LINE_API_BASE_URL", "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD",
                "SMTP_FROM", "SMTP_STARTTLS", "CRM_TEST_RECIPIENTS")


@pytest.fixture()
def db(tmp_path, monkeypatch):
    path = tmp_path / "crm.duckdb"
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    for name in SETTING_VARS:
        monkeypatch.delenv(name, raising=False)
    s = seed_customers(Store(path))
    s.close()
    return path


def _page(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(path).run()
    assert not at.exception, at.exception
    return at


def _messages() -> AppTest:
    return _page("pages/messages/messages.py")


def _htmls(at: AppTest) -> str:
    return "\n".join(e.proto.body for e in at.get("html"))


def test_line_preview_escapes_customer_text(db):
    at = _messages()
    assert at.title[0].value == "✉️ メッセージ・クーポン"
    at.selectbox(key="msg_template").set_value("new_product").run()
    at.selectbox(key="msg_customer").set_value("C003").run()
    assert not at.exception
    phone = _htmls(at)
    assert 'data-testid="msg-phone"' in phone
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in phone and "<script>" not in phone
    assert "&lt;img src=x onerror=alert(1)&gt;" in phone and "<img src=x" not in phone
    assert "{{7*7}}" in phone and "49様" not in phone
    assert any("吹き出し 2 / 5個" in c.value for c in at.caption)


def test_step_through_customers(db):
    at = _messages()
    assert at.selectbox(key="msg_customer").value == "C001"
    at.button(key="msg_next").click().run()
    assert at.selectbox(key="msg_customer").value == "C002"
    at.button(key="msg_prev").click().run()
    at.button(key="msg_prev").click().run()
    assert at.selectbox(key="msg_customer").value == "C003"  # wraps around


def test_email_preview_counters_and_lint(db):
    at = _messages()
    at.selectbox(key="msg_template").set_value("rank_up").run()
    at.radio(key="msg_channel").set_value("email").run()
    assert not at.exception
    inbox = _htmls(at)
    assert 'data-testid="msg-inbox"' in inbox and "プラチナ会員まであと¥4,200です" in inbox
    assert any(c.value.startswith("件名 ") for c in at.caption)
    assert any("問題は見つかりませんでした" in s.value for s in at.success)
    # an outside link in a Rakuten shop's mail is flagged with a fix
    at.text_area(key="msg_edit_rank_up_email_body").set_value("{{ name }}\nhttps://myshop.example.jp/ {{ foo }}").run()
    errors = " ".join(e.value for e in at.error)
    assert "楽天以外へのリンク" in errors and "link.rakuten.co.jp" in errors
    assert "{{ foo }}" in errors


def test_iso2022jp_lint_and_insert_channel(db):
    at = _messages()
    at.radio(key="msg_channel").set_value("email").run()
    at.radio(key="msg_encoding").set_value("iso-2022-jp").run()
    assert any("ISO-2022-JPで送れない文字" in e.value and "「髙」→「高」" in e.value for e in at.error)
    at.radio(key="msg_channel").set_value("insert").run()
    assert not at.exception
    assert any("楽天市場" in t.value for t in at.text)


def test_save_and_reset_template(db):
    at = _messages()
    at.selectbox(key="msg_template").set_value("birthday").run()
    at.text_area(key="msg_edit_birthday_line_text").set_value("{{ name }}、おめでとう！").run()
    at.button(key="msg_save_template").click().run()
    assert any("保存しました" in s.value for s in at.success)
    assert "（編集済み）" in at.selectbox(key="msg_template").format_func("birthday")
    at.button(key="msg_reset_template").click().run()
    assert not at.exception
    assert "（編集済み）" not in at.selectbox(key="msg_template").format_func("birthday")


def test_broken_template_shows_japanese_error(db):
    at = _messages()
    at.text_area(key="msg_edit_thanks_first_line_text").set_value("{{ name.__class__ }}").run()
    assert any("使えない書き方" in e.value for e in at.error)


def test_test_send_without_recipients_points_to_settings(db):
    at = _messages()
    assert any("テスト送信先が登録されていません" in i.value for i in at.info)
    assert any("LINE_CHANNEL_ACCESS_TOKEN" in w.value for w in at.warning)


def test_one_click_line_test_send(db, monkeypatch):
    s = Store(db)
    add_test_recipient(s, LINE_USER, "自分")
    s.close()
    with LineMock(TOKEN) as line:
        monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
        monkeypatch.setenv("LINE_API_BASE_URL", line.url)
        at = _messages()
        at.selectbox(key="msg_template").set_value("winback").run()
        at.button(key="msg_send").click().run()
    assert not at.exception
    assert any("LINEでテスト送信しました" in s.value for s in at.success), [e.value for e in at.error]
    assert len(line.pushes) == 1 and line.errors == []
    assert "髙橋 ①子様" in line.pushes[0]["body"]["messages"][0]["text"]


def test_one_click_email_test_send(db, monkeypatch):
    s = Store(db)
    add_test_recipient(s, "me@example.jp")
    s.close()
    with SmtpSink() as smtp:
        for k, v in {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@example.jp", "SMTP_STARTTLS": "false"}.items():
            monkeypatch.setenv(k, v)
        at = _messages()
        at.radio(key="msg_channel").set_value("email").run()
        at.button(key="msg_send").click().run()
    assert any("メールでテスト送信しました" in s.value for s in at.success), [e.value for e in at.error]
    assert smtp.messages[0]["Subject"].startswith("【テスト】【ナチュラルコスメ本舗】")


def test_coupon_tab_create_estimate_issue(db):
    at = _messages()
    assert any("まだクーポンはありません" in i.value for i in at.info)
    at.text_input(key="cpn_name").set_value("休眠復帰15%")
    at.number_input(key="cpn_value").set_value(15.0)
    at.radio(key="cpn_mode").set_value("unique")
    at.button[[b.label for b in at.button].index("クーポンを作成")].click().run()
    assert not at.exception
    assert any("休眠復帰15%" in s.value for s in at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["対象のお客様"] == "3人"
    at.button(key="cpn_issue").click().run()
    assert any("3件のコードを発行しました" in s.value for s in at.success)
    s = Store(db)
    assert s.scalar("SELECT count(DISTINCT code) FROM coupon_codes") == 3
    # the coupon then fills the message placeholders with each customer's own code
    code = s.scalar("SELECT code FROM coupon_codes WHERE customer_id = 'C001'")
    s.close()
    at.selectbox(key="msg_template").set_value("winback").run()
    at.selectbox(key="msg_coupon").set_value(K.list_coupons(Store(db))[0].coupon_id).run()
    assert "15%OFFクーポン" in _htmls(at)
    at.radio(key="msg_channel").set_value("email").run()
    assert any(code in t.value for t in at.text)


def test_settings_page_never_shows_secret_values(db, monkeypatch):
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("SMTP_PASSWORD", "smtp-secret-pw")
    monkeypatch.setenv("CRM_TEST_RECIPIENTS", "env@example.jp")
    at = _page("pages/settings/settings.py")
    assert at.title[0].value == "⚙️ 送信設定"
    status = at.dataframe[0].value
    assert dict(zip(status["設定名"], status["状態"]))["LINE_CHANNEL_ACCESS_TOKEN"] == "✅ 設定済み"
    assert dict(zip(status["設定名"], status["状態"]))["SMTP_HOST"] == "— 未設定"
    everything = repr([e for e in at.main]) + repr(at.sidebar)
    assert TOKEN not in everything and "smtp-secret-pw" not in everything
    assert "env@example.jp" in at.dataframe[1].value["宛先"].tolist()


def test_settings_page_recipients_and_shop_profile(db):
    at = _page("pages/settings/settings.py")
    at.text_input(key="set_address").set_value("not valid")
    at.button[[b.label for b in at.button].index("追加")].click().run()
    assert any("LINEのユーザーID" in e.value for e in at.error)
    at = _page("pages/settings/settings.py")
    at.text_input(key="set_address").set_value(LINE_USER)
    at.text_input(key="set_label").set_value("自分のiPhone")
    at.button[[b.label for b in at.button].index("追加")].click().run()
    assert not at.exception
    table = at.dataframe[1].value
    assert table["宛先"].tolist() == [LINE_USER] and table["メモ"].tolist() == ["自分のiPhone"]
    at.button(key="set_remove").click().run()
    assert any("まだテスト送信先がありません" in i.value for i in at.info)
    at.text_input(key="set_shop_address").set_value("〒100-0001 東京都千代田区1-1")
    at.button[[b.label for b in at.button].index("保存")].click().run()
    assert any("ショップ情報を保存しました" in s.value for s in at.success)
    s = Store(db)
    from crm_core.messaging.templates import shop_profile

    assert shop_profile(s).shop_address == "〒100-0001 東京都千代田区1-1"
    s.close()


def test_test_send_sends_the_unsaved_edit_shown(db, monkeypatch):
    s = Store(db)
    add_test_recipient(s, LINE_USER)
    s.close()
    with LineMock(TOKEN) as line:
        monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
        monkeypatch.setenv("LINE_API_BASE_URL", line.url)
        at = _messages()
        at.selectbox(key="msg_template").set_value("review").run()
        at.text_area(key="msg_edit_review_line_text").set_value("{{ name }}、編集中の文面です").run()
        at.button(key="msg_send").click().run()
    assert line.pushes[0]["body"]["messages"][0]["text"] == "髙橋 ①子様、編集中の文面です"
