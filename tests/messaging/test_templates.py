"""Templates: presets as data, placeholders and fallbacks, sandboxed rendering, UTM links, CLI render."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.messaging import templates as T
from tests.servers.customers import seed_customers, shop_profile

SCENARIOS = {
    "thanks_first", "thanks_repeat", "shipping", "arrival", "review", "winback", "birthday", "vip_early",
    "sale_notice", "sale_eve_coupon", "sale_last_day", "reorder", "points_expiry", "rank_up", "new_product",
    "sale_start",
}


@pytest.fixture()
def store():
    s = seed_customers(Store(":memory:"))
    yield s
    s.close()


def _ctx(customer=None, channel="line", **campaign):
    return T.build_context(customer, T.Campaign(**campaign), shop_profile(), channel, "test")


# -- presets ---------------------------------------------------------------------
def test_presets_cover_the_scenarios_and_use_only_known_placeholders():
    presets = T.load_presets()
    assert set(presets) >= SCENARIOS
    for tpl in presets.values():
        assert tpl.label and tpl.line_text and tpl.email_subject and tpl.email_body, tpl.key
        for part, text in tpl.texts().items():
            check = T.analyse(text)
            assert not check.unknown, (tpl.key, part, check.unknown)
            assert not check.problems, (tpl.key, part, check.problems)


@pytest.mark.parametrize("key", sorted(SCENARIOS))
@pytest.mark.parametrize("channel", T.CHANNELS)
def test_every_preset_renders_in_every_channel(key, channel):
    tpl = T.load_presets()[key]
    r = T.render(tpl, _ctx({"name": "山田 花子"}, channel, coupon_value="10%OFF"), channel)
    if channel == "line":
        assert 1 <= len(r.line_messages) <= 5
        assert "山田 花子様" in json.dumps(r.line_messages, ensure_ascii=False) or key in ("sale_eve_coupon", "sale_last_day")
    elif channel == "insert":
        assert r.text == "" or "楽天市場" in r.text
    else:
        assert r.subject and r.text and r.html.startswith("<!DOCTYPE html>")


# -- placeholders and fallbacks ----------------------------------------------------
@pytest.mark.parametrize(
    ("customer", "expected"),
    [
        ({"name": "山田 花子"}, "山田 花子様"),
        ({"name": "  "}, "お客様"),
        ({"name": None}, "お客様"),
        (None, "お客様"),
    ],
    ids=["name", "blank", "null", "no-customer"],
)
def test_name_gets_sama_or_falls_back(customer, expected):
    assert _ctx(customer)["name"] == expected


def test_every_placeholder_has_a_value_and_fallbacks_apply():
    ctx = _ctx({})
    assert set(ctx) == set(T.PLACEHOLDERS)
    assert ctx["rank"] == "会員"
    assert ctx["last_product"] == "ご購入いただいた商品"
    assert ctx["recommended_product"] == "当店のおすすめ商品"
    assert ctx["coupon_url"].startswith("https://www.rakuten.co.jp/natural-cosme/?utm_source=line")  # falls back to the shop URL


def test_customer_fields_from_the_model_and_recommendations(store):
    c = T.customer_fields(store, "C001")
    ctx = T.build_context(c, T.Campaign(), T.shop_profile(store), "email", "rank_up")
    assert ctx["name"] == "髙橋 ①子様"
    assert ctx["rank"] == "ゴールド" and ctx["next_rank"] == "プラチナ" and ctx["gap_to_next_rank"] == "¥4,200"
    assert ctx["last_product"] == "薬用美白美容液 30mL"
    assert ctx["recommended_product"] == "保湿クリーム 50g"  # the best-scored recommendation
    assert ctx["recommended_product_url"].startswith("https://item.rakuten.co.jp/natural-cosme/P-9/?utm_source=email")
    assert ctx["next_order_date"] == "2026年12月1日"
    with pytest.raises(InputError, match="見つかりません"):
        T.customer_fields(store, "nobody")


def test_missing_customer_model_is_explained():
    with pytest.raises(InputError, match="顧客モデル"):
        T.customer_fields(Store(":memory:"), "C001")


# -- sandbox: hostile customer data ----------------------------------------------------
def test_hostile_customer_values_render_literally_and_escaped(store):
    r_line = T.render_for_customer(store, "new_product", "C003", "line")
    r_mail = T.render_for_customer(store, "new_product", "C003", "email")
    line_json = json.dumps(r_line.line_messages, ensure_ascii=False)
    assert "{{7*7}}<script>alert(1)</script>様" in line_json  # LINE shows text: literal, never evaluated
    assert "49" not in line_json
    assert "{{ shop_name }}" in line_json  # a recommendation reason that looks like a placeholder stays literal
    assert "{{7*7}}<script>alert(1)</script>様" in r_mail.text
    assert "<script>" not in r_mail.html and "<img src=x" not in r_mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r_mail.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in r_mail.html


# -- sandbox: hostile templates ----------------------------------------------------------
@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ name.__class__ }}",
        "{{ name.upper() }}",
        "{{ name|attr('upper') }}",
        "{{ 7*7 }}",
        "{{ 'a' * 100000000 }}",
        "{{ 9 ** 999999 }}",
        "{{ -name }}",
        "{{ range(10) }}",
        "{{ lipsum.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{% for c in name %}{% for d in name %}x{% endfor %}{% endfor %}",
        "{% include 'secrets.toml' %}",
        "{% import 'x' as y %}",
        "{% extends 'base' %}",
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
        "{% set x = name %}{{ x }}",
        "{{ name|format('%s') }}",
        "{{ name[0] }}",
        "{{ [1,2] }}",
        "{{ {'a': 1} }}",
        "{% raw %}{{ name }}{% endraw %}{{ name|safe }}",
    ],
)
def test_hostile_templates_are_refused(source):
    with pytest.raises(InputError) as info:
        T.render_string(source, _ctx({"name": "花子"}))
    assert "テンプレート" in info.value.message


def test_allowed_constructs_render():
    ctx = _ctx({"name": "花子"}, coupon_code="ABC")
    src = "{{ name }}{% if coupon_code %}:{{ coupon_code }}{% else %}none{% endif %}{% if rank == '会員' %}!{% endif %}{{ sale_name ~ '/' }}{{ points|default('0') }}"
    assert T.render_string(src, ctx) == "花子様:ABC!セール/ポイント"


def test_unknown_placeholders_render_empty_and_are_reported():
    tpl = T.Template(key="x", label="x", scenario="x", line_text="{{ name }}{{ password }}{{ config }}")
    r = T.render(tpl, _ctx({"name": "花子"}), "line")
    assert r.line_messages == [{"type": "text", "text": "花子様"}]
    assert r.unknown_placeholders == {"password", "config"}


def test_syntax_error_names_the_line():
    with pytest.raises(InputError, match="2行目"):
        T.render_string("ok\n{{ name ", {})


def test_only_placeholder_values_reach_the_template():
    # even if a caller passes more, only the documented fields exist in the template
    assert T.render_string("{{ secret }}", {"secret": "token-123", **_ctx()}) == ""


# -- LINE and e-mail shapes ---------------------------------------------------------------
def test_line_bubbles_and_flex_card():
    tpl = T.Template(
        key="k", label="k", scenario="s", line_text="一つ目 {{ name }}\n---\n二つ目",
        card=T.Card(title="{{ recommended_product }}", price="¥1,000", text="", image_url="https://img.example.jp/a.jpg",
                    button_label="見る", button_url="https://item.rakuten.co.jp/s/p/", alt_text=""),
    )
    msgs = T.render(tpl, _ctx({"name": "花子"}), "line").line_messages
    assert [m["type"] for m in msgs] == ["text", "text", "flex"]
    assert msgs[0]["text"] == "一つ目 花子様" and msgs[1]["text"] == "二つ目"
    bubble = msgs[2]["contents"]
    assert msgs[2]["altText"] == "当店のおすすめ商品"
    assert bubble["hero"]["url"] == "https://img.example.jp/a.jpg"
    assert [c["text"] for c in bubble["body"]["contents"]] == ["当店のおすすめ商品", "¥1,000"]
    uri = bubble["footer"]["contents"][0]["action"]["uri"]
    assert parse_qs(urlsplit(uri).query) == {"utm_source": ["line"], "utm_medium": ["message"], "utm_campaign": ["k"]}


def test_card_without_https_image_has_no_hero():
    flex = T.flex_bubble(T.Card(title="t", image_url="http://insecure.example/a.jpg"))
    assert "hero" not in flex["contents"] and "footer" not in flex["contents"]
    assert T.flex_bubble(T.Card()) is None


def test_email_parts_and_preheader(store):
    r = T.render_for_customer(store, "thanks_first", "C001", "email", T.Campaign(coupon_value="15%OFF", coupon_code="K7MPQR"))
    assert r.subject == "【ナチュラルコスメ本舗】はじめてのご注文ありがとうございます｜次回使える15%OFFクーポン"
    assert r.preheader == "髙橋 ①子様へ、感謝をこめて特別クーポンをお届けします。"
    assert "クーポンコード：K7MPQR" in r.text
    assert "配信停止" in r.text and "https://www.rakuten.co.jp/natural-cosme/mail/stop/" in r.text
    assert "utm_source=email" not in r.text.split("mail/stop/")[1][:30]  # the opt-out link is not tagged
    assert "display:none" in r.html and r.preheader in r.html
    assert r.unsubscribe_url == "https://www.rakuten.co.jp/natural-cosme/mail/stop/"


def test_rmail_uses_its_own_footer_and_source(store):
    r = T.render_for_customer(store, "winback", "C001", "rmail")
    assert "utm_source=rmail" in r.text
    assert "配信停止" not in r.text


# -- UTM -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://item.rakuten.co.jp/s/p/", "https://item.rakuten.co.jp/s/p/?utm_source=line&utm_medium=message&utm_campaign=sale"),
        ("https://x.jp/a?b=1#top", "https://x.jp/a?b=1&utm_source=line&utm_medium=message&utm_campaign=sale#top"),
        ("https://x.jp/?utm_source=mail", "https://x.jp/?utm_source=mail&utm_medium=message&utm_campaign=sale"),
        ("https://toi.kuronekoyamato.co.jp/cgi-bin/tneko", "https://toi.kuronekoyamato.co.jp/cgi-bin/tneko"),
    ],
    ids=["plain", "query-fragment", "keeps-existing", "carrier-untouched"],
)
def test_add_utm(url, expected):
    assert T.add_utm(url, "line", "message", "sale") == expected


def test_tag_links_in_text_keeps_japanese_punctuation():
    text = "詳しくは https://x.jp/a。 または (https://y.jp/b) へ"
    out = T.tag_links(text, "line", "c")
    assert "https://x.jp/a?utm_source=line&utm_medium=message&utm_campaign=c。" in out
    assert "(https://y.jp/b?utm_source=line&utm_medium=message&utm_campaign=c)" in out


def test_campaign_name_is_encoded():
    assert "utm_campaign=%E5%86%AC%20sale%26x" in T.add_utm("https://x.jp/", "line", "message", "冬 sale&x")


def test_utf16_len_counts_emoji_twice():
    assert T.utf16_len("🍎a") == 3 and T.utf16_len("あ") == 1


# -- editing ----------------------------------------------------------------------------
def test_saved_edits_override_presets_and_reset(store):
    tpl = T.get_template(store, "birthday")
    tpl.line_text = "{{ name }}おめでとう"
    T.save_template(store, tpl)
    got = T.get_template(store, "birthday")
    assert got.edited and got.line_text == "{{ name }}おめでとう"
    T.reset_template(store, "birthday")
    assert not T.get_template(store, "birthday").edited


def test_save_refuses_broken_templates(store):
    tpl = T.get_template(store, "birthday")
    tpl.email_subject = "{{ name "
    with pytest.raises(InputError, match="件名"):
        T.save_template(store, tpl)
    with pytest.raises(InputError, match="テンプレート「nope」"):
        T.get_template(store, "nope")


def test_preview_customers_from_segments(store):
    from crm_core.audience import library as segment_library

    assert [c["customer_id"] for c in T.preview_customers(store, "all")] == ["C001", "C002", "C003"]  # by revenue
    assert [c["customer_id"] for c in T.preview_customers(store, "line")] == ["C001", "C003"]
    assert [c["customer_id"] for c in T.preview_customers(store, "email")] == ["C001", "C003"]
    assert [c["customer_id"] for c in T.preview_customers(store, "preset:dormant_180")] == ["C002"]
    sid = segment_library.save_segment(store, "リピーター", {"all": [{"field": "orders", "op": "gte", "value": 2}]})
    choices = T.segment_choices(store)
    assert choices[f"saved:{sid}"] == "保存済み: リピーター" and "preset:birthday" in choices
    assert [c["customer_id"] for c in T.preview_customers(store, f"saved:{sid}")] == ["C001"]
    assert T.segment_customer_ids(store, "line") == ["C001", "C003"]
    assert T.preview_customers(Store(":memory:")) == []
    with pytest.raises(InputError):
        T.preview_customers(store, "'; DROP TABLE customer_model; --")


def test_a_templates_own_audience_is_the_segment_its_fit_check_passes(store):
    """fit:<key> previews exactly the customers the template's fit check would not flag, for every preset with a fit."""
    from crm_core.audience import rules
    from crm_core.messaging import compliance

    with_fit = [t for t in T.list_templates(store) if t.fit]
    assert {t.key for t in with_fit} >= {"thanks_first", "thanks_repeat", "winback", "birthday", "rank_up"}
    everyone = T.preview_customers(store, "all")
    for tpl in with_fit:
        choice, label = T.fit_choice(tpl)
        assert choice == "fit:" + tpl.key and tpl.fit_label in label
        rule = T.preview_rule(store, choice)
        assert rules.check(rule) is None, (tpl.key, rule)
        model = {r[0]: dict(zip(("orders", "recency_days", "birthday", "next_rank", "rank"), r[1:], strict=True))
                 for r in store.fetchall("SELECT customer_id, orders, recency_days, birthday, next_rank, rank FROM customer_model")}
        fitting = [c["customer_id"] for c in everyone if not compliance.fit_problems(tpl.fit, model[c["customer_id"]])]
        shown = [c["customer_id"] for c in T.preview_customers(store, choice, rule=rule)]
        assert shown == fitting, tpl.key
    assert [c["customer_id"] for c in T.preview_customers(store, "fit:thanks_first", rule=T.preview_rule(store, "fit:thanks_first"))] == ["C002", "C003"]
    assert T.fit_choice(T.get_template(store, "new_product")) is None  # written for anyone
    with pytest.raises(InputError):
        T.preview_rule(store, "fit:no_such_template")


