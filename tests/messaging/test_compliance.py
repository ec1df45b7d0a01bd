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
    assert any("ショップ情報" in f.fix for f in findings)  # the display items are entered on ショップ情報 (issue 11 item 6)


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
    coupon = T.Campaign(coupon_code="K7MPQRTW", coupon_value="10%OFF", coupon_expiry="2026年12月31日 23:59まで")
    for tpl in T.load_presets().values():
        r = T.render(tpl, T.build_context({"name": "花子"}, coupon, shop_profile(), "line"), "line")
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


# -- the shop's identity (issue 11 item 6) -------------------------------------------------------
def test_sample_identity_fails_the_lint_in_every_channel():
    sample = shop_profile(origin="sample")
    for channel in T.CHANNELS:
        tpl = T.load_presets()["review"]
        r = T.render(tpl, T.build_context({"name": "花子"}, None, sample, channel), channel)
        findings = [f for f in C.lint(r, sample) if f.rule == "shop_identity"]
        assert [f.severity for f in findings] == [C.ERROR], channel
        assert "サンプルショップ" in findings[0].message and "ショップ情報" in findings[0].fix


def test_missing_identity_fails_the_lint():
    empty = T.ShopProfile()
    for channel in ("line", "email", "rmail"):
        r = T.render(T.load_presets()["review"], T.build_context({}, None, empty, channel), channel)
        assert "shop_identity" in _rules(C.lint(r, empty)), channel


def test_company_name_is_the_legal_sender_and_a_mail_address_can_take_opt_outs():
    shop = shop_profile(company_name="株式会社ナチュラルホールディングス", unsubscribe_url="",
                        unsubscribe_mailto="stop@natural.example.jp")
    r = _email("本文", shop=shop)
    assert "株式会社ナチュラルホールディングス" in r.text and "stop@natural.example.jp" in r.text
    assert C.lint(r, shop) == []
    assert r.unsubscribe_url == ""  # not a link: List-Unsubscribe uses the address instead


# -- coupons (issue 11 item 13) ----------------------------------------------------------------
def test_coupon_message_without_a_code_fails():
    tpl = T.load_presets()["thanks_first"]
    for channel in ("line", "email"):
        bare = T.render(tpl, T.build_context({"name": "花子"}, None, shop_profile(), channel), channel)
        assert "有効期限：期間限定" in (bare.text or bare.line_messages[1]["text"])
        findings = [f for f in C.lint(bare, shop_profile()) if f.rule == "coupon"]
        assert [f.severity for f in findings] == [C.ERROR] and "クーポンコード" in findings[0].message, channel
    with_code = T.render(tpl, T.build_context({"name": "花子"}, T.Campaign(coupon_code="K7MP", coupon_value="10%OFF",
                                              coupon_expiry="12月31日まで"), shop_profile(), "email"), "email")
    assert C.lint(with_code, shop_profile()) == []
    # a Rakuten coupon is got through its URL: that is enough, an expiry is still expected
    by_link = T.render(tpl, T.build_context({"name": "花子"}, T.Campaign(coupon_url="https://coupon.rakuten.co.jp/getCoupon?x=1"),
                                            shop_profile(), "email"), "email")
    assert [(f.rule, f.severity) for f in C.lint(by_link, shop_profile())] == [("coupon", C.WARNING)]


def test_template_that_never_shows_the_code_fails():
    tpl = T.Template(key="t", label="t", scenario="s", line_text="{{ coupon_value }}クーポンをどうぞ")
    r = T.render(tpl, T.build_context({}, T.Campaign(coupon_code="K7MP", coupon_value="5%OFF"), shop_profile(), "line"), "line")
    findings = [f for f in C.lint(r, shop_profile()) if f.rule == "coupon"]
    assert findings and "{{ coupon_code }}" in findings[0].fix


def test_messages_without_coupons_are_not_concerned():
    r = T.render(T.load_presets()["review"], T.build_context({}, None, shop_profile(), "line"), "line")
    assert "coupon" not in _rules(C.lint(r, shop_profile()))


# -- audience fit (issue 11 item 13) ------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "customer", "fits"),
    [
        ("thanks_first", {"orders": 35}, False),
        ("thanks_first", {"orders": 1}, True),
        ("thanks_repeat", {"orders": 1}, False),
        ("winback", {"recency_days": 12}, False),
        ("winback", {"recency_days": 200}, True),
        ("birthday", {"birthday": None}, False),
        ("rank_up", {"next_rank": "プラチナ"}, True),
        ("review", {"orders": 35}, True),  # no audience declared
        ("thanks_first", {}, True),  # unknown values are not judged
    ],
)
def test_preview_warns_when_the_customer_does_not_fit(key, customer, fits):
    coupon = T.Campaign(coupon_code="K7MP", coupon_value="10%OFF", coupon_expiry="12月31日まで")
    r = T.render(T.load_presets()[key], T.build_context({"name": "花子"}, coupon, shop_profile(), "line"), "line")
    findings = [f for f in C.lint(r, shop_profile(), customer=customer) if f.rule == "audience_fit"]
    assert (findings == []) == fits
    if not fits:
        assert findings[0].severity == C.WARNING
    if key == "thanks_first" and not fits:
        assert "はじめてご購入いただいたお客様" in findings[0].message and "購入回数が35回" in findings[0].message


def test_every_declared_fit_uses_known_fields():
    for tpl in T.load_presets().values():
        for cond in tpl.fit:
            assert cond["field"] in C.FIT_FIELDS and cond["op"] in ("eq", "ne", "gte", "lte", "gt", "lt", "is_set"), tpl.key
        assert bool(tpl.fit) == bool(tpl.fit_label), tpl.key
