"""Live sends: funnel, quiet hours, test-before-approve, approver guards, LINE and e-mail sends from the ledger.

The real line-bot-sdk talks to the spec-validating LINE stand-in, the real
smtplib to aiosmtpd; nothing of ours is mocked.
"""

from __future__ import annotations

import datetime as dt
from contextlib import closing

import pytest

from crm_core import opsdb
from crm_core.errors import InputError
from crm_core.messaging import audit, consent
from crm_core.messaging import ledger as L
from crm_core.messaging.channels.email_bulk import SmtpSession
from crm_core.messaging.channels.line_bulk import LineBulk
from crm_core.messaging.sends import load_settings
from crm_core.messaging.unsubscribe import Unsubscribe
from crm_core.results import campaigns as C
from crm_core.results import live
from tests.live_support import EMAIL_RULE, JST, LINE_RULE, LIVE_TOKEN, NOON, PUBLIC, SECRET, TEMPLATE, line_id
from tests.servers.customers import LINE_USER
from tests.servers.line_mock import LineMock
from tests.servers.smtp_sink import SmtpSink

TOKEN = LIVE_TOKEN
MULTICAST = "/v2/bot/message/multicast"
ME = "marketer@example.jp"


def _settings(mock: LineMock | None = None, smtp: SmtpSink | None = None):
    environ = {"CRM_TEST_RECIPIENTS": f"{LINE_USER},{ME}"}
    if mock:
        environ |= {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": mock.url}
    if smtp:
        environ |= {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@natural.example.jp", "SMTP_STARTTLS": "false"}
    return load_settings({}, environ)


def _approved(store, ops, mock=None, smtp=None, channel="line", accept_overage=False, **kw):
    rule = LINE_RULE if channel == "line" else EMAIL_RULE
    out = live.create(store, ops, name="冬のセール", channel=channel, rule=rule, template=TEMPLATE, actor="hanako",
                      now=NOON, **kw)
    cid = out["campaign_id"]
    result = live.test_send(store, ops, cid, settings=_settings(mock, smtp), recipient=LINE_USER if channel == "line" else ME,
                            actor="hanako")
    assert result.ok, result
    live.approve(ops, cid, by="hanako", confirm_count=out["funnel"]["will_receive"], accept_overage=accept_overage)
    return cid, out


def _clock(at: dt.datetime):
    return lambda: at


# -- funnel ------------------------------------------------------------------------------------
def test_funnel_removes_suppressed_capped_and_holdout(env):
    store, ops = env
    consent.suppress(ops, "line", line_id(1000), source="webhook", actor="line")
    consent.suppress(ops, "line", line_id(1001), source="manual", actor="hanako")
    # two messages to L00002 within 7 days from other campaigns: capped at 2
    for n in (90, 91):
        ops.execute("INSERT INTO send_ledger (campaign_id, customer_id, channel, state, updated_at, sent_at) VALUES (?, 'L00002', 'line', 'sent', ?, ?)",
                    [n, L.iso(NOON), L.iso(NOON - dt.timedelta(days=2))])
    ops.execute("INSERT INTO send_ledger (campaign_id, customer_id, channel, state, updated_at, sent_at) VALUES (92, 'L00003', 'line', 'sent', ?, ?)",
                [L.iso(NOON), L.iso(NOON - dt.timedelta(days=9))])
    out = live.create(store, ops, name="冬", channel="line", rule=LINE_RULE, template=TEMPLATE, actor="hanako",
                      frequency_cap=2, holdout=0.1, now=NOON)
    f = out["funnel"]
    assert f["segment"] == 1102 and f["reachable"] == 1102
    assert f["suppressed"] == 2 and f["capped"] == 1
    assert f["holdout"] + f["will_receive"] == 1102 - 3
    assert 60 < f["holdout"] < 160  # about 10 %
    assert [e["action"] for e in audit.entries(ops, out["campaign_id"])] == ["create"]


def test_funnel_table_labels(env):
    store, ops = env
    out = live.create(store, ops, name="冬", channel="email", rule=EMAIL_RULE, template=TEMPLATE, actor="a", now=NOON)
    table = live.funnel_table(out["funnel"])
    assert table[0]["段階"] == "セグメントの人数" and table[-1]["段階"] == "送信する人数"
    assert out["funnel"]["rakuten_relay"] == 3


# -- consent records ------------------------------------------------------------------------------
def test_an_older_opt_in_never_undoes_a_later_opt_out(env):
    _, ops = env
    consent.record(ops, "email", "A@Example.jp", "opt_out", "unsubscribe", occurred_at=dt.datetime(2026, 12, 1, 10, tzinfo=JST))
    consent.record(ops, "email", "a@example.jp", "opt_in", "import", occurred_at=dt.datetime(2026, 11, 1, 10, tzinfo=JST))
    assert consent.status(ops, "email", "a@example.jp") == "opt_out"
    assert "a@example.jp" in consent.suppressed(ops, "email")
    consent.record(ops, "email", "a@example.jp", "opt_in", "manual", occurred_at=dt.datetime(2026, 12, 2, 10, tzinfo=JST))
    assert consent.status(ops, "email", "a@example.jp") == "opt_in"
    assert len(consent.history(ops, "email", "a@example.jp")) == 3


def test_opt_out_wins_a_tie(env):
    _, ops = env
    at = dt.datetime(2026, 12, 1, 10, tzinfo=JST)
    consent.record(ops, "line", line_id(5), "opt_out", "webhook", occurred_at=at)
    consent.record(ops, "line", line_id(5), "opt_in", "import", occurred_at=at)
    assert consent.status(ops, "line", line_id(5)) == "opt_out"


# -- quiet hours ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("hour", "quiet", "expected"), [
    (12, "21-08", (12, 0)), (21, "21-08", (8, 1)), (23, "21-08", (8, 1)), (3, "21-08", (8, 0)), (8, "21-08", (8, 0)),
    (22, "off", (22, 0)), (13, "12-14", (14, 0)),
], ids=["noon", "21h", "23h", "3h", "8h", "off", "lunch"])
def test_next_allowed_slot(hour, quiet, expected):
    when = dt.datetime(2026, 12, 3, hour, 0, tzinfo=JST)
    out = live.next_allowed(when, live.parse_quiet_hours(quiet))
    assert (out.hour, (out.date() - when.date()).days) == expected