# -- command line -------------------------------------------------------------------------
def _cli(argv, tmp_path, capsys):
    import argparse

    from crm_core import cli

    parser = argparse.ArgumentParser()
    parser.add_argument("--db")
    cli.add_message_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = cli.run_command(args)
    return code, capsys.readouterr()


def test_cli_templates_and_render(tmp_path, capsys):
    db = tmp_path / "crm.duckdb"
    s = seed_customers(Store(db))
    s.close()
    code, out = _cli(["templates", "--json"], tmp_path, capsys)
    assert code == 0 and {t["key"] for t in json.loads(out.out)} >= SCENARIOS
    code, out = _cli(["render", "--template", "new_product", "--customer", "C001", "--db", str(db)], tmp_path, capsys)
    messages = json.loads(out.out)
    assert code == 0 and messages[0]["type"] == "text" and messages[-1]["type"] == "flex"
    code, out = _cli(["render", "--template", "new_product", "--customer", "C001", "--channel", "email", "--db", str(db)], tmp_path, capsys)
    mail = json.loads(out.out)
    assert set(mail) >= {"subject", "text", "html"} and "保湿クリーム 50g" in mail["subject"]
    code, out = _cli(["render", "--template", "nope", "--customer", "C001", "--db", str(db)], tmp_path, capsys)
    assert code == 2 and "テンプレート「nope」" in out.err


