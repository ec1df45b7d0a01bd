"""The shop's identity is the shop's: ショップ情報 in the store, the sample's fiction never in a real shop's mail (issue 11 item 6)."""

from __future__ import annotations

import pytest

from crm_core.db import Store
from crm_core.messaging import compliance as C
from crm_core.messaging import sends
from crm_core.messaging import templates as T
from crm_core.sample.load import SAMPLE_SHOP, load_sample, remove_sample_identity
from tests.servers.smtp_sink import SmtpSink

pytestmark = pytest.mark.slow  # loads the generated sample shop

FICTION = ("ことのはコスメ", "株式会社ことのは", "サンプル町", "kotonoha-sample")
ME = "me@example.jp"


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("sample") / "crm.duckdb"
    s = Store(path)
    load_sample(s, customers=120)
    s.close()
    return path


@pytest.fixture()
def store(sample_db, tmp_path):
    copy = tmp_path / "crm.duckdb"
    copy.write_bytes(sample_db.read_bytes())
    s = Store(copy)
    yield s
    s.close()


def _some_customer(store: Store) -> str:
    return store.scalar("SELECT customer_id FROM customer_model ORDER BY revenue DESC LIMIT 1")


def test_sample_identity_is_recognised_and_fails_the_lint(store):
    profile = T.shop_profile(store)
    assert profile.origin == T.SAMPLE and profile.shop_name == SAMPLE_SHOP.shop_name
    r = T.render_for_customer(store, "review", _some_customer(store), "email")
    assert "shop_identity" in [f.rule for f in C.lint(r, profile)]


def test_after_deleting_the_sample_no_fiction_reaches_a_test_mail(store):
    store.clear_data()
    assert remove_sample_identity(store) is True
    saved = store.get_setting(T.SETTING_SHOP)
    assert not any(f in str(saved) for f in FICTION)
    assert T.shop_profile(store).missing()  # nothing fictitious left, nothing pretended either


def test_fiction_never_reaches_mail_whatever_removed_the_sample(store):
    """Even when only the flag is cleared (another way of removing the sample), the fictitious values are not used."""
    customer = _some_customer(store)
    store.set_setting("sample_loaded", False)
    profile = T.shop_profile(store)
    assert profile.origin == T.SAMPLE and profile.shop_name == "" and profile.company_name == ""
    sends.add_test_recipient(store, ME)
    with SmtpSink() as smtp:
        settings = sends.load_settings({}, {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@example.jp"})
        result = sends.test_send(store, settings, channel="email", recipient=ME, template_key="review", customer_id=customer)
    assert result.ok, result.message
    msg = smtp.messages[0]
    text = msg.get_body(("plain",)).get_content() + str(msg["Subject"]) + str(msg["From"])
    assert not any(f in text for f in FICTION), text
    r = T.render_for_customer(store, "review", customer, "email")
    assert "shop_identity" in [f.rule for f in C.lint(r, T.shop_profile(store))]


def test_own_values_survive_and_partly_sample_values_are_still_refused(store):
    own = T.shop_profile(store)
    own.shop_name = "やまだ商店"
    T.save_shop_profile(store, own)  # company, address ... are still the sample's
    assert T.shop_profile(store).origin == T.SAMPLE
    remove_sample_identity(store)
    profile = T.shop_profile(store)
    assert profile.shop_name == "やまだ商店" and profile.company_name == "" and profile.shop_address == ""
    assert profile.origin == ""


def test_saved_profile_is_one_line_and_checked(store):
    T.save_shop_profile(store, T.ShopProfile(shop_name="やまだ\r\n商店", company_name="株式会社やまだ", unsubscribe_mailto="stop@yamada.example.jp"))
    assert T.shop_profile(store).shop_name == "やまだ 商店"
    from crm_core.errors import InputError

    with pytest.raises(InputError, match="メールアドレス"):
        T.save_shop_profile(store, T.ShopProfile(unsubscribe_mailto="not-an-address"))
    with pytest.raises(InputError, match="配信停止のURL"):
        T.save_shop_profile(store, T.ShopProfile(unsubscribe_url="javascript:alert(1)"))


def test_list_unsubscribe_uses_the_shops_opt_out_address(store):
    T.save_shop_profile(store, T.ShopProfile(shop_name="やまだ商店", company_name="株式会社やまだ", shop_address="〒100-0001 東京都千代田区1-1",
                                             shop_contact="03-0000-0000", unsubscribe_mailto="stop@yamada.example.jp"))
    sends.add_test_recipient(store, ME)
    with SmtpSink() as smtp:
        settings = sends.load_settings({}, {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@yamada.example.jp"})
        assert sends.test_send(store, settings, channel="email", recipient=ME, template_key="review",
                               customer_id=_some_customer(store)).ok
    msg = smtp.messages[0]
    assert msg["List-Unsubscribe"] == "<mailto:stop@yamada.example.jp?subject=unsubscribe>"
    assert msg["List-Unsubscribe-Post"] is None  # no https link: no one-click promise
    assert msg["From"].addresses[0].display_name == "やまだ商店"
    assert "stop@yamada.example.jp" in msg.get_body(("plain",)).get_content()
