"""Why a channel reaches nobody (crm_core.planning.planner.explain_reach), on real imports of small export files.

A Rakuten-only shop (the fixture's 楽天ペイ export: relay addresses, no e-mail
permission column, no LINE ids) is the state a new marketer is in after the
first import; every channel must then say why it reaches 0 and where the fix is.
"""

from __future__ import annotations

import pytest

from crm_core.db import Store
from crm_core.pipeline import import_files
from crm_core.planning import planner
from tests import fixtures as fx


@pytest.fixture()
def rakuten_shop(tmp_path):
    store = Store(tmp_path / "crm.duckdb")
    import_files(store, [fx.rakuten_current(tmp_path / "rakuten.csv")])
    yield store
    store.close()


@pytest.fixture()
def mixed_shop(tmp_path):
    """Rakuten orders whose export has the メールフラグ column (legacy layout) plus Shopify orders opted in."""
    store = Store(tmp_path / "crm.duckdb")
    import_files(store, [fx.rakuten_legacy(tmp_path / "legacy.csv"), fx.shopify_orders(tmp_path / "shopify.csv")])
    yield store
    store.close()


@pytest.mark.parametrize(
    ("channel", "fix", "words"),
    [
        ("line", "import", ("LINEユーザーID", "LINE友だちの一覧", "データ取込")),
        ("email", "import", ("メール配信許可", "列がない", "データ取込")),
        ("rmail", "import", ("メール配信許可", "列がない")),
        ("shopify_email", "import", ("メール配信許可", "列がない")),
        ("mail_list", "import", ("メール配信許可", "列がない")),
    ],
)
def test_a_rakuten_only_shop_says_why_each_channel_reaches_nobody(rakuten_shop, channel, fix, words):
    note = planner.explain_reach(rakuten_shop, channel)
    assert note.customers == 1 and note.reachable == 0  # the cancelled-only buyer is not in the model
    assert note.fix == fix
    for w in words:
        assert w in note.reason, (w, note.reason)
    assert "FACTS" not in note.reason


def test_relay_addresses_explain_why_own_email_reaches_nobody(mixed_shop):
    # the Rakuten customer allowed mail (メールフラグ 1) but only through a relay address
    rule = {"all": [{"field": "first_source", "op": "eq", "value": "rakuten"}]}
    note = planner.explain_reach(mixed_shop, "email", rule)
    assert (note.customers, note.reachable, note.fix) == (1, 0, "channel")
    assert "転送用" in note.reason and "R-Mail" in note.reason
    assert planner.explain_reach(mixed_shop, "rmail", rule).reachable == 1
    assert planner.explain_reach(mixed_shop, "rmail", rule).reason == ""


def test_rmail_reaches_only_rakuten_buyers(mixed_shop):
    rule = {"all": [{"field": "first_source", "op": "eq", "value": "shopify"}]}
    note = planner.explain_reach(mixed_shop, "rmail", rule)
    assert note.reachable == 0 and note.customers >= 1
    assert "楽天市場で購入したお客様にだけ" in note.reason


def test_an_empty_segment_points_at_the_segment(rakuten_shop):
    rule = {"all": [{"field": "orders", "op": "gte", "value": 99}]}
    note = planner.explain_reach(rakuten_shop, "line", rule)
    assert (note.customers, note.reachable, note.fix) == (0, 0, "segment")


def test_counts_agree_with_the_planner_recipients(mixed_shop):
    for channel in planner.CHANNELS:
        assert planner.explain_reach(mixed_shop, channel).reachable == planner.recipients(mixed_shop, None, channel)


def test_recording_a_campaign_nobody_can_receive_says_why(rakuten_shop):
    from crm_core.errors import InputError
    from crm_core.results import campaigns

    with pytest.raises(InputError) as err:
        campaigns.freeze_campaign(rakuten_shop, "LINEテスト", "line", "2025-04-01 12:00", rule={"all": []})
    assert err.value.message.startswith("配信対象のお客様が0人です。")
    assert "LINE友だちの一覧" in err.value.message


def test_every_offered_audience_counts_its_customers_and_explains_only_a_zero(mixed_shop):
    """explain_reach reads the five explaining counts only when nobody is reached: the counts stay the direct
    ones for every audience the calendar offers, on every channel, and a reason comes exactly with a zero."""
    from crm_core.audience import library, reach, references
    from crm_core.audience import segments as S
    from crm_core.planning import plan_editor

    library.save_segment(mixed_shop, "2回以上", {"all": [{"field": "orders", "op": "gte", "value": 2}]})
    choices = [seg for _, seg in plan_editor.segment_choices(mixed_shop)]
    choices.append({"all": [{"field": "orders", "op": "gte", "value": 99}]})  # nobody
    seen = set()
    for channel in [*reach.CHANNELS, "mail_list"]:
        for seg in choices:
            note = reach.explain_reach(mixed_shop, channel, seg)
            rule = references.resolve(mixed_shop, seg) or {"all": []}
            assert note.customers == S.count(mixed_shop, rule), (channel, seg)
            assert 0 <= note.reachable <= note.customers
            assert bool(note.reason) == (note.reachable == 0), (channel, seg, note)
            seen.add(note.reachable > 0)
    assert seen == {True, False}