def test_send_scheduled_inside_quiet_hours_waits_for_the_next_slot(env, line):
    store, ops = env
    evening = dt.datetime(2026, 12, 3, 22, 30, tzinfo=JST)
    out = live.create(store, ops, name="夜", channel="line", rule=LINE_RULE, template=TEMPLATE, actor="hanako",
                      send_at=evening, now=evening)
    assert out["send_at"].startswith("2026-12-04T08:00") and "08:00に送信します" in out["send_at_note"]
    cid = out["campaign_id"]
    assert live.test_send(store, ops, cid, settings=_settings(line), recipient=LINE_USER, actor="hanako").ok
    live.approve(ops, cid, by="hanako", confirm_count=out["funnel"]["will_receive"])
    bulk = LineBulk(TOKEN, line.url, sleep=lambda s: None)
    waiting = live.run(ops, cid, store=store, line=bulk, clock=_clock(evening + dt.timedelta(hours=1)))
    assert waiting.status == "approved" and "予約" in waiting.message and line.multicasts == []
    done = live.run(ops, cid, store=store, line=bulk, clock=_clock(dt.datetime(2026, 12, 4, 8, 5, tzinfo=JST)))
    assert done.status == "done" and done.counts["sent"] == out["funnel"]["will_receive"]


def test_a_running_send_stops_at_21h_and_continues_at_8h(env, line):
    store, ops = env
    cid, out = _approved(store, ops, line)
    times = iter([dt.datetime(2026, 12, 3, 20, 59, tzinfo=JST)] * 4 + [dt.datetime(2026, 12, 3, 21, 0, tzinfo=JST)] * 100)
    bulk = LineBulk(TOKEN, line.url, sleep=lambda s: None)
    first = live.run(ops, cid, store=store, line=bulk, clock=lambda: next(times))
    assert first.status == "waiting" and "配信しない時間帯" in first.message
    assert 0 < first.counts["sent"] < out["funnel"]["will_receive"]
    second = live.run(ops, cid, store=store, line=bulk, clock=_clock(dt.datetime(2026, 12, 4, 8, 0, tzinfo=JST)))
    assert second.status == "done"
    assert set(line.delivered_to(MULTICAST).values()) == {1} and len(line.delivered_to(MULTICAST)) == out["funnel"]["will_receive"]