@pytest.mark.parametrize(
    "customer, expected",
    [
        ({"gap_to_next_rank": 3200.0, "orders_to_next_rank": None}, "¥3,200"),  # ranks by spend
        ({"gap_to_next_rank": None, "orders_to_next_rank": 2}, "2回のご購入"),  # ranks by number of orders
        ({"gap_to_next_rank": float("nan"), "orders_to_next_rank": float("nan")}, "あと少し"),  # top rank: fallback
    ],
)
def test_rank_gap_placeholder_follows_the_rank_basis(customer, expected):
    assert _ctx(customer)["gap_to_next_rank"] == expected


# -- hardening: nesting, line breaks in data, output size (issue 11 items 25, 26) -----------
@pytest.mark.parametrize(
    "source",
    [
        "{% if name %}" * 300 + "x" + "{% endif %}" * 300,
        "{{ " + "(" * 2000 + "name" + ")" * 2000 + " }}",
        "{{ " + "not " * 3000 + "name }}",
    ],
    ids=["nested-if", "parentheses", "not-chain"],
)
def test_too_deep_template_is_a_japanese_error_not_a_recursion_error(source):
    with pytest.raises(InputError, match="入れ子"):
        T.render_string(source, {"name": "a"})
    with pytest.raises(InputError, match="入れ子"):
        T.analyse(source)


