"""Compliance lint: one block of cases per rule, each finding with a Japanese fix."""

from __future__ import annotations

import pytest

from crm_core.messaging import compliance as C
from crm_core.messaging import templates as T
from tests.servers.customers import shop_profile


def _email(body: str, footer: str | None = None, subject: str = "件名", shop=None, **campaign) -> T.Rendered:
    shop = shop or shop_profile()
    tpl = T.Template(key="t", label="t", scenario="s", email_subject=subject, email_body=body,
                     email_footer=T.load_presets()["thanks_first"].email_footer if footer is None else footer)
    return T.render(tpl, T.build_context({"name": "花子"}, T.Campaign(**campaign), shop, "email", "t"), "email")


def _rules(findings):
    return [f.rule for f in findings]


# -- 特定電子メール法 ------------------------------------------------------------------
def test_complete_footer_passes():
    assert C.lint(_email("{{ name }}\nhttps://item.rakuten.co.jp/natural-cosme/p/"), shop_profile()) == []


@pytest.mark.parametrize(
    ("missing", "phrase"),
    [
        ("sender_name", "送信者の氏名・名称"),
        ("shop_address", "送信者の住所"),
        ("unsubscribe_url", "配信停止（受信拒否）の手続き"),
        ("shop_contact", "問い合わせの連絡先"),
    ],
)
def test_each_display_item_missing_from_the_footer(missing, phrase):
    footer = "{{ sender_name }}\n{{ shop_address }}\nお問い合わせ：{{ shop_contact }}\n配信停止はこちら\n{{ unsubscribe_url }}"
    footer = "\n".join(line for line in footer.split("\n") if missing not in line)
    findings = C.lint(_email("本文", footer=footer), shop_profile())
    assert any(f.rule == "email_display" and phrase in f.message for f in findings), findings
    assert all(f.fix for f in findings)


def test_opt_out_statement_is_required_next_to_the_link():
    findings = C.lint(_email("本文", footer="{{ sender_name }}\n{{ shop_address }}\n{{ shop_contact }}\n{{ unsubscribe_url }}"), shop_profile())
    assert [f.message for f in findings] == ["配信停止ができる旨の記載がありません（特定電子メール法）。"]


def test_unset_shop_profile_is_reported():
    empty = T.ShopProfile(platform="own")
    findings = C.lint(_email("本文", shop=empty), empty)
    assert _rules(findings).count("email_display") >= 3
    assert any("送信設定" in f.fix for f in findings)


def test_consent_warning_for_a_customer_without_opt_in():
    findings = C.lint(_email("本文"), shop_profile(), customer={"email_opt_in": False})
    assert [(f.rule, f.severity) for f in findings] == [("email_consent", C.WARNING)]
    assert C.lint(_email("本文"), shop_profile(), customer={"email_opt_in": True}) == []


# -- Rakuten links -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://item.rakuten.co.jp/shop/p/", True),
        ("https://link.rakuten.co.jp/0/123/456/", True),
        ("https://www.rakuten.co.jp/shop/", True),
        ("https://rakuten.co.jp/", True),
        ("https://toi.kuronekoyamato.co.jp/cgi-bin/tneko", True),  # carrier tracking is allowed
        ("https://example.com/", False),
        ("https://rakuten.co.jp.example.com/", False),
        ("https://item.rakuten.co.jp@evil.example.com/", False),
        ("https://evil.example.com/?x=.rakuten.co.jp", False),
        ("https://fakerakuten.co.jp/", False),
        ("https://www.rakuten.com/", False),
    ],
)
def test_rakuten_link_rule(url, ok):
    r = _email(f"詳しくは {url} へ")
    findings = [f for f in C.lint(r, shop_profile()) if f.rule == "rakuten_links"]
    assert (findings == []) is ok, findings


def test_rakuten_rule_applies_to_rmail_always_and_email_only_for_rakuten_shops():
    tpl = T.Template(key="t", label="t", scenario="s", email_subject="s", email_body="https://myshop.example.jp/")
    own = shop_profile(platform="own", shop_url="https://myshop.example.jp/", unsubscribe_url="https://myshop.example.jp/stop")
    rmail = T.render(tpl, T.build_context({}, None, own, "rmail"), "rmail")
    assert "rakuten_links" in _rules(C.lint(rmail, own))
    email = T.render(tpl, T.build_context({}, None, own, "email"), "email")
    assert "rakuten_links" not in _rules(C.lint(email, own))
    assert "rakuten_links" in _rules(C.lint(email, own, rakuten=True))


def test_line_messages_may_link_outside_rakuten():
    tpl = T.Template(key="t", label="t", scenario="s", line_text="https://myshop.example.jp/")
    r = T.render(tpl, T.build_context({}, None, shop_profile(), "line"), "line")
    assert C.lint(r, shop_profile()) == []


