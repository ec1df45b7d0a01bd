"""LINE（なければメール）: one live campaign over LINE and e-mail, the channel chosen per customer.

A small hand-checkable shop (every customer below is one case of the choice), the real line-bot-sdk
against the spec-validating LINE stand-in and smtplib against aiosmtpd; nothing of ours is mocked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from contextlib import closing

import pandas as pd
import pytest

from crm_core.errors import InputError
from crm_core.messaging import choice, consent
from crm_core.messaging import ledger as L
from crm_core.messaging.channels.email_bulk import SmtpSession
from crm_core.messaging.channels.line_bulk import LineBulk
from crm_core.messaging.sends import load_settings
from crm_core.messaging.unsubscribe import Unsubscribe
from crm_core.results import campaigns as C
from crm_core.results import live
from tests.live_support import JST, LIVE_TOKEN, NOON, PUBLIC, SECRET, TEMPLATE, line_id, make_store
from tests.servers.customers import LINE_USER, OTHER_LINE_USER
from tests.servers.line_mock import LineMock
from tests.servers.smtp_sink import SmtpSink

EVERYONE = {"all": []}
ME = "marketer@example.jp"
MULTICAST = "/v2/bot/message/multicast"
RELAY = "@pc.fw.rakuten.ne.jp"

# customer_id, email, email_opt_in, LINE user id, first_source — and what LINE（なければメール） does with each
CASES = [
    ("A1", None, False, line_id(1), None),              # LINE only                      -> LINE
    ("B1", "b1@example.jp", True, line_id(2), None),    # LINE and e-mail                -> LINE (LINE first)
    ("C1", "c1@example.jp", True, line_id(3), None),    # blocked the LINE account       -> e-mail
    ("D1", "d1@example.jp", True, None, None),          # e-mail only                    -> e-mail
    ("E1", "e1@example.jp", True, None, None),          # unsubscribed from e-mail       -> suppressed
    ("F1", "f1x" + RELAY, True, None, None),            # Rakuten relay address          -> R-Mail export
    ("G1", None, False, line_id(7), None),              # blocked LINE, no e-mail        -> suppressed
    ("H1", "h1@example.jp", False, None, None),         # never allowed e-mail           -> not reachable
    ("I1", "i1@example.jp", True, None, "rakuten"),     # a Rakuten buyer (channel table) -> not reachable
    ("J1", "j1@example.jp", True, None, None),          # 3 messages this week           -> capped
    ("K1", "k1x" + RELAY, True, line_id(11), None),     # blocked LINE + relay address   -> R-Mail export
]
# the three message-test customers of tests/servers/customers.py: C001 and C003 have LINE (-> LINE), C002 allowed no mail


@pytest.fixture()
def shop(tmp_path):
    store = make_store(tmp_path / "crm.duckdb")
    frame = pd.DataFrame(CASES, columns=["customer_id", "email", "email_opt_in", "line_user_id", "first_source"])
    frame["has_line"] = frame["line_user_id"].notna()
    with store.transaction() as cur:
        cur.register("cases", frame)
        cur.execute("INSERT INTO customer_model (customer_id, name, email, email_opt_in, line_user_id, has_line, first_source, orders,"
                    " revenue, aov, recency_days, as_of) SELECT customer_id, 'お客様' || customer_id, email, email_opt_in, line_user_id,"
                    " has_line, first_source, 1, 1000, 1000, 30, DATE '2026-11-22' FROM cases")
        cur.unregister("cases")
    ops = live.open_ops(store)
    consent.suppress(ops, "line", line_id(3), source="webhook", actor="line")      # C1 blocked the account
    consent.suppress(ops, "line", line_id(7), source="webhook", actor="line")      # G1 too
    consent.suppress(ops, "line", line_id(11), source="webhook", actor="line")     # K1 too
    consent.suppress(ops, "email", "E1@example.jp", source="unsubscribe", actor="e1")
    for n in (90, 91, 92):  # J1 had three LINE messages this week: the 7-day cap counts every channel
        ops.execute("INSERT INTO send_ledger (campaign_id, customer_id, channel, state, updated_at, sent_at)"
                    " VALUES (?, 'J1', 'line', 'sent', ?, ?)", [n, L.iso(NOON), L.iso(NOON - dt.timedelta(days=1))])
    yield store, ops
    ops.close()
    store.close()


def _settings(line=None, smtp=None):
    environ = {"CRM_TEST_RECIPIENTS": f"{LINE_USER},{ME}"}
    if line:
        environ |= {"LINE_CHANNEL_ACCESS_TOKEN": LIVE_TOKEN, "LINE_API_BASE_URL": line.url}
    if smtp:
        environ |= {"SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port), "SMTP_FROM": "shop@natural.example.jp", "SMTP_STARTTLS": "false"}
    return load_settings({}, environ)


# -- the choice -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("person", "setting", "expected"), [
    ({"line": "U1", "email": "a@x.jp"}, "line_or_email", ("queued", "line", "U1", None)),
    ({"line": "Ublocked", "email": "a@x.jp"}, "line_or_email", ("queued", "email", "a@x.jp", None)),
    ({"line": None, "email": "a@x.jp"}, "line_or_email", ("queued", "email", "a@x.jp", None)),
    ({"line": None, "email": "Gone@x.jp"}, "line_or_email", ("suppressed", "email", "Gone@x.jp", "opt_out")),
    ({"line": "Ublocked", "email": None}, "line_or_email", ("suppressed", "line", "Ublocked", "opt_out")),
    ({"line": "Ublocked", "email": "r" + RELAY}, "line_or_email", ("suppressed", "email", "r" + RELAY, "rakuten_relay")),
    ({"line": None, "email": None}, "line_or_email", ("unreachable", None, "", None)),
    (None, "line_or_email", ("unreachable", None, "", None)),
    ({"line": "U1", "email": "a@x.jp"}, "email", ("queued", "email", "a@x.jp", None)),
    ({"line": "Ublocked", "email": "a@x.jp"}, "line", ("suppressed", "line", "Ublocked", "opt_out")),
    ({"line": None, "email": "a@x.jp"}, "line", ("unreachable", None, "", None)),
], ids=["both-line", "blocked-line-email", "email-only", "email-opted-out", "blocked-no-email", "blocked-relay", "none",
        "unknown", "email-setting", "line-setting-blocked", "line-setting-no-id"])
def test_choice_line_first_then_email(person, setting, expected):
    blocked = {"line": {"Ublocked"}, "email": {"gone@x.jp"}}
    c = choice.choose(person, setting, blocked)
    assert (c.state, c.channel, c.address, c.reason) == expected


def test_people_reads_reach_from_the_channel_table(shop):
    store, _ = shop
    people = choice.people(store, ["A1", "B1", "H1", "I1", "C002"])
    assert people["A1"] == {"line": line_id(1), "email": None}
    assert people["B1"] == {"line": line_id(2), "email": "b1@example.jp"}
    assert people["H1"] == {"line": None, "email": None}  # never allowed e-mail
    assert people["I1"] == {"line": None, "email": None}  # a Rakuten buyer: own e-mail does not reach them


# -- the funnel -----------------------------------------------------------------------------------
def test_funnel_counts_both_channels_on_a_hand_checked_shop(shop):
    store, ops = shop
    f = live.funnel(store, ops, rule=EVERYONE, channel="line_or_email", campaign_id=500, holdout=0.0, variants=["A"],
                    frequency_cap=3, now=NOON)
    by_id = {r["customer_id"]: (r["state"], r["channel"], r["reason"]) for r in f.rows}
    assert by_id == {
        "C001": ("queued", "line", None), "C003": ("queued", "line", None), "A1": ("queued", "line", None),
        "B1": ("queued", "line", None), "C1": ("queued", "email", None), "D1": ("queued", "email", None),
        "E1": ("suppressed", "email", "opt_out"), "G1": ("suppressed", "line", "opt_out"),
        "F1": ("suppressed", "email", "rakuten_relay"), "K1": ("suppressed", "email", "rakuten_relay"),
        "J1": ("capped", "email", "3 in 7 days"),
    }
    assert f.counts == {"segment": 14, "reachable": 11, "suppressed": 2, "rakuten_relay": 2, "capped": 1, "holdout": 0,
                        "will_receive": 6, "reachable_line": 7, "reachable_email": 9, "will_receive_line": 4, "will_receive_email": 2}
    table = {r["段階"]: r["人数"] for r in live.funnel_table(f.counts)}
    assert table["送信する人数（LINE）"] == 4 and table["送信する人数（メール）"] == 2 and table["送信する人数"] == 6


def test_one_channel_funnels_are_unchanged_by_the_shared_choice(shop):
    store, ops = shop
    line = live.funnel(store, ops, rule=EVERYONE, channel="line", campaign_id=500, holdout=0.0, variants=["A"], frequency_cap=3, now=NOON)
    email = live.funnel(store, ops, rule=EVERYONE, channel="email", campaign_id=500, holdout=0.0, variants=["A"], frequency_cap=3, now=NOON)
    assert {r["customer_id"] for r in line.rows if r["state"] == "queued"} == {"C001", "C003", "A1", "B1"}
    assert line.counts["suppressed"] == 3 and "will_receive_line" not in line.counts  # C1, G1, K1 blocked LINE
    assert {r["customer_id"] for r in email.rows if r["state"] == "queued"} == {"C001", "C003", "B1", "C1", "D1"}
    assert email.counts["rakuten_relay"] == 2 and email.counts["suppressed"] == 1 and email.counts["capped"] == 1


def test_holdout_is_drawn_over_the_whole_audience_before_the_channel(tmp_path):
    store = make_store(tmp_path / "crm.duckdb", line_users=300, emails=300)
    with closing(live.open_ops(store)) as ops:
        mixed = live.funnel(store, ops, rule=EVERYONE, channel="line_or_email", campaign_id=321, holdout=0.2, variants=["A", "B"], now=NOON)
        one = {ch: live.funnel(store, ops, rule=EVERYONE, channel=ch, campaign_id=321, holdout=0.2, variants=["A", "B"], now=NOON)
               for ch in ("line", "email")}
    store.close()
    held = {r["customer_id"] for r in mixed.rows if r["state"] == "held_out"}
    sendable = [r for r in mixed.rows if r["state"] in ("queued", "held_out")]
    # one draw per customer, the same whichever channel the customer gets (and the same as a one-channel send's)
    assert held == {r["customer_id"] for r in sendable if C.assign(321, r["customer_id"], 0.2, ["A", "B"])[1]}
    for ch, f in one.items():
        assert {r["customer_id"] for r in f.rows if r["state"] == "held_out"} == {r["customer_id"] for r in sendable
                                                                                  if r["channel"] == ch and r["customer_id"] in held}
    # a held-out customer keeps the channel they would have had: both channels have a holdout of about the same share
    for ch in ("line", "email"):
        rows = [r for r in sendable if r["channel"] == ch]
        share = sum(r["state"] == "held_out" for r in rows) / len(rows)
        assert 0.12 < share < 0.28, (ch, share)
    assert mixed.counts["holdout"] == len(held)
    assert mixed.counts["will_receive_line"] + mixed.counts["will_receive_email"] == mixed.counts["will_receive"]


# -- create: lint per channel, cost per channel --------------------------------------------------
def test_create_lints_each_channel_and_prices_each_part(shop):
    store, ops = shop
    out = live.create(store, ops, name="冬のセール", channel="line_or_email", rule=EVERYONE, template=TEMPLATE, actor="hanako",
                      holdout=0.0, frequency_cap=3, now=NOON)
    assert out["funnel"]["will_receive_line"] == 4 and out["funnel"]["will_receive_email"] == 2
    assert {x["channel"] for x in out["lint"]} <= {"line", "email"}
    cost = live.send_cost(store, "line_or_email", out["funnel"])
    assert [(p["channel"], p["messages"]) for p in cost["parts"]] == [("line", 4), ("email", 2)]
    assert cost["parts"][1]["yen"] is None and cost["yen"] == cost["parts"][0]["yen"]
    previews = live.previews(store, ops, out["campaign_id"])
    assert {p["channel"] for p in previews} == {"line", "email"}
    email = next(p for p in previews if p["channel"] == "email")
    assert email["customer_id"] in {"C1", "D1"} and "冬のセール" in email["rendered"].subject
    line = next(p for p in previews if p["channel"] == "line")
    assert line["rendered"].line_messages


def test_a_marketing_mail_without_the_display_items_cannot_be_sent_even_as_the_fallback(shop):
    store, ops = shop
    from crm_core.messaging import templates as T

    bare = dataclasses.replace(T.get_template(store, TEMPLATE), key="winter_bare", label="表示なし", email_footer="",
                               email_body="冬のセールを開催中です。")
    T.save_template(store, bare)  # no sender, address, opt-out statement or contact: 特定電子メール法's display items are missing
    with pytest.raises(InputError, match="このメールは送信できません") as refused:
        live.create(store, ops, name="冬", channel="line_or_email", rule=EVERYONE, template="winter_bare", actor="a", holdout=0.0,
                    frequency_cap=3, now=NOON)
    assert "直し方: " in str(refused.value)  # the refusal says what to change, not only what is wrong
    # a LINE message is not an e-mail: the same template may go out on LINE alone
    assert live.create(store, ops, name="冬", channel="line", rule=EVERYONE, template="winter_bare", actor="a", holdout=0.0,
                       frequency_cap=3, now=NOON)["funnel"]["will_receive"] == 4


# -- test send per channel, approval, send ----------------------------------------------------------
def test_each_channel_needs_its_test_send_before_approval(shop):
    store, ops = shop
    with LineMock(LIVE_TOKEN) as line, SmtpSink() as smtp:
        out = live.create(store, ops, name="冬", channel="line_or_email", rule=EVERYONE, template=TEMPLATE, actor="hanako",
                          holdout=0.0, frequency_cap=3, now=NOON)
        cid, n = out["campaign_id"], out["funnel"]["will_receive"]
        with pytest.raises(InputError, match="テスト送信するチャネル"):
            live.test_send(store, ops, cid, settings=_settings(line, smtp), recipient=LINE_USER, actor="hanako")
        assert live.test_send(store, ops, cid, settings=_settings(line, smtp), recipient=LINE_USER, actor="hanako", channel="line").ok
        assert live.status(ops, cid)["tested_channels"] == ["line"] and not live.status(ops, cid)["tested"]
        with pytest.raises(InputError, match="まだテスト送信していないチャネル: メール"):
            live.approve(ops, cid, by="hanako", confirm_count=n)
        assert live.test_send(store, ops, cid, settings=_settings(line, smtp), recipient=ME, actor="hanako", channel="email").ok
        assert live.status(ops, cid)["tested"]
        assert len(line.pushes) == 1 and len(smtp.messages) == 1 and str(smtp.messages[0]["Subject"]).startswith("【テスト】")
        with pytest.raises(InputError, match="人数"):
            live.approve(ops, cid, by="hanako", confirm_count=n - 1)
        assert live.approve(ops, cid, by="hanako", confirm_count=n)["status"] == "approved"


def _approved_mixed(store, ops, line, smtp, holdout=0.0):
    out = live.create(store, ops, name="冬のセール", channel="line_or_email", rule=EVERYONE, template=TEMPLATE, actor="hanako",
                      holdout=holdout, frequency_cap=3, now=NOON)
    cid = out["campaign_id"]
    for ch, to in (("line", LINE_USER), ("email", ME)):
        assert live.test_send(store, ops, cid, settings=_settings(line, smtp), recipient=to, actor="hanako", channel=ch).ok
    live.approve(ops, cid, by="hanako", confirm_count=out["funnel"]["will_receive"])
    return cid, out


def test_each_recipient_gets_exactly_one_message_on_the_right_channel(shop):
    store, ops = shop
    with LineMock(LIVE_TOKEN) as line, SmtpSink() as smtp:
        line.keep_requests = True
        cid, out = _approved_mixed(store, ops, line, smtp)
        unsub = Unsubscribe(SECRET, PUBLIC)
        with SmtpSession(smtp.host, smtp.port, starttls=False) as session:
            res = live.run(ops, cid, store=store, line=LineBulk(LIVE_TOKEN, line.url, sleep=lambda s: None), smtp=session,
                           unsubscribe=unsub, from_addr="shop@natural.example.jp", clock=lambda: NOON)
    assert res.status == "done", res
    assert line.errors == []
    assert line.delivered_to(MULTICAST) == {LINE_USER: 1, OTHER_LINE_USER: 1, line_id(1): 1, line_id(2): 1}
    mails = [m for m in smtp.messages if not str(m["Subject"]).startswith("【テスト】")]
    assert sorted(str(m["To"]) for m in mails) == ["c1@example.jp", "d1@example.jp"]
    assert all(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in mails)
    ledger = {r[0]: (r[1], r[2]) for r in ops.execute("SELECT customer_id, channel, state FROM send_ledger_now WHERE campaign_id = ?", [cid])}
    assert ledger == {"C001": ("line", "sent"), "C003": ("line", "sent"), "A1": ("line", "sent"), "B1": ("line", "sent"),
                      "C1": ("email", "sent"), "D1": ("email", "sent"), "E1": ("email", "suppressed"), "G1": ("line", "suppressed"),
                      "F1": ("email", "suppressed"), "K1": ("email", "suppressed"), "J1": ("email", "capped")}
    st = live.status(ops, cid)
    assert st["by_channel"]["line"]["sent"] == 4 and st["by_channel"]["email"]["sent"] == 2
    assert {r["顧客ID"] for r in live.rmail_export(ops, cid)} == {"F1", "K1"}  # relay addresses go to R-Mail as for e-mail sends
    camp = C.get_campaign(store, cid)  # frozen for the results page under the one campaign id
    assert camp["channel"] == "line_or_email" and len(C.recipients(store, cid)) == 6
    assert C.CHANNEL_LABELS[camp["channel"]] == "LINE（なければメール）"


def test_pause_and_resume_across_channels_never_sends_twice(shop):
    store, ops = shop
    with LineMock(LIVE_TOKEN) as line, SmtpSink() as smtp:
        line.keep_requests = True
        cid, out = _approved_mixed(store, ops, line, smtp)
        unsub = Unsubscribe(SECRET, PUBLIC)
        bulk = LineBulk(LIVE_TOKEN, line.url, sleep=lambda s: None)
        # no SMTP server configured yet: the LINE part goes out, the e-mail part waits (paused), nothing is lost
        first = live.run(ops, cid, store=store, line=bulk, smtp=None, unsubscribe=unsub, from_addr="shop@natural.example.jp",
                         clock=lambda: NOON)
        assert first.status == "paused" and "メールの送信設定" in first.message
        assert live.channel_counts(ops, cid)["line"]["sent"] == 4 and live.channel_counts(ops, cid)["email"]["queued"] == 2
        live.resume(ops, cid, "hanako")
        with SmtpSession(smtp.host, smtp.port, starttls=False) as session:
            second = live.run(ops, cid, store=store, line=None, smtp=session, unsubscribe=unsub,
                              clock=lambda: NOON + dt.timedelta(minutes=5))
    assert second.status == "done", second
    assert set(line.delivered_to(MULTICAST).values()) == {1} and len(line.delivered_to(MULTICAST)) == 4
    assert sorted(str(m["To"]) for m in smtp.messages if not str(m["Subject"]).startswith("【テスト】")) == ["c1@example.jp", "d1@example.jp"]


def test_cancel_stops_both_channels(shop):
    store, ops = shop
    with LineMock(LIVE_TOKEN) as line, SmtpSink() as smtp:
        cid, _ = _approved_mixed(store, ops, line, smtp)
        live.cancel(ops, cid, "hanako")
        res = live.run(ops, cid, store=store, line=LineBulk(LIVE_TOKEN, line.url), clock=lambda: NOON)
    assert res.status == "cancelled" and line.multicasts == [] and len(smtp.messages) == 1  # only the test mail


def test_an_existing_operations_store_is_migrated(tmp_path):
    """A store made before LINE（なければメール） keeps its campaigns and accepts the new channel."""
    import sqlite3

    from crm_core import opsdb

    path = tmp_path / "old.ops.sqlite"
    con = sqlite3.connect(path)
    con.executescript(L.MIGRATIONS[0])
    con.execute("CREATE TABLE ops_schema (component TEXT NOT NULL, version INTEGER NOT NULL, applied_at TEXT, PRIMARY KEY (component, version))")
    con.execute("INSERT INTO ops_schema (component, version) VALUES ('ledger', 1)")
    con.execute("INSERT INTO send_campaigns (campaign_id, name, channel, template, send_at, created_by, created_at, tested_hash)"
                " VALUES (7, '秋', 'email', 't', '2026-10-01T00:00:00+00:00', 'a', '2026-10-01T00:00:00+00:00', 'h')")
    con.commit()
    con.close()
    with closing(opsdb.connect(path)) as ops:
        old = L.get(ops, 7)
        assert old["name"] == "秋" and old["channel"] == "email" and old["tested_hash"] == "h" and old["tested_channels"] == {}
        ops.execute("INSERT INTO send_campaigns (campaign_id, name, channel, template, send_at, created_by, created_at)"
                    " VALUES (8, '冬', 'line_or_email', 't', '2026-12-01T00:00:00+00:00', 'a', '2026-12-01T00:00:00+00:00')")
        with pytest.raises(sqlite3.IntegrityError):
            ops.execute("INSERT INTO send_campaigns (campaign_id, name, channel, template, send_at, created_by, created_at)"
                        " VALUES (9, 'x', 'fax', 't', '2026-12-01T00:00:00+00:00', 'a', '2026-12-01T00:00:00+00:00')")


def test_unknown_channel_is_refused_in_japanese(shop):
    store, ops = shop
    with pytest.raises(InputError, match="LINE（なければメール）"):
        live.create(store, ops, name="冬", channel="fax", rule=EVERYONE, template=TEMPLATE, actor="a", now=NOON)
    assert JST  # the shared clock zone of the live tests


def test_results_split_by_channel_against_the_holdout_that_would_have_got_it(tmp_path):
    store = make_store(tmp_path / "crm.duckdb", line_users=30, emails=30)
    ops = live.open_ops(store)
    with LineMock(LIVE_TOKEN) as line, SmtpSink() as smtp:
        cid, out = _approved_mixed(store, ops, line, smtp, holdout=0.5)
        with SmtpSession(smtp.host, smtp.port, starttls=False) as session:
            res = live.run(ops, cid, store=store, line=LineBulk(LIVE_TOKEN, line.url, sleep=lambda s: None), smtp=session,
                           unsubscribe=Unsubscribe(SECRET, PUBLIC), from_addr="shop@natural.example.jp", clock=lambda: NOON)
    assert res.status == "done", res
    rows = {r[0]: (r[1], r[2]) for r in ops.execute("SELECT customer_id, channel, state FROM send_ledger_now WHERE campaign_id = ?"
                                                     " AND state IN ('sent', 'held_out')", [cid])}
    # the next day, two of each channel's recipients and one of each channel's holdout order
    buyers = [c for ch in ("line", "email") for state, k in (("sent", 2), ("held_out", 1))
              for c in sorted(c for c, (x, s) in rows.items() if x == ch and s == state)[:k]]
    assert len(buyers) == 6
    for i, customer in enumerate(buyers):
        store.execute("INSERT INTO orders (order_id, source, customer_id, ordered_at, cancelled, total_amount)"
                      " VALUES (?, 'generic', ?, TIMESTAMP '2026-12-04 10:00:00', FALSE, 3000)", [f"o{i}", customer])
    got = {r["channel"]: r for r in live.results_by_channel(store, ops, cid)}
    for ch in ("line", "email"):
        mine = {c: s for c, (k, s) in rows.items() if k == ch}
        assert got[ch]["recipients"] == sum(s == "sent" for s in mine.values()) > 0
        assert got[ch]["holdout"] == sum(s == "held_out" for s in mine.values()) > 0
        assert (got[ch]["buyers"], got[ch]["holdout_buyers"]) == (2, 1)
        assert got[ch]["diff"] == pytest.approx(2 / got[ch]["recipients"] - 1 / got[ch]["holdout"])
    assert live.results_by_channel(store, ops, 999) == []
    ops.close()
    store.close()


def test_ab_samples_then_the_rest_on_each_recipients_own_channel(tmp_path):
    """An automatic A/B test on LINE（なければメール）: samples first, the rest after the decision, each on its own channel,
    nobody twice."""
    store = make_store(tmp_path / "crm.duckdb", line_users=300, emails=200)
    ops = live.open_ops(store)
    with LineMock(LIVE_TOKEN) as line, SmtpSink() as smtp:
        line.keep_requests = True
        out = live.create(store, ops, name="AB", channel="line_or_email", rule=EVERYONE, template=TEMPLATE, actor="hanako", now=NOON,
                          variants=["A", "B"], variant_templates={"B": "winter_sale_b"}, holdout=0.1, quiet_hours="off",
                          frequency_cap=0, ab={"sample_share": 0.1, "wait_hours": 24, "default": "A"})
        cid, n = out["campaign_id"], out["funnel"]["will_receive"]
        for ch, to in (("line", LINE_USER), ("email", ME)):
            assert live.test_send(store, ops, cid, settings=_settings(line, smtp), recipient=to, actor="hanako", channel=ch).ok
        live.approve(ops, cid, by="hanako", confirm_count=n)
        unsub = Unsubscribe(SECRET, PUBLIC)
        with SmtpSession(smtp.host, smtp.port, starttls=False) as session:
            kw = {"store": store, "line": LineBulk(LIVE_TOKEN, line.url, sleep=lambda s: None), "smtp": session,
                  "unsubscribe": unsub, "from_addr": "shop@natural.example.jp"}
            first = live.run(ops, cid, clock=lambda: NOON, **kw)
            assert first.status == "ab_waiting", first
            sampled = live.channel_counts(ops, cid)
            assert sampled["line"]["sent"] > 0 and sampled["email"]["sent"] > 0
            done = live.run(ops, cid, clock=lambda: NOON + dt.timedelta(hours=25), **kw)
        assert done.status == "done", done
        ledger = {r[0]: (r[1], r[2], r[3]) for r in ops.execute(
            "SELECT customer_id, channel, address, variant FROM send_ledger_now WHERE campaign_id = ? AND state = 'sent'", [cid])}
        got_line = line.delivered_to(MULTICAST)
        mails = [str(m["To"]) for m in smtp.messages if not str(m["Subject"]).startswith("【テスト】")]
    assert len(ledger) == n
    assert set(got_line) == {a for ch, a, _ in ledger.values() if ch == "line"} and set(got_line.values()) == {1}
    assert sorted(mails) == sorted(a for ch, a, _ in ledger.values() if ch == "email")
    assert {v for _, _, v in ledger.values()} == {"A", "B"}
    ops.close()
    store.close()


def test_a_channel_that_gains_recipients_after_approval_needs_its_test_send_first(shop):
    """Nobody was to get e-mail when the campaign was tested and approved; by the send an e-mail recipient appears:
    the send pauses before anything goes out, and continues once that channel was test-sent."""
    store, ops = shop
    for address in ("c1@example.jp", "d1@example.jp"):  # at creation the two e-mail recipients had unsubscribed
        consent.record(ops, "email", address, "opt_out", "unsubscribe", occurred_at=NOON - dt.timedelta(days=1))
    with LineMock(LIVE_TOKEN) as line, SmtpSink() as smtp:
        line.keep_requests = True
        out = live.create(store, ops, name="冬", channel="line_or_email", rule=EVERYONE, template=TEMPLATE, actor="hanako",
                          holdout=0.0, frequency_cap=3, now=NOON)
        cid = out["campaign_id"]
        assert out["funnel"]["will_receive_email"] == 0 and live.status(ops, cid)["channels"] == ["line"]
        assert live.test_send(store, ops, cid, settings=_settings(line, smtp), recipient=LINE_USER, actor="hanako", channel="line").ok
        live.approve(ops, cid, by="hanako", confirm_count=out["funnel"]["will_receive"])
        consent.record(ops, "email", "d1@example.jp", "opt_in", "manual", occurred_at=NOON)  # D1 asks for mail again
        unsub = Unsubscribe(SECRET, PUBLIC)
        with SmtpSession(smtp.host, smtp.port, starttls=False) as session:
            kw = {"store": store, "line": LineBulk(LIVE_TOKEN, line.url, sleep=lambda s: None), "smtp": session, "unsubscribe": unsub,
                  "from_addr": "shop@natural.example.jp"}
            paused = live.run(ops, cid, clock=lambda: NOON + dt.timedelta(minutes=1), **kw)
            assert paused.status == "paused" and "メールでテスト送信してから" in paused.message
            assert line.multicasts == [] and L.counts(ops, cid)["sent"] == 0
            assert live.test_send(store, ops, cid, settings=_settings(line, smtp), recipient=ME, actor="hanako", channel="email").ok
            live.resume(ops, cid, "hanako")
            done = live.run(ops, cid, clock=lambda: NOON + dt.timedelta(minutes=2), **kw)
        assert done.status == "done", done
        assert len(line.delivered_to(MULTICAST)) == 4
        assert [str(m["To"]) for m in smtp.messages if not str(m["Subject"]).startswith("【テスト】")] == ["d1@example.jp"]
