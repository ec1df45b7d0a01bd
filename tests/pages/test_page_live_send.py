"""AppTest for 配信（本番送信）: create → funnel → previews → test-before-approve guard → approve with the typed count."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from crm_core.results import live
from tests.live_support import TEMPLATE, make_store
from tests.servers.customers import LINE_USER
from tests.servers.line_mock import LineMock

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/send/live_send.py"
TOKEN = "page-token"


@pytest.fixture()
def db(tmp_path, monkeypatch):
    path = tmp_path / "crm.duckdb"
    store = make_store(path, line_users=40, emails=5)
    store.execute("INSERT INTO orders (order_id, source, customer_id, ordered_at, cancelled, total_amount) "
                  "VALUES ('o1', 'generic', 'L00001', TIMESTAMP '2026-11-01 10:00:00', FALSE, 1000)")
    store.close()
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    return path


def _texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.info, *at.success, *at.warning, *at.error)]
    return "\n".join(str(p) for p in parts)


def test_create_preview_test_send_and_approve(db, monkeypatch):
    with LineMock(TOKEN) as line:
        monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
        monkeypatch.setenv("LINE_API_BASE_URL", line.url)
        monkeypatch.setenv("CRM_TEST_RECIPIENTS", LINE_USER)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.run()
        at.switch_page(PAGE).run()
        assert not at.exception, at.exception
        assert "まだ配信がありません" in _texts(at)
        at.text_input(key="live_name").set_value("冬のセール")
        at.selectbox(key="live_segment").set_value("line")
        at.selectbox(key="live_template").set_value(TEMPLATE)
        at.button[0].click().run()  # the form's submit button
        assert not at.exception, at.exception
        frame = at.dataframe[0].value
        n = int(frame.loc[frame["段階"] == "送信する人数", "人数"].iloc[0])
        assert n > 0 and len(at.expander) >= 3
        approve = at.button(key="live_approve")
        assert approve.disabled  # no test send yet
        at.button(key="live_test").click().run()
        assert not at.exception, at.exception
        assert "テスト送信" in _texts(at)
        at.number_input(key="live_count").set_value(n - 1).run()
        at.button(key="live_approve").click().run()
        assert "送信する人数" in "\n".join(e.value for e in at.error)
        at.number_input(key="live_count").set_value(n).run()
        at.button(key="live_approve").click().run()
        assert not at.exception, at.exception
        with live.open_ops(str(db)) as ops:
            assert live.status(ops, 1)["status"] == "approved"


def test_an_email_send_without_unsubscribe_settings_says_so_before_approval(db, monkeypatch):
    """Without CRM_UNSUBSCRIBE_SECRET and an https CRM_PUBLIC_URL a live mail cannot go out (RFC 8058): the page says it
    where the marketer approves, not only after the send has paused."""
    from tests.servers.smtp_sink import SmtpSink

    with SmtpSink() as smtp:
        for name, value in {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@natural.example.jp",
                            "SMTP_STARTTLS": "false", "CRM_TEST_RECIPIENTS": "marketer@example.jp"}.items():
            monkeypatch.setenv(name, value)
        for name in ("CRM_UNSUBSCRIBE_SECRET", "CRM_PUBLIC_URL", "LINE_CHANNEL_ACCESS_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.run()
        at.switch_page(PAGE).run()
        at.text_input(key="live_name").set_value("メルマガ")
        at.selectbox(key="live_channel").set_value("email")
        at.selectbox(key="live_segment").set_value("email")
        at.selectbox(key="live_template").set_value(TEMPLATE)
        at.button[0].click().run()
        assert not at.exception, at.exception
        warnings = "\n".join(str(w.value) for w in at.warning)
        assert "配信停止リンク" in warnings and "CRM_UNSUBSCRIBE_SECRET" in warnings
        monkeypatch.setenv("CRM_UNSUBSCRIBE_SECRET", "s" * 32)
        monkeypatch.setenv("CRM_PUBLIC_URL", "https://crm.example.jp")
        at.run()
        assert "配信停止リンク" not in "\n".join(str(w.value) for w in at.warning)


def test_line_or_email_is_offered_explained_and_tested_per_channel(db, monkeypatch):
    """「LINE（なければメール）」: the option in Japanese with its explanation, both channels' counts and cost,
    previews of each channel, and approval only after a test send on each channel."""
    from tests.servers.smtp_sink import SmtpSink

    with LineMock(TOKEN) as line, SmtpSink() as smtp:
        for name, value in {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": line.url,
                            "SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@natural.example.jp",
                            "SMTP_STARTTLS": "false", "CRM_TEST_RECIPIENTS": f"{LINE_USER},marketer@example.jp",
                            "CRM_UNSUBSCRIBE_SECRET": "s" * 32, "CRM_PUBLIC_URL": "https://crm.example.jp"}.items():
            monkeypatch.setenv(name, value)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.run()
        at.switch_page(PAGE).run()
        channel = at.selectbox(key="live_channel")
        assert "line_or_email" in channel.options or "LINE（なければメール）" in channel.options
        assert "LINEで届かない方にはメール" in _texts(at)  # the explanation, in Japanese
        at.text_input(key="live_name").set_value("冬のセール")
        channel.set_value("line_or_email")
        at.selectbox(key="live_segment").set_value("all")
        at.selectbox(key="live_template").set_value(TEMPLATE)
        at.button[0].click().run()
        assert not at.exception, at.exception
        frame = at.dataframe[0].value
        counts = dict(zip(frame["段階"], frame["人数"], strict=True))
        with live.open_ops(str(db)) as ops:
            funnel = live.status(ops, 1)["funnel"]
        # 40 LINE friends + C001/C003 on LINE; the 5 opted-in addresses by e-mail (minus this campaign's holdout)
        assert counts["送信する人数（LINE）"] == funnel["will_receive_line"] > 0
        assert counts["送信する人数（メール）"] == funnel["will_receive_email"] > 0
        assert counts["送信する人数"] == funnel["will_receive"] == funnel["will_receive_line"] + funnel["will_receive_email"]
        texts = _texts(at)
        assert "LINE" in texts and "通）" in texts  # the cost per channel
        labels = [e.label for e in at.expander]
        assert any("・LINE" in x for x in labels) and any("・メール" in x for x in labels)  # previews of each channel
        assert at.button(key="live_approve").disabled
        at.button(key="live_test_line").click().run()
        assert not at.exception, at.exception
        assert at.button(key="live_approve").disabled  # the e-mail part is not tested yet
        assert "LINE: テスト送信済み" in _texts(at)
        at.button(key="live_test_email").click().run()
        assert not at.exception, at.exception
        assert not at.button(key="live_approve").disabled
        at.number_input(key="live_count").set_value(funnel["will_receive"]).run()
        at.button(key="live_approve").click().run()
        assert not at.exception, at.exception
        with live.open_ops(str(db)) as ops:
            assert live.status(ops, 1)["status"] == "approved"
        assert len(line.pushes) == 1 and len(smtp.messages) == 1


def test_results_page_splits_a_line_or_email_send_by_channel(db, monkeypatch):
    from crm_core.db import Store
    from crm_core.messaging.channels.email_bulk import SmtpSession
    from crm_core.messaging.channels.line_bulk import LineBulk
    from crm_core.messaging.sends import load_settings
    from crm_core.messaging.unsubscribe import Unsubscribe
    from tests.live_support import NOON
    from tests.servers.smtp_sink import SmtpSink

    store = Store(db)
    ops = live.open_ops(store)
    with LineMock(TOKEN) as line, SmtpSink() as smtp:
        settings = load_settings({}, {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": line.url, "SMTP_HOST": smtp.host,
                                      "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@natural.example.jp", "SMTP_STARTTLS": "false",
                                      "CRM_TEST_RECIPIENTS": f"{LINE_USER},me@example.jp"})
        out = live.create(store, ops, name="冬のLINEかメール", channel="line_or_email", rule={"all": []}, template=TEMPLATE,
                          actor="hanako", holdout=0.3, now=NOON)
        cid = out["campaign_id"]
        for ch, to in (("line", LINE_USER), ("email", "me@example.jp")):
            assert live.test_send(store, ops, cid, settings=settings, recipient=to, actor="hanako", channel=ch).ok
        live.approve(ops, cid, by="hanako", confirm_count=out["funnel"]["will_receive"])
        with SmtpSession(smtp.host, smtp.port, starttls=False) as session:
            res = live.run(ops, cid, store=store, line=LineBulk(TOKEN, line.url, sleep=lambda s: None), smtp=session,
                           unsubscribe=Unsubscribe("s" * 32, "https://crm.example.jp"), from_addr="shop@natural.example.jp",
                           clock=lambda: NOON)
    assert res.status == "done", res
    ops.close()
    store.close()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/results/results.py").run()
    assert not at.exception, at.exception
    assert "LINE（なければメール）" in _texts(at)
    frames = [d.value for d in at.dataframe]
    split = next(f for f in frames if "チャネル" in f.columns and "送らないグループの購入率" in f.columns)
    assert list(split["チャネル"]) == ["LINE", "メール"]
    assert int(split["配信した人数"].sum()) == out["funnel"]["will_receive"]
