"""A/B with automatic winner: samples first, wait, winner only when significant (else the default, said so), the rest once."""

from __future__ import annotations

import datetime as dt

import pytest

from crm_core.messaging import audit
from crm_core.messaging.channels.line_bulk import LineBulk
from crm_core.results import campaigns as C
from crm_core.results import live
from tests.live_support import LINE_RULE, NOON, TEMPLATE, make_store
from tests.servers.customers import LINE_USER
from tests.servers.line_mock import LineMock

TOKEN = "ab-token"
MULTICAST = "/v2/bot/message/multicast"


@pytest.fixture()
def env(tmp_path):
    store = make_store(tmp_path / "crm.duckdb", line_users=3000)
    ops = live.open_ops(store)
    with LineMock(TOKEN) as line:
        yield store, ops, line
    ops.close()
    store.close()


def _start(store, ops, line):
    from crm_core.messaging.sends import load_settings

    out = live.create(store, ops, name="AB", channel="line", rule=LINE_RULE, template=TEMPLATE, actor="hanako", now=NOON,
                      variants=["A", "B"], variant_templates={"B": "winter_sale_b"}, holdout=0.1, quiet_hours="off",
                      ab={"sample_share": 0.1, "wait_hours": 24, "default": "A"})
    cid = out["campaign_id"]
    settings = load_settings({}, {"LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": line.url, "CRM_TEST_RECIPIENTS": LINE_USER})
    assert live.test_send(store, ops, cid, settings=settings, recipient=LINE_USER, actor="hanako").ok
    assert len(line.pushes) == 2  # both variants test-sent
    live.approve(ops, cid, by="hanako", confirm_count=out["funnel"]["will_receive"])
    bulk = LineBulk(TOKEN, line.url, sleep=lambda s: None)
    first = live.run(ops, cid, store=store, line=bulk, clock=lambda: NOON)
    assert first.status == "ab_waiting", first
    return cid, out, bulk


def _texts_by_user(line) -> dict[str, str]:
    out = {}
    for r in line.multicasts:
        for u in r["body"]["to"]:
            out[u] = r["body"]["messages"][0]["text"]
    return out


def _orders(store, cid, variant: str, rate: float):
    frozen = C.recipients(store, cid)
    sample = frozen[(frozen["variant"] == variant) & (~frozen["holdout"])]["customer_id"].tolist()
    buyers = sample[: int(len(sample) * rate)]
    sent = C.get_campaign(store, cid)["sent_at"]
    for i, customer in enumerate(buyers):
        store.execute("INSERT INTO orders (order_id, source, customer_id, ordered_at, cancelled, total_amount, item_amount) "
                      "VALUES (?, 'generic', ?, ?, FALSE, 5000, 5000)", [f"ab-{variant}-{i}", customer, sent + dt.timedelta(hours=2)])


def test_significant_winner_goes_to_the_rest(env):
    store, ops, line = env
    cid, out, bulk = _start(store, ops, line)
    sample_users = set(_texts_by_user(line))
    n = out["funnel"]["will_receive"]
    assert 0.12 * n < len(sample_users) < 0.28 * n  # about 10 % per variant
    waiting = live.run(ops, cid, store=store, line=bulk, clock=lambda: NOON + dt.timedelta(hours=5))
    assert waiting.status == "ab_waiting" and "勝ちパターン" in waiting.message
    _orders(store, cid, "B", 0.5)
    _orders(store, cid, "A", 0.05)
    done = live.run(ops, cid, store=store, line=bulk, clock=lambda: NOON + dt.timedelta(hours=25))
    assert done.status == "done", done
    c = live.status(ops, cid)
    texts = _texts_by_user(line)
    rest = set(texts) - sample_users
    assert len(texts) == n and len(rest) == n - len(sample_users)
    assert all(texts[u].startswith("【最大50%OFF】") for u in rest)
    assert set(line.delivered_to(MULTICAST).values()) == {1}
    assert c["ab"]["winner"] == "B" and c["ab"]["significant"] and "残り" in c["ab"]["message"]
    frozen = C.recipients(store, cid)
    assert len(frozen) == n + out["funnel"]["holdout"]
    assert "ab_winner" in [e["action"] for e in audit.entries(ops, cid)]


def test_no_significant_difference_keeps_the_default_and_says_so(env):
    store, ops, line = env
    cid, out, bulk = _start(store, ops, line)
    sample_users = set(_texts_by_user(line))
    done = live.run(ops, cid, store=store, line=bulk, clock=lambda: NOON + dt.timedelta(hours=25))
    assert done.status == "done"
    texts = _texts_by_user(line)
    rest = set(texts) - sample_users
    assert rest and all("50%OFF" not in texts[u] for u in rest)
    ab = live.status(ops, cid)["ab"]
    assert ab["winner"] == "A" and not ab["significant"] and "標準のパターンA" in ab["message"]
