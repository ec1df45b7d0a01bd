"""The shop's identity in a real browser: the sample's fiction is refused, goes with the sample, and never reaches
a real shop's test mail; ショップ情報 entered on its page is what the mail then carries (issue 11 items 6 and 7)."""

from __future__ import annotations

import pytest

from crm_core.db import Store
from crm_core.sample.load import load_sample
from tests import fixtures as fx
from tests.e2e.browser import Server, goto, shot, wait_idle
from tests.servers.smtp_sink import SmtpSink

ME = "marketer@example.jp"
FICTION = ("ことのは", "架空の会社", "サンプル町", "kotonoha-sample")


@pytest.fixture()
def sample_server(tmp_path):
    store = Store(tmp_path / "crm.duckdb")
    load_sample(store, customers=120)
    store.close()
    with SmtpSink() as smtp:
        env = {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@yamada.example.jp",
               "CRM_TEST_RECIPIENTS": ME}
        srv = Server(tmp_path, env=env)
        try:
            yield srv, smtp
        finally:
            srv.stop()


def _email_channel(page) -> None:
    page.locator("[data-testid='stRadio']").filter(has_text="チャネル").get_by_text("メール", exact=True).click()
    wait_idle(page)
    page.locator("[data-testid='msg-inbox']").wait_for()


def _pick_template(page, text: str) -> None:
    page.get_by_role("combobox", name="テンプレート").click()
    page.keyboard.type(text)
    page.get_by_role("option").filter(has_text=text).first.click()
    wait_idle(page)


def _test_send(page) -> None:
    page.get_by_role("button", name="テスト送信").click()
    page.get_by_text("メールでテスト送信しました").wait_for(timeout=60_000)
    wait_idle(page)


def test_sample_identity_never_reaches_a_real_shops_mail(sample_server, page, tmp_path):
    server, smtp = sample_server

    # 1. the sample's fictitious sender is shown as such and fails the check
    goto(page, server, "/shop_info")
    page.get_by_role("heading", name="🏪 ショップ情報").wait_for()
    page.get_by_text("架空のサンプルショップ").first.wait_for()
    goto(page, server, "/messages")
    _email_channel(page)
    page.get_by_text("サンプルショップ（架空のショップ・会社・住所）のまま").first.wait_for()
    shot(page, "identity_sample_refused")

    # 2. delete the sample and import a real export
    goto(page, server, "/import_data")
    page.get_by_text("上に書いた内容を削除することを確認しました").click()
    wait_idle(page)
    page.get_by_role("button", name="すべてのデータを削除").click()
    wait_idle(page)
    path = fx.rakuten_current(tmp_path / "楽天受注.csv")
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(path))
    page.get_by_role("button", name="1件のファイルを取り込む").click()
    page.get_by_text("取り込み結果").first.wait_for(timeout=120_000)
    wait_idle(page)

    # 3. no fiction left: the check asks for the shop's own details, and a test mail carries none of the sample's
    goto(page, server, "/messages")
    _pick_template(page, "レビュー依頼")
    _email_channel(page)
    page.get_by_text("ショップ情報（ショップ名・運営会社）が登録されていません").first.wait_for()
    _test_send(page)
    first = smtp.messages[0]
    seen = first.get_body(("plain",)).get_content() + str(first["Subject"]) + str(first["From"])
    assert not any(f in seen for f in FICTION), seen
    assert first["List-Unsubscribe"] == "<mailto:shop@yamada.example.jp?subject=unsubscribe>"

    # 4. the shop's own identity, entered once, is used by the footer, the From and List-Unsubscribe
    goto(page, server, "/shop_info")
    page.get_by_text("まだ登録されていない項目").first.wait_for()  # deleting the sample removed its fiction
    assert page.get_by_label("ショップ名", exact=True).input_value() == ""
    for label, value in (("ショップ名", "やまだ商店"), ("運営会社（送信者の名称）", "株式会社やまだ"),
                         ("住所", "〒100-0001 東京都千代田区千代田1-1"), ("お問い合わせ先（メール・電話）", "03-0000-0000"),
                         ("配信停止のURL（https）", "https://www.rakuten.co.jp/yamada/stop/")):
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="保存").click()
    page.get_by_text("ショップ情報を保存しました。").wait_for()
    shot(page, "identity_saved")
    goto(page, server, "/messages")
    _pick_template(page, "レビュー依頼")
    _email_channel(page)
    page.get_by_text("このお客様はメール配信に同意していません").first.wait_for()  # the only finding left: a warning
    assert page.get_by_text("要修正").count() == 0
    _test_send(page)
    second = smtp.messages[1]
    body = second.get_body(("plain",)).get_content()
    assert "株式会社やまだ（やまだ商店）" in body and "〒100-0001 東京都千代田区千代田1-1" in body
    assert second["From"].addresses[0].display_name == "やまだ商店"
    assert second["List-Unsubscribe"] == "<https://www.rakuten.co.jp/yamada/stop/>"
    assert second["List-Unsubscribe-Post"] is None  # not declared as a one-click (RFC 8058) link
