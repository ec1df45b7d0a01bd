"""The one channel table (crm_core.audience.reach): every stage counts the same customers per channel.

Five hand-made customers, one per case FACTS.md decides (§1 Rakuten relay
addresses, §9 R-Mail goes to Rakuten buyers who opted in):

====  =============  ===========================  ======  ============
id    first source   e-mail                       opt-in  LINE user id
====  =============  ===========================  ======  ============
A     shopify        a@example.jp                 yes     —
B     rakuten        b1@pc.fw.rakuten.ne.jp        yes     —
C     rakuten        c1@pc.fw.rakuten.ne.jp        no      —
D     shopify        —                            yes     —
E     generic        —                            —       U…e
====  =============  ===========================  ======  ============

Own e-mail reaches A only (B's address is a Rakuten relay address; D has no
address); R-Mail reaches B only (a Rakuten buyer who opted in — not A, who
opted in on Shopify); Shopify Email reaches A; LINE reaches E; the segment
builder's mailing list 「メールで届く」 is A and B (whichever tool then sends).
"""

from __future__ import annotations

import pytest

from crm_core.audience import reach, segments
from crm_core.db import Store
from crm_core.messaging import templates
from crm_core.planning import costs, planner
from crm_core.results import campaigns as C
from tests.servers.customers import seed_customers

EVERYONE = {"all": []}
PEOPLE = [
    ("A", "shopify", "a@example.jp", True, None),
    ("B", "rakuten", "b1@pc.fw.rakuten.ne.jp", True, None),
    ("C", "rakuten", "c1@pc.fw.rakuten.ne.jp", False, None),
    ("D", "shopify", None, True, None),
    ("E", "generic", None, None, "U" + "e" * 32),
]
EXPECTED = {"email": {"A"}, "rmail": {"B"}, "shopify_email": {"A"}, "line": {"E"}, "mail_list": {"A", "B"}}


@pytest.fixture()
def five(tmp_path):
    store = Store(tmp_path / "crm.duckdb")
    seed_customers(store, shop=False)
    store.execute("DELETE FROM customer_model")
    for cid, source, email, opt, line in PEOPLE:
        store.execute(
            "INSERT INTO customer_model (customer_id, name, email, email_opt_in, line_user_id, has_line, first_source, "
            "orders, revenue, aov, recency_days, as_of) VALUES (?, ?, ?, ?, ?, ?, ?, 1, 1000, 1000, 30, DATE '2026-11-22')",
            [cid, f"顧客{cid}", email, opt, line, line is not None, source],
        )
    yield store
    store.close()


def _reached(store: Store, key: str) -> set[str]:
    sql = "SELECT cm.customer_id FROM customer_model AS cm WHERE " + reach.reach_sql(key)  # noqa: S608 - the table's fixed predicate
    return {r[0] for r in store.fetchall(sql)}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_the_table_reaches_the_customers_facts_md_allows(five, key):
    assert _reached(five, key) == EXPECTED[key]
    assert reach.explain_reach(five, key).reachable == len(EXPECTED[key])


@pytest.mark.parametrize("key", ["line", "rmail", "shopify_email", "email"])
def test_planner_counts_read_the_table(five, key):
    assert planner.recipients(five, None, key) == len(EXPECTED[key])


@pytest.mark.parametrize("key", ["line", "email", "rmail"])
def test_campaign_freezing_and_live_audience_read_the_table(five, key):
    cid = C.freeze_campaign(five, f"{key}の配信", key, "2026-11-22 20:00", rule=EVERYONE, holdout_share=0, reach="channel")
    assert set(C.recipients(five, cid)["customer_id"]) == EXPECTED[key]
    assert set(C.audience_ids(five, EVERYONE, key)["ids"]) == EXPECTED[key]


def test_segment_builder_counts_read_the_table(five):
    s = segments.summary(five, EVERYONE)
    assert (s["email_reachable"], s["line_reachable"]) == (len(EXPECTED["mail_list"]), len(EXPECTED["line"]))


def test_own_email_to_rakuten_buyers_only_is_explained(five):
    note = reach.explain_reach(five, "email", {"all": [{"field": "customer_id", "op": "in", "value": ["B", "C"]}]})
    assert note.reachable == 0 and note.fix == "channel" and "転送用" in note.reason


def test_every_stage_shares_the_table_keys_labels_templates_and_costs():
    assert planner.CHANNELS == costs.CHANNEL_LABELS == {k: c.label for k, c in reach.CHANNELS.items()}
    assert {k: reach.CHANNELS[k].label for k in ("line", "email", "rmail")} == C.CHANNELS
    assert planner.explain_reach is reach.explain_reach
    for c in reach.CHANNELS.values():
        assert c.template_channel in templates.CHANNELS
        assert c.cost_key in ("line", "rmail", "shopify_email", "none")
    assert {c.key: c.cost_key for c in reach.CHANNELS.values()} == {
        "line": "line", "rmail": "rmail", "shopify_email": "shopify_email", "email": "none"}
