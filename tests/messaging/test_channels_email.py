"""E-mail: the real smtplib against a local aiosmtpd server; decode subject and body back to Japanese."""

from __future__ import annotations

import pytest

from crm_core.db import Store
from crm_core.messaging import templates as T
from crm_core.messaging.channels.email import EmailSender, build_message
from crm_core.messaging.sends import add_test_recipient, load_settings, send_log, test_send
from tests.servers.customers import seed_customers, shop_profile
from tests.servers.smtp_sink import SmtpSink

ME = "marketer@example.jp"
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


@pytest.fixture()
def store():
    s = seed_customers(Store(":memory:"))
    yield s
    s.close()


def _rendered(key: str = "thanks_first", name: str = "髙橋 ①子") -> T.Rendered:
    tpl = T.load_presets()[key]
    ctx = T.build_context({"name": name, "last_product_name": "薬用美白美容液～30mL～"}, T.Campaign(coupon_value="10%OFF"),
                          shop_profile(), "email", key)
    return T.render(tpl, ctx, "email")


def _sender(smtp: SmtpSink, **kw) -> EmailSender:
    opts = {"from_addr": "shop@natural.example.jp", "from_name": "ナチュラルコスメ本舗", "starttls": False, **kw}
    return EmailSender(smtp.host, smtp.port, **opts)


def test_mail_arrives_and_decodes_to_the_original_japanese():
    rendered = _rendered()
    with SmtpSink() as smtp:
        result = _sender(smtp).send(ME, rendered)
    assert result.ok and result.outcome == "sent" and result.request_id.startswith("<")
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert smtp.envelopes[0]["rcpt_tos"] == [ME] and smtp.envelopes[0]["mail_from"] == "shop@natural.example.jp"
    assert msg["Subject"] == rendered.subject == "【ナチュラルコスメ本舗】はじめてのご注文ありがとうございます｜次回使える10%OFFクーポン"
    assert b"=?utf-8?" in smtp.envelopes[0]["raw"]  # RFC 2047 on the wire
    assert msg["From"].addresses[0].display_name == "ナチュラルコスメ本舗"
    assert msg["Message-ID"] == result.request_id
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert text.rstrip("\n") == rendered.text
    assert "髙橋 ①子様" in text and "薬用美白美容液～30mL～" in text
    assert html.rstrip("\n") == rendered.html
    assert msg.get_body(("plain",))["Content-Transfer-Encoding"] == "base64"


