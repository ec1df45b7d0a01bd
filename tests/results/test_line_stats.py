"""LINE statistics of the console's own sends: the worker's ``line_stats`` job fetches them from the insight API
(the spec-validating stand-in) and the results page shows withheld values as withheld, never as 0."""

from __future__ import annotations

import datetime as dt
from contextlib import closing

import pytest

from crm_core import clock, jobs, opsdb
from crm_core.messaging.channels.line_bulk import LineBulk, aggregation_unit
from crm_core.messaging.sends import load_settings
from crm_core.results import engagement as EN
from crm_core.results import live
from crm_core.service.context import JobContext
from crm_core.service.kinds import KINDS
from tests.live_support import LINE_RULE, NOON, TEMPLATE, make_store
from tests.servers.customers import LINE_USER
from tests.servers.line_mock import LineMock

TOKEN = "stats-token"


@pytest.fixture()
def sent(tmp_path):
    """A LINE campaign sent at NOON to 60 friends through the stand-in."""
    store = make_store(tmp_path / "crm.duckdb", line_users=60)
    ops = live.open_ops(store)
    with LineMock(TOKEN) as mock:
        out = live.create(store, ops, name="冬のセール", channel="line", rule=LINE_RULE, template=TEMPLATE, actor="hanako",
                          now=NOON, holdout=0.1)
        cid = out["campaign_id"]
        settings = load_settings({}, {"CRM_TEST_RECIPIENTS": LINE_USER, "LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
                                      "LINE_API_BASE_URL": mock.url})
        assert live.test_send(store, ops, cid, settings=settings, recipient=LINE_USER, actor="hanako").ok
        live.approve(ops, cid, by="hanako", confirm_count=out["funnel"]["will_receive"])
        live.run(ops, cid, store=store, line=LineBulk(TOKEN, mock.url, sleep=lambda s: None), clock=lambda: NOON)
        yield store, ops, mock, cid, tmp_path
    ops.close()
    store.close()


def _run_job(tmp_path, monkeypatch, mock):
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("LINE_API_BASE_URL", mock.url)
    ops_path = opsdb.ops_path(tmp_path / "crm.duckdb")
    jobs.enqueue(ops_path, "line_stats", {}, dedupe_key=f"t-{len(mock.requests)}")
    with closing(opsdb.connect(ops_path)) as con:
        job = jobs.claim(con, "test-worker", kinds=["line_stats"])
        ctx = JobContext(job=job, db_path=str(tmp_path / "crm.duckdb"), ops_path=ops_path, inbox=tmp_path / "inbox")
        with clock.frozen(NOON + dt.timedelta(days=2)):
            result = KINDS["line_stats"].run(ctx)
        jobs.finish(con, job, result=result, summary=result["summary"])
    return result


def test_the_job_fetches_the_campaigns_statistics_and_keeps_withheld_values(sent, monkeypatch):
    store, ops, mock, cid, tmp = sent
    mock.unit_stats[aggregation_unit(cid)] = {"uniqueImpression": 41, "uniqueClick": None}
    store.close()  # the job opens the store itself, as the worker does
    result = _run_job(tmp, monkeypatch, mock)
    assert result["fetched"] == [cid] and not result["failed"]
    assert mock.errors == []
    asked = [r for r in mock.requests if r["path"] == "/v2/bot/insight/message/event/aggregation"]
    assert len(asked) == 1
    from crm_core.db import Store

    with Store(tmp / "crm.duckdb") as s:
        stats = EN.message_stats(s, cid)
        assert len(stats) == 1
        row = stats.iloc[0]
        sent_count = live.status(ops, cid)["ledger"]["sent"]
        assert int(row["delivered"]) == sent_count > 0
        assert int(row["opens"]) == 41
        assert row["withheld"] == "unique_clicks"
        table = EN.engagement_table(s, cid)
        assert table.loc[0, "クリックした人数"] == EN.WITHHELD_LABEL
        assert table.loc[0, "開封数"] == "41"
        assert table.loc[0, "配信元"] == "LINE（API）"


