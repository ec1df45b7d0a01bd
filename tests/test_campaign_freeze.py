"""Recording a campaign: outside sends on Rakuten data, zero explained, recipients as of the send time."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from crm_core import model
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.pipeline import import_files
from crm_core.results import campaigns as C
from tests import fixtures as fx
from tests.sample_store import sample_db

pytestmark = pytest.mark.slow  # the sample shop, subprocesses and AppTest pages

ROOT = Path(__file__).resolve().parents[1]
EVERYONE = {"all": []}


@pytest.fixture
def rakuten_store(tmp_path):
    """A shop with only a Rakuten export: relay addresses, no opt-in column, no LINE ids."""
    store = Store(tmp_path / "crm.duckdb")
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv")])
    yield store
    store.close()


def test_rmail_send_recorded_on_rakuten_data(rakuten_store):
    buyers = {r[0] for r in rakuten_store.fetchall("SELECT customer_id FROM customer_model")}
    cid = C.freeze_campaign(rakuten_store, "定期便のご案内", "rmail", "2025-04-01 20:00", rule=EVERYONE, holdout_share=0)
    assert set(C.recipients(rakuten_store, cid)["customer_id"]) == buyers


def test_outside_line_send_marked_as_sent_is_not_filtered(rakuten_store):
    cid = C.freeze_campaign(rakuten_store, "LINE（外部）", "line", "2025-04-01 12:00", rule=EVERYONE, holdout_share=0,
                            marked_only=True)
    assert len(C.recipients(rakuten_store, cid)) == rakuten_store.scalar("SELECT count(*) FROM customer_model")


@pytest.mark.parametrize(
    ("channel", "kwargs", "words"),
    [
        ("line", {}, ("LINEユーザーIDが登録されている", "LINE友だち", "送信済みとして記録")),
        ("email", {}, ("メール配信を許可", "メール配信許可（メルマガ希望")),
        ("rmail", {"reach": "channel"}, ("メール配信を許可している", "お客様全員")),
    ],
)
def test_zero_recipients_says_which_filter_removed_everyone(rakuten_store, channel, kwargs, words):
    with pytest.raises(InputError) as err:
        C.freeze_campaign(rakuten_store, "x", channel, "2025-04-01 12:00", rule=EVERYONE, **kwargs)
    message = err.value.message
    assert message.startswith("配信対象のお客様が0人です。")
    assert "1人のうち" in message
    for word in words:
        assert word in message


def test_zero_recipients_from_the_segment_itself_names_the_rule(rakuten_store):
    rule = {"all": [{"field": "orders", "op": ">=", "value": 50}]}
    with pytest.raises(InputError) as err:
        C.freeze_campaign(rakuten_store, "x", "rmail", "2025-04-01 12:00", rule=rule)
    assert "購入回数50回以上" in err.value.message and "当てはまるお客様がいません" in err.value.message


def _first_orders(store: Store) -> dict[str, dt.datetime]:
    return dict(store.fetchall(
        "SELECT customer_id, min(ordered_at) FROM orders WHERE NOT coalesce(cancelled, FALSE) GROUP BY 1"))


def test_backdated_freeze_uses_the_customers_of_the_send_day(tmp_path):
    store = Store(sample_db(tmp_path / "crm.duckdb"))
    stored = (model.stored_as_of(store), store.scalar("SELECT count(*) FROM customer_model"),
              store.scalar("SELECT sum(hash(customer_id, recency_days, rank)) FROM customer_model"))
    sent = dt.datetime(2025, 9, 1, 12, 0)
    day_start = dt.datetime(2025, 9, 1)
    first = _first_orders(store)
    late = {c for c, t in first.items() if t >= sent}
    with_line = {r[0] for r in store.fetchall("SELECT customer_id FROM customers WHERE coalesce(trim(line_user_id), '') <> ''")}
    assert late & with_line  # the case of the issue: today's LINE customers who first bought after the send

    cid = C.freeze_campaign(store, "過去の配信", "line", sent, rule=EVERYONE, holdout_share=0.1)
    got = set(C.recipients(store, cid)["customer_id"])
    assert not got & late
    assert got == {c for c, t in first.items() if t < day_start} & with_line
    # the stored model was not replaced
    assert (model.stored_as_of(store), store.scalar("SELECT count(*) FROM customer_model"),
            store.scalar("SELECT sum(hash(customer_id, recency_days, rank)) FROM customer_model")) == stored


def test_backdated_rule_is_evaluated_as_of_the_send(tmp_path):
    store = Store(sample_db(tmp_path / "crm.duckdb"))
    sent = dt.datetime(2025, 9, 1, 12, 0)
    as_of = dt.date(2025, 8, 31)
    rule = {"all": [{"field": "recency_days", "op": ">=", "value": 90}]}
    cid = C.freeze_campaign(store, "休眠（過去）", "rmail", sent, rule=rule, holdout_share=0)
    last = store.fetchall(
        "SELECT customer_id, max(CAST(ordered_at AS DATE)) FROM orders "
        "WHERE NOT coalesce(cancelled, FALSE) AND ordered_at < ? GROUP BY 1", [dt.datetime(2025, 9, 1)])
    expected = {c for c, d in last if (as_of - d).days >= 90}
    assert set(C.recipients(store, cid)["customer_id"]) == expected
    assert C.get_campaign(store, cid)["rule"] == rule


def test_cli_freeze_rmail_on_rakuten_data_and_explained_refusal(tmp_path):
    db = tmp_path / "crm.duckdb"
    env = {"PATH": "/usr/bin:/bin", "CRM_NO_SAMPLE": "1"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "crm_core", *args, "--db", str(db)], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, env=env)

    assert cli("import", str(fx.rakuten_current(tmp_path / "r.csv"))).returncode == 0
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps(EVERYONE), encoding="utf-8")
    ok = cli("campaign", "freeze", "--name", "R-Mail", "--rule", str(rule), "--channel", "rmail", "--sent-at", "2025-04-01 20:00")
    assert ok.returncode == 0, ok.stderr
    refused = cli("campaign", "freeze", "--name", "LINE", "--rule", str(rule), "--channel", "line", "--sent-at", "2025-04-01 20:00")
    assert refused.returncode == 2
    assert "LINEユーザーIDが登録されている" in refused.stderr
    marked = cli("campaign", "freeze", "--name", "LINE", "--rule", str(rule), "--channel", "line", "--sent-at",
                 "2025-04-01 20:00", "--marked-only")
    assert marked.returncode == 0, marked.stderr


def test_page_records_an_rmail_send_on_rakuten_data_and_explains_a_zero(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    path = tmp_path / "crm.duckdb"
    store = Store(path)
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv")])
    store.close()
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page("pages/results/results.py").run()

    def submit(name: str, channel: str, reach: str) -> str:
        at.text_input(key="res_new_name").input(name)
        at.selectbox(key="res_new_channel").select(channel)
        at.selectbox(key="res_new_source").select("all")
        at.selectbox(key="res_new_reach").select(reach)
        at.button[-1].click().run()
        assert not at.exception, at.exception
        return "\n".join(str(x.value) for x in [*at.success, *at.error])

    assert "施策 No.1 を記録しました" in submit("R-Mail 定期便", "rmail", "auto")
    refused = submit("LINE", "line", "channel")
    assert "配信対象のお客様が0人です" in refused and "LINEユーザーIDが登録されている" in refused