# -- test before approve, approver ---------------------------------------------------------------
def test_approval_needs_a_test_send_of_this_content(env, line):
    store, ops = env
    out = live.create(store, ops, name="冬", channel="line", rule=LINE_RULE, template=TEMPLATE, actor="hanako", now=NOON)
    cid, n = out["campaign_id"], out["funnel"]["will_receive"]
    with pytest.raises(InputError, match="テスト送信が必要"):
        live.approve(ops, cid, by="hanako", confirm_count=n)
    assert live.test_send(store, ops, cid, settings=_settings(line), recipient=LINE_USER, actor="hanako").ok
    ops.execute("UPDATE send_campaigns SET content_hash = 'changed' WHERE campaign_id = ?", [cid])  # content edited after the test
    with pytest.raises(InputError, match="テスト送信が必要"):
        live.approve(ops, cid, by="hanako", confirm_count=n)


def test_approver_guards(env, line):
    store, ops = env
    out = live.create(store, ops, name="冬", channel="line", rule=LINE_RULE, template=TEMPLATE, actor="hanako", now=NOON)
    cid, n = out["campaign_id"], out["funnel"]["will_receive"]
    live.test_send(store, ops, cid, settings=_settings(line), recipient=LINE_USER, actor="hanako")
    with pytest.raises(InputError, match="人数"):
        live.approve(ops, cid, by="hanako")
    with pytest.raises(InputError, match="人数"):
        live.approve(ops, cid, by="hanako", confirm_count=n - 1)
    with pytest.raises(InputError, match="承認者の権限"):
        live.approve(ops, cid, by="taro")
    st = live.approve(ops, cid, by="taro", role="approver")
    assert st["status"] == "approved" and st["approved_by"] == "taro" and st["approved_at"]
    assert [e["action"] for e in audit.entries(ops, cid)] == ["approve", "test_send", "create"]


def test_unapproved_campaign_is_not_sent(env, line):
    store, ops = env
    out = live.create(store, ops, name="冬", channel="line", rule=LINE_RULE, template=TEMPLATE, actor="hanako", now=NOON)
    res = live.run(ops, out["campaign_id"], store=store, line=LineBulk(TOKEN, line.url), clock=_clock(NOON))
    assert res.status == "draft" and line.multicasts == []