@pytest.mark.parametrize("brk", ["\r", "\n", "\r\n", "\u2028", "\u2029", "\x85", "\x0b", "\x00"])
def test_line_breaks_in_customer_values_never_reach_the_message(brk):
    tpl = T.load_presets()["thanks_first"]
    r = T.render(tpl, _ctx({"name": f"山田{brk}花子"}, "email", coupon_value="10%OFF"), "email")
    assert "山田 花子様" in r.text and "山田 花子様" in r.preheader
    for part in (r.subject, r.preheader):
        assert not any(c in part for c in "\r\n\u2028\u2029\x85\x0b\x00")


def test_a_huge_value_is_cut_and_a_huge_output_is_refused():
    ctx = _ctx({"name": "あ" * 100_000})
    once = T.render_string("{{ name }}", ctx)
    assert len(once) == T.MAX_VALUE_CHARS and once.endswith("…")
    source = "{{name}}" * 2_500  # 20,000 characters of template
    with pytest.raises(InputError, match="長すぎます"):
        T.render_string(source, ctx)


def test_presets_are_parsed_once_per_file_version_and_each_caller_gets_its_own_copies(tmp_path):
    import os

    path = tmp_path / "presets.toml"
    path.write_bytes(T.PRESETS_PATH.read_bytes())
    first = T.load_presets(path)
    first["thanks_first"].line_text = "changed by a caller"
    again = T.load_presets(path)
    assert again["thanks_first"].line_text != "changed by a caller"  # a caller's change never reaches the next one
    assert again == T.load_presets(T.PRESETS_PATH)
    # a rewritten file is read again (same size and a new modification time, then a new size)
    text = path.read_text(encoding="utf-8")
    key_line = next(line for line in text.splitlines() if line.startswith("label"))
    path.write_text(text.replace(key_line, key_line[:-2] + "X\"", 1), encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert [t.label for t in T.load_presets(path).values()] != [t.label for t in again.values()]
    path.write_text(text + "\n", encoding="utf-8")
    assert T.load_presets(path) == again