def test_a_later_fetch_replaces_the_numbers(sent, monkeypatch):
    store, ops, mock, cid, tmp = sent
    store.close()
    mock.unit_stats[aggregation_unit(cid)] = {}  # everything under 20 at first
    _run_job(tmp, monkeypatch, mock)
    mock.unit_stats[aggregation_unit(cid)] = {"uniqueImpression": 48, "uniqueClick": 22}
    _run_job(tmp, monkeypatch, mock)
    from crm_core.db import Store

    with Store(tmp / "crm.duckdb") as s:
        stats = EN.message_stats(s, cid)
        assert len(stats) == 1
        assert (int(stats.iloc[0]["opens"]), int(stats.iloc[0]["unique_clicks"])) == (48, 22)
        assert stats.iloc[0]["withheld"] is None or stats.iloc[0]["withheld"] != stats.iloc[0]["withheld"]


def test_old_campaigns_are_not_fetched_and_no_line_settings_is_not_a_failure(sent, monkeypatch):
    store, ops, mock, cid, tmp = sent
    assert EN.line_campaigns_to_fetch(ops, NOON + dt.timedelta(days=31)) == []
    assert [c["campaign_id"] for c in EN.line_campaigns_to_fetch(ops, NOON + dt.timedelta(days=29))] == [cid]
    store.close()
    monkeypatch.delenv("LINE_CHANNEL_ACCESS_TOKEN", raising=False)
    ops_path = opsdb.ops_path(tmp / "crm.duckdb")
    jobs.enqueue(ops_path, "line_stats", {})
    with closing(opsdb.connect(ops_path)) as con:
        job = jobs.claim(con, "test-worker", kinds=["line_stats"])
        ctx = JobContext(job=job, db_path=str(tmp / "crm.duckdb"), ops_path=ops_path, inbox=tmp / "inbox")
        result = KINDS["line_stats"].run(ctx)
    assert "LINE" in result["summary"] and not result.get("fetched")


def test_a_narrowcast_send_fetches_its_statistics_by_request_id(tmp_path):
    """Narrowcasts carry no aggregation unit (FACTS.md §9): their statistics come per request id, so a campaign sent as
    narrowcasts still gets LINE's opens and clicks; a withheld value stays withheld."""
    store = make_store(tmp_path / "crm.duckdb", line_users=700)
    ops = live.open_ops(store)
    with LineMock(TOKEN) as mock:
        out = live.create(store, ops, name="大型セール", channel="line", rule=LINE_RULE, template=TEMPLATE, actor="hanako",
                          now=NOON, holdout=0.1)
        cid = out["campaign_id"]
        settings = load_settings({}, {"CRM_TEST_RECIPIENTS": LINE_USER, "LINE_CHANNEL_ACCESS_TOKEN": TOKEN, "LINE_API_BASE_URL": mock.url})
        assert live.test_send(store, ops, cid, settings=settings, recipient=LINE_USER, actor="hanako").ok
        live.approve(ops, cid, by="hanako", confirm_count=out["funnel"]["will_receive"])
        bulk = LineBulk(TOKEN, mock.url, sleep=lambda s: None)
        res = live.run(ops, cid, store=store, line=bulk, clock=lambda: NOON, narrowcast_from=500)
        assert res.status == "done", res
        request_ids = [r[0] for r in ops.execute("SELECT request_id FROM send_batches WHERE campaign_id = ? AND kind = 'narrowcast'"
                                                 " AND state = 'sent'", [cid])]
        assert len(request_ids) == 1
        mock.request_stats[request_ids[0]] = {"uniqueImpression": 312, "uniqueClick": None}
        result = EN.fetch_line_stats(store, ops, bulk, now=NOON + dt.timedelta(days=2))
        assert result["fetched"] == [cid] and not result["failed"] and mock.errors == []
        asked = [r["path"] for r in mock.requests if r["path"].startswith("/v2/bot/insight")]
    assert asked == ["/v2/bot/insight/message/event"]  # no aggregation unit to ask for: nothing went out as multicast
    stats = EN.message_stats(store, cid).iloc[0]
    assert int(stats["delivered"]) == out["funnel"]["will_receive"] and int(stats["opens"]) == 312
    assert stats["withheld"] == "unique_clicks"
    ops.close()
    store.close()