# -- LINE ----------------------------------------------------------------------------------------
def test_line_send_in_batches_of_500_frozen_and_ledgered(env, line):
    store, ops = env
    cid, out = _approved(store, ops, line)
    n = out["funnel"]["will_receive"]
    res = live.run(ops, cid, store=store, line=LineBulk(TOKEN, line.url, sleep=lambda s: None), clock=_clock(NOON))
    assert res.status == "done", res
    assert line.errors == []
    sizes = [len(r["body"]["to"]) for r in line.multicasts]
    assert max(sizes) <= 500 and sum(sizes) == n and len(sizes) == -(-n // 500)
    assert {r["body"]["customAggregationUnits"][0] for r in line.multicasts} == {f"crm_campaign_{cid}"}
    assert set(line.delivered_to(MULTICAST).values()) == {1} and len(line.delivered_to(MULTICAST)) == n
    counts = L.counts(ops, cid)
    assert counts["sent"] == n and counts["held_out"] == out["funnel"]["holdout"] and counts["queued"] == counts["sending"] == 0
    frozen = C.recipients(store, cid)
    assert len(frozen) == n + out["funnel"]["holdout"] and int(frozen["holdout"].sum()) == out["funnel"]["holdout"]
    held = set(frozen.loc[frozen["holdout"], "customer_id"])
    held_users = {r[0] for r in ops.execute("SELECT address FROM send_ledger WHERE campaign_id = ? AND state = 'held_out'", [cid])}
    assert len(held) == len(held_users) and not held_users & set(line.delivered_to(MULTICAST))
    assert live.status(ops, cid)["status"] == "done"


def test_429_storm_and_500s_mid_send_deliver_everyone_once(env, line):
    store, ops = env
    cid, out = _approved(store, ops, line)
    bulk = LineBulk(TOKEN, line.url, sleep=lambda s: None)
    line.answer(200)
    line.storm(4, 429)
    line.answer(500, accept=True)  # accepted, answer lost: the retry gets 409
    line.storm(2, 503)
    res = live.run(ops, cid, store=store, line=bulk, clock=_clock(NOON))
    assert res.status == "done"
    assert len(line.delivered_to(MULTICAST)) == out["funnel"]["will_receive"] and set(line.delivered_to(MULTICAST).values()) == {1}
    assert line.errors == []


def test_quota_checked_before_sending_refuses_overage_unless_accepted(env, line):
    store, ops = env
    cid, out = _approved(store, ops, line)
    line.quota_limit = out["funnel"]["will_receive"] - 1
    bulk = LineBulk(TOKEN, line.url, sleep=lambda s: None)
    res = live.run(ops, cid, store=store, line=bulk, clock=_clock(NOON))
    assert res.status == "paused" and "追加料金を承諾" in res.message and line.multicasts == []
    cid2, _ = _approved(store, ops, line, accept_overage=True)
    line.quota_limit = None  # the account's plan allows paid messages
    assert live.run(ops, cid2, store=store, line=bulk, clock=_clock(NOON)).status == "done"


def test_monthly_limit_answer_mid_send_pauses_and_resume_sends_the_rest_once(env, line):
    store, ops = env
    cid, out = _approved(store, ops, line, accept_overage=True)
    line.quota_limit = 700
    bulk = LineBulk(TOKEN, line.url, sleep=lambda s: None)
    res = live.run(ops, cid, store=store, line=bulk, clock=_clock(NOON))
    assert res.status == "paused" and "上限" in res.message
    assert res.counts["sent"] == 500 and res.counts["queued"] == out["funnel"]["will_receive"] - 500
    line.quota_limit = None
    live.resume(ops, cid, "hanako")
    res = live.run(ops, cid, store=store, line=bulk, clock=_clock(NOON))
    assert res.status == "done" and set(line.delivered_to(MULTICAST).values()) == {1}


def test_pause_and_cancel(env, line):
    store, ops = env
    cid, _ = _approved(store, ops, line)
    live.pause(ops, cid, "hanako")
    res = live.run(ops, cid, store=store, line=LineBulk(TOKEN, line.url), clock=_clock(NOON))
    assert res.status == "paused" and line.multicasts == []
    live.cancel(ops, cid, "hanako")
    assert live.status(ops, cid)["status"] == "cancelled"
    with pytest.raises(InputError):
        live.resume(ops, cid, "hanako")
    assert [e["action"] for e in audit.entries(ops, cid)][:2] == ["cancel", "pause"]


# -- e-mail ---------------------------------------------------------------------------------------
def test_email_send_headers_footer_bounce_and_rakuten_refusal(env):
    store, ops = env
    with SmtpSink() as smtp:
        cid, out = _approved(store, ops, smtp=smtp, channel="email")
        c = live.status(ops, cid)
        f = live.funnel(store, ops, rule=EMAIL_RULE, channel="email", campaign_id=cid, holdout=0.1, variants=["A"], now=NOON)
        gone = next(r["address"] for r in f.rows if r["state"] == "queued")
        smtp.refuse[gone] = "550 5.1.1 User unknown"
        unsub = Unsubscribe(SECRET, PUBLIC)
        with SmtpSession(smtp.host, smtp.port, starttls=False) as session:
            res = live.run(ops, cid, store=store, smtp=session, unsubscribe=unsub, from_addr="shop@natural.example.jp",
                           clock=_clock(NOON))
            assert session.connections == 1
    n = out["funnel"]["will_receive"]
    assert res.status == "done" and c["tested"]
    live_msgs = [m for m in smtp.messages if not str(m["Subject"]).startswith("【テスト】")]
    assert len(live_msgs) == n - 1
    assert res.counts["sent"] == n - 1 and res.counts["failed"] == 1
    assert consent.status(ops, "email", gone) == "opt_out"
    assert consent.history(ops, "email", gone)[-1]["source"] == "bounce"
    assert "冬のセール" in str(live_msgs[0]["Subject"])
    msg = live_msgs[0]
    text = msg.get_body(("plain",)).get_content()
    links = [p.strip("<>") for p in str(msg["List-Unsubscribe"]).split(",") if "https://" in p]
    assert links and links[0].startswith(PUBLIC + "/unsubscribe/")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert links[0] in text  # the footer shows the same personal link
    assert "東京都渋谷区" in text and "株式会社ナチュラルコスメ" in text  # 特定電子メール法 display items
    token = links[0].rsplit("/", 1)[-1]
    campaign_id, customer_id = unsub.read(token)
    assert campaign_id == cid
    to = ops.execute("SELECT address FROM send_ledger WHERE campaign_id = ? AND customer_id = ?", [cid, customer_id]).fetchone()[0]
    assert to == str(msg["To"])
    ids = [m["Message-ID"] for m in live_msgs]
    assert len(set(ids)) == len(ids)
    rakuten = live.rmail_export(ops, cid)
    assert len(rakuten) == 3 and all(r["メールアドレス"].endswith("@pc.fw.rakuten.ne.jp") for r in rakuten)
    assert not any("rakuten" in str(m["To"]) for m in smtp.messages)


def test_email_to_rakuten_relay_is_refused_with_an_explanation(env):
    store, ops = env
    out = live.create(store, ops, name="冬", channel="email", rule=EMAIL_RULE, template=TEMPLATE, actor="a", now=NOON)
    assert out["funnel"]["rakuten_relay"] == 3
    assert "R-Mail" in live.RAKUTEN_NOTE and "中継" in live.RAKUTEN_NOTE


def test_live_mail_without_unsubscribe_settings_pauses_instead_of_sending(env):
    store, ops = env
    with SmtpSink() as smtp:
        cid, _ = _approved(store, ops, smtp=smtp, channel="email")
        with SmtpSession(smtp.host, smtp.port, starttls=False) as session:
            res = live.run(ops, cid, store=store, smtp=session, unsubscribe=None, from_addr="shop@natural.example.jp", clock=_clock(NOON))
    assert res.status == "paused" and "配信停止リンク" in res.message
    assert all(str(m["Subject"]).startswith("【テスト】") for m in smtp.messages)


def test_a_campaign_frozen_without_a_sender_address_takes_the_current_one_or_pauses(env):
    """A send frozen with an empty From (by an earlier version, whose prepare did not check it) never reaches the mail
    library without an address: with SMTP_FROM set it goes out from that address (the frozen name kept), else it pauses."""
    from email.utils import parseaddr

    store, ops = env
    with SmtpSink() as smtp:
        cid, _ = _approved(store, ops, smtp=smtp, channel="email")
        live.prepare(store, ops, cid, from_addr="shop@natural.example.jp", now=NOON)
        name = live._get(ops, cid)["sender"]["from_name"]
        assert name
        ops.execute("UPDATE send_campaigns SET sender = json_set(sender, '$.from_addr', '') WHERE campaign_id = ?", [cid])
        ops.commit()
        tests_sent = len(smtp.messages)
        with SmtpSession(smtp.host, smtp.port, starttls=False) as session:
            res = live.run(ops, cid, store=store, smtp=session, unsubscribe=Unsubscribe(SECRET, PUBLIC), from_addr="",
                           clock=_clock(NOON + dt.timedelta(minutes=1)))
            assert res.status == "paused" and res.message == live.NO_SENDER_ADDRESS
            assert len(smtp.messages) == tests_sent  # nothing left
            L.set_status(ops, cid, "approved", "")
            res = live.run(ops, cid, store=store, smtp=session, unsubscribe=Unsubscribe(SECRET, PUBLIC),
                           from_addr="shop@natural.example.jp", clock=_clock(NOON + dt.timedelta(minutes=2)))
        assert res.status == "done", res
        live_mails = smtp.messages[tests_sent:]
        assert live_mails and {parseaddr(str(m["From"])) for m in live_mails} == {(name, "shop@natural.example.jp")}
        assert {e["mail_from"] for e in smtp.envelopes[tests_sent:]} == {"shop@natural.example.jp"}


def test_rmail_campaign_exports_without_holdout_and_suppressed(env):
    store, ops = env
    # R-Mail reaches Rakuten buyers who allowed shop mail (FACTS.md §9; the channel table, crm_core.audience.reach)
    store.execute("UPDATE customer_model SET first_source = 'rakuten' WHERE email LIKE 'm%@example.jp'")
    consent.suppress(ops, "email", "m0@example.jp", actor="a")
    out = live.create(store, ops, name="R", channel="rmail", rule=EMAIL_RULE, template=TEMPLATE, actor="a", now=NOON)
    cid = out["campaign_id"]
    ops.execute("UPDATE send_campaigns SET status = 'approved' WHERE campaign_id = ?", [cid])
    live.run(ops, cid, store=store, clock=_clock(NOON))
    rows = live.rmail_export(ops, cid)
    held = {r[0] for r in ops.execute("SELECT customer_id FROM send_ledger WHERE campaign_id = ? AND state = 'held_out'", [cid])}
    assert len(rows) == out["funnel"]["will_receive"] and not held & {r["顧客ID"] for r in rows}
    assert "m0@example.jp" not in {r["メールアドレス"] for r in rows}
    st = live.mark_rmail_sent(ops, cid, "2026-12-03 15:00", "a")
    assert st["status"] == "done" and st["ledger"]["sent"] == len(rows)


def test_ops_file_lives_beside_the_store(env):
    store, _ = env
    assert str(opsdb.ops_path(store.path)).endswith("crm.ops.sqlite")
    with closing(live.open_ops(store)) as ops:
        assert ops.execute("SELECT count(*) FROM send_campaigns").fetchone()[0] == 0




def test_unique_coupon_codes_one_per_recipient(env, line):
    import dataclasses

    from crm_core.messaging import coupons
    from crm_core.messaging import templates as T

    store, ops = env
    coupon_id = coupons.create_coupon(store, coupons.Coupon(name="冬のクーポン", kind="percent", value=10, code_mode="unique",
                                                            channel="line"))
    base = T.get_template(store, TEMPLATE)
    T.save_template(store, dataclasses.replace(base, key="winter_coupon", line_text="あなたのクーポンコード: {{ coupon_code }}"))
    store.execute("DELETE FROM customer_model WHERE customer_id LIKE 'L%' AND customer_id > 'L00040'")  # 40 friends is enough
    out = live.create(store, ops, name="クーポン", channel="line", rule=LINE_RULE, template="winter_coupon", coupon_id=coupon_id,
                      actor="hanako", now=NOON)
    cid = out["campaign_id"]
    assert live.test_send(store, ops, cid, settings=_settings(line), recipient=LINE_USER, actor="hanako").ok
    live.approve(ops, cid, by="hanako", confirm_count=out["funnel"]["will_receive"])
    res = live.run(ops, cid, store=store, line=LineBulk(TOKEN, line.url, sleep=lambda s: None), clock=_clock(NOON))
    assert res.status == "done"
    sent = {r["body"]["to"][0]: r["body"]["messages"][0]["text"] for r in line.multicasts}
    assert len(sent) == out["funnel"]["will_receive"] and all(len(r["body"]["to"]) == 1 for r in line.multicasts)
    codes = [t.rsplit(" ", 1)[-1] for t in sent.values()]
    assert len(set(codes)) == len(codes) and all(codes)
    issued = {r[0] for r in store.fetchall("SELECT code FROM coupon_codes WHERE coupon_id = ?", [coupon_id])}
    assert set(codes) <= issued