# -- package inserts --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("copy", "rule_text"),
    [
        ("次回は自社サイトでのご購入がお得です", "自社サイトへの誘導"),
        ("公式オンラインショップもご覧ください", "公式サイトへの誘導"),
        ("お電話でのご注文も承ります", "電話・FAXでの注文"),
        ("ＦＡＸでのご注文はこちら", "電話・FAXでの注文"),
        ("当店HPの方がお安くなっています", "他の販路の方が安い"),
        ("直接のお取引も可能です", "楽天を通さない取引"),
        ("こちらのＱＲコードを読み取ってください", "QRコード"),
        ("二次元コードからアクセス", "QRコード"),
        ("https://myshop.example.jp/ をご覧ください", "楽天以外のURLだけ"),
    ],
)
def test_insert_copy_steering_and_qr(copy, rule_text):
    findings = C.lint(T.Rendered(template_key="t", channel="insert", text=copy), shop_profile())
    assert any(rule_text in f.message and f.severity == C.ERROR for f in findings), findings


def test_insert_line_invite_is_a_warning_and_clean_copy_passes():
    findings = C.lint(T.Rendered(template_key="t", channel="insert", text="LINE友だち追加で最新情報をお届け"), shop_profile())
    assert [(f.rule, f.severity) for f in findings] == [("insert_copy", C.WARNING)]
    clean = "またのご利用を楽天市場のナチュラルコスメ本舗でお待ちしております。https://www.rakuten.co.jp/natural-cosme/"
    assert C.lint(T.Rendered(template_key="t", channel="insert", text=clean), shop_profile()) == []


def test_presets_insert_copy_is_clean():
    for tpl in T.load_presets().values():
        r = T.render(tpl, T.build_context({"name": "花子"}, None, shop_profile(), "insert"), "insert")
        assert C.lint(r, shop_profile()) == [], tpl.key


# -- LINE limits -----------------------------------------------------------------------------
def _line(messages):
    return T.Rendered(template_key="t", channel="line", line_messages=messages)


def test_line_text_limit_counts_utf16_units():
    ok = "あ" * 4998 + "🍎"  # 5,000 units
    assert C.lint(_line([{"type": "text", "text": ok}])) == []
    findings = C.lint(_line([{"type": "text", "text": ok + "a"}]))
    assert [f.rule for f in findings] == ["line_limits"] and "5,001" in findings[0].message


def test_line_message_count_and_empty():
    assert "6個" in C.lint(_line([{"type": "text", "text": "a"}] * 6))[0].message
    assert "空" in C.lint(_line([]))[0].message


def test_flex_limits():
    flex = T.flex_bubble(T.Card(title="t", button_label="x" * 41, button_url="https://a.jp/" + "a" * 1000, alt_text="y" * 1501))
    messages = [f.message for f in C.lint(_line([flex]))]
    assert any("代替テキスト" in m for m in messages)
    assert any("ボタンの文言が41文字" in m for m in messages)
    assert any("ボタンのリンク" in m for m in messages)


def test_presets_fit_line_limits():
    for tpl in T.load_presets().values():
        r = T.render(tpl, T.build_context({"name": "花子"}, None, shop_profile(), "line"), "line")
        assert C.lint(r, shop_profile()) == [], tpl.key


# -- placeholders ----------------------------------------------------------------------------------
def test_unknown_placeholder_finding_suggests_close_fields():
    tpl = T.Template(key="t", label="t", scenario="s", line_text="こんにちは {{ coupon }} {{ foo }}")
    findings = C.lint(T.render(tpl, T.build_context({}, None, None, "line"), "line"))
    assert [f.rule for f in findings] == ["placeholders", "placeholders"]
    assert "{{ coupon }}" in findings[0].message and "{{ coupon_code }}" in findings[0].fix


# -- encoding ------------------------------------------------------------------------------------
def test_iso2022jp_unencodable_characters_with_replacements():
    r = _email("髙橋 ①子様 ㈱ﾃｽﾄ 10:00～12:00 🍎", subject="～セール～")
    assert C.lint(r, shop_profile()) == []  # UTF-8 carries everything
    findings = C.lint(r, shop_profile(), encoding="iso-2022-jp")
    assert [f.rule for f in findings] == ["encoding"]
    for ch in ("髙", "①", "㈱", "ﾃ", "～", "🍎"):
        assert ch in findings[0].message
    assert "「髙」→「高」" in findings[0].fix and "「①」→「(1)」" in findings[0].fix and "「ﾃ」→「テ」" in findings[0].fix
    assert "「～」→「〜」" in findings[0].fix and "「🍎」→ 削除" in findings[0].fix


def test_fix_for_iso2022jp_produces_encodable_text():
    fixed = C.fix_for_iso2022jp("髙橋 ①子 ㈱ﾃｽﾄ ～ 🍎")
    fixed.encode("iso2022_jp")
    assert fixed == "高橋 (1)子 (株)テスト 〜 "