def test_list_unsubscribe_headers():
    with SmtpSink() as smtp:
        _sender(smtp, unsubscribe_mailto="stop@natural.example.jp").send(ME, _rendered())
    msg = smtp.messages[0]
    assert msg["List-Unsubscribe"] == (
        "<https://www.rakuten.co.jp/natural-cosme/mail/stop/>, <mailto:stop@natural.example.jp?subject=unsubscribe>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_no_one_click_header_without_an_https_link():
    rendered = _rendered()
    rendered.unsubscribe_url = ""
    msg = build_message(ME, rendered, "shop@example.jp")
    # every marketing mail carries List-Unsubscribe: a mailto to the sender when no URL is set (issue 11 item 7)
    assert msg["List-Unsubscribe"] == "<mailto:shop@example.jp?subject=unsubscribe>"
    assert msg["List-Unsubscribe-Post"] is None


def test_hostile_names_stay_escaped_in_the_html_part():
    with SmtpSink() as smtp:
        _sender(smtp).send(ME, _rendered(name="<script>alert(1)</script>{{7*7}}"))
    msg = smtp.messages[0]
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;{{7*7}}様" in html
    assert "<script>alert(1)</script>{{7*7}}様" in msg.get_body(("plain",)).get_content()


def test_iso2022jp_mail_round_trips_after_the_fix():
    from crm_core.messaging.compliance import fix_for_iso2022jp

    rendered = _rendered(name="高橋 花子")
    with SmtpSink() as smtp:
        refused = _sender(smtp, encoding="iso-2022-jp").send(ME, rendered)
        assert not refused.ok and refused.error_code == "encoding" and smtp.messages == []
        rendered.text = fix_for_iso2022jp(rendered.text)
        rendered.subject = fix_for_iso2022jp(rendered.subject)
        assert _sender(smtp, encoding="iso-2022-jp").send(ME, rendered).ok
    msg = smtp.messages[0]
    part = msg.get_body(("plain",))
    assert part.get_content_charset() == "iso-2022-jp"
    assert "薬用美白美容液〜30mL〜" in part.get_content()
    assert msg["Subject"] == rendered.subject


def test_login_success_and_failure():
    with SmtpSink(username="user", password="pass") as smtp:
        ok = _sender(smtp, username="user", password="pass").send(ME, _rendered())
        bad = _sender(smtp, username="user", password="wrong").send(ME, _rendered())
    assert ok.ok
    assert not bad.ok and bad.error_code == "auth_failed"
    assert bad.message == "SMTPサーバーへのログインに失敗しました。送信設定のユーザー名とパスワードを確認してください。"
    assert "wrong" not in repr(_sender(smtp, password="wrong"))
    assert len(smtp.messages) == 1


def test_starttls_not_offered_is_explained():
    with SmtpSink() as smtp:
        result = _sender(smtp, starttls=True).send(ME, _rendered())
    assert not result.ok and result.error_code == "not_supported" and "STARTTLS" in result.message


def test_server_down_is_explained():
    with SmtpSink() as smtp:
        port = smtp.port
    result = EmailSender("127.0.0.1", port, from_addr="shop@example.jp", starttls=False, timeout=2).send(ME, _rendered())
    assert not result.ok and result.error_code in ("connection_error", "disconnected")
    assert f"127.0.0.1:{port}" in result.message


def test_bad_address_is_refused_before_connecting():
    result = EmailSender("127.0.0.1", 1, from_addr="shop@example.jp").send("not an address", _rendered())
    assert result.outcome == "invalid"


def test_test_send_over_smtp_with_the_test_prefix_and_log(store):
    add_test_recipient(store, ME)
    with SmtpSink() as smtp:
        settings = load_settings({}, {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@natural.example.jp",
                                      "SMTP_STARTTLS": "false"})
        result = test_send(store, settings, channel="email", recipient=ME, template_key="rank_up", customer_id="C001", actor="tester")
        refused = test_send(store, settings, channel="email", recipient="someone@example.jp", template_key="rank_up", customer_id="C001")
    assert result.ok, result
    assert not refused.ok and refused.outcome == "refused"
    assert len(smtp.messages) == 1
    msg = smtp.messages[0]
    assert msg["Subject"] == "【テスト】【ナチュラルコスメ本舗】プラチナ会員まであと¥4,200です"
    assert msg["From"].addresses[0].display_name == "株式会社ナチュラルコスメ"
    assert "髙橋 ①子様" in msg.get_body(("plain",)).get_content()
    log = send_log(store)
    assert list(log["結果"]) in (["送信済み", "拒否（宛先が対象外）"], ["拒否（宛先が対象外）", "送信済み"])
    assert set(log["チャネル"]) == {"メール"}


def test_missing_smtp_settings_are_named(store):
    add_test_recipient(store, ME)
    result = test_send(store, load_settings({}, {}), channel="email", recipient=ME, template_key="rank_up", customer_id="C001")
    assert result.outcome == "not_configured" and "SMTPサーバーと送信元メールアドレス" in result.message
    assert "SMTP_" not in result.message


def test_line_break_in_a_customer_name_sends_correct_utf8_mail():
    """A CR or U+2028 in a name used to become a wrong 'ISO-2022-JP' refusal even for UTF-8 (issue 11 item 25)."""
    for brk in ("\r", "\u2028"):
        with SmtpSink() as smtp:
            result = _sender(smtp).send(ME, _rendered(key="winback", name=f"髙橋{brk}①子"))
        assert result.ok, result.message
        msg = smtp.messages[0]
        assert "髙橋 ①子様" in msg["Subject"]
        assert "髙橋 ①子様" in msg.get_body(("plain",)).get_content()


def test_a_header_problem_is_not_reported_as_an_encoding_problem():
    rendered = _rendered()
    rendered.subject = "件名\r\nBcc: victim@example.jp"  # a subject built outside render()
    with SmtpSink() as smtp:
        result = _sender(smtp).send(ME, rendered)
    assert not result.ok and result.error_code == "bad_header"
    assert "ISO-2022-JP" not in result.message and "改行" in result.message
    assert smtp.messages == []


# -- TLS: STARTTLS when offered, implicit TLS, no password in the clear ----------------------
def test_default_uses_starttls_when_the_server_offers_it():
    with SmtpSink(tls="starttls") as smtp:
        result = _sender(smtp, starttls=None, tls_context=smtp.client_context).send(ME, _rendered())
    assert result.ok, result.message
    assert smtp.envelopes[0]["tls"] is True


def test_default_works_with_a_plain_local_server():
    with SmtpSink() as smtp:
        sender = EmailSender(smtp.host, smtp.port, from_addr="shop@example.jp")  # all defaults
        assert sender.check().ok
        assert sender.send(ME, _rendered()).ok
    assert smtp.envelopes[0]["tls"] is False


def test_implicit_tls_like_port_465():
    with SmtpSink(tls="implicit", username="user", password="pass") as smtp:
        sender = _sender(smtp, starttls=None, implicit_tls=True, tls_context=smtp.client_context, username="user", password="pass")
        check = sender.check()
        result = sender.send(ME, _rendered())
    assert check.ok and "SSL/TLS" in check.message and "ログイン成功" in check.message
    assert result.ok and smtp.envelopes[0]["tls"] is True
    assert EmailSender("h", 465, from_addr="a@example.jp").implicit_tls is True


def test_password_is_not_sent_in_the_clear_to_a_remote_server_without_starttls():
    with SmtpSink(username="user", password="pass", host="127.0.0.2") as smtp:
        result = _sender(smtp, starttls=None, username="user", password="pass").send(ME, _rendered())
    assert not result.ok and result.error_code == "tls_not_offered" and smtp.messages == []
    assert "パスワードを送りませんでした" in result.message


def test_connection_check_explains_a_bad_login():
    with SmtpSink(username="user", password="pass") as smtp:
        result = _sender(smtp, username="user", password="nope").check()
    assert not result.ok and result.error_code == "auth_failed"


def test_every_test_mail_carries_list_unsubscribe_even_without_sender_settings(store):
    """A store with no opt-out link or address still sends List-Unsubscribe: a mailto to the sender (issue 11 item 7)."""
    T.save_shop_profile(store, shop_profile(unsubscribe_url="", unsubscribe_mailto=""))
    add_test_recipient(store, ME)
    with SmtpSink() as smtp:
        settings = load_settings({}, {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@natural.example.jp"})
        for key in ("rank_up", "review", "shipping"):
            assert test_send(store, settings, channel="email", recipient=ME, template_key=key, customer_id="C001").ok
    assert len(smtp.messages) == 3
    for msg in smtp.messages:
        assert msg["List-Unsubscribe"] == "<mailto:shop@natural.example.jp?subject=unsubscribe>"
        assert msg["List-Unsubscribe-Post"] is None


def test_test_mail_with_the_shops_link_and_address():
    with SmtpSink() as smtp:
        _sender(smtp, unsubscribe_mailto="stop@natural.example.jp").send(ME, _rendered())
    assert smtp.messages[0]["List-Unsubscribe"].startswith("<https://www.rakuten.co.jp/natural-cosme/mail/stop/>")


@pytest.mark.parametrize(("declared", "post"), [("1", "List-Unsubscribe=One-Click"), ("", None)])
def test_one_click_is_announced_only_when_the_shops_link_handles_it(store, declared, post):
    """RFC 8058: a plain opt-out page that ignores the POST must not be announced as one-click."""
    T.save_shop_profile(store, shop_profile(unsubscribe_one_click=declared))
    add_test_recipient(store, ME)
    with SmtpSink() as smtp:
        settings = load_settings({}, {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@natural.example.jp"})
        assert test_send(store, settings, channel="email", recipient=ME, template_key="review", customer_id="C001").ok
    msg = smtp.messages[0]
    assert msg["List-Unsubscribe"] == "<https://www.rakuten.co.jp/natural-cosme/mail/stop/>"
    assert msg["List-Unsubscribe-Post"] == post
