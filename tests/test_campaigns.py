"""Campaign records: deterministic assignment, freezing, result imports, command line."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pandas as pd
import pytest

from crm_core import cli
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.results import campaigns as C
from tests.segment_shop import segment_store

SENT = dt.datetime(2026, 3, 1, 12, 0)


def test_assign_is_a_pure_hash_of_campaign_and_customer():
    assert C.assign(1, "C1", 0.1, ["A", "B"]) == C.assign(1, "C1", 0.1, ["A", "B"])
    # Independent recomputation of the documented rule.
    digest = hashlib.sha256(b"5|Cxyz").digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    v = int.from_bytes(digest[8:16], "big") / 2**64
    expected = (None, True) if u < 0.3 else (["A", "B", "C"][int(v * 3)], False)
    assert C.assign(5, "Cxyz", 0.3, ["A", "B", "C"]) == expected


@pytest.mark.parametrize("share", [0.0, 0.1, 0.25])
def test_assignment_shares_within_tolerance(share):
    n = 20_000
    groups = [C.assign(42, f"C{i:06d}", share, ["A", "B"]) for i in range(n)]
    holdout = sum(h for _, h in groups) / n
    assert abs(holdout - share) < 0.01
    treated = [v for v, h in groups if not h]
    share_a = treated.count("A") / len(treated)
    assert abs(share_a - 0.5) < 0.015


def test_other_campaign_gives_other_groups():
    a = [C.assign(1, f"C{i}", 0.5, ["A"])[1] for i in range(200)]
    b = [C.assign(2, f"C{i}", 0.5, ["A"])[1] for i in range(200)]
    assert a != b


def test_freeze_from_ids_is_reproducible_and_never_changes():
    store = Store(":memory:")
    ids = [f"C{i:04d}" for i in range(500)]
    cid = C.freeze_campaign(store, "春の新作", "email", SENT, customer_ids=ids, holdout_share=0.2, variants=["A", "B"])
    first = C.recipients(store, cid)
    assert len(first) == 500
    for _, r in first.iterrows():
        variant, holdout = C.assign(cid, r["customer_id"], 0.2, ["A", "B"])
        assert bool(r["holdout"]) == holdout and (r["variant"] if not holdout else None) == variant
    assert first.loc[first["holdout"], "variant"].isna().all()
    # A second campaign does not touch the first one's rows.
    C.freeze_campaign(store, "次の施策", "email", SENT, customer_ids=ids)
    pd.testing.assert_frame_equal(C.recipients(store, cid), first)
    camp = C.get_campaign(store, cid)
    assert camp["variants"] == ["A", "B"] and camp["attribution_days"] == 7 and camp["sent_at"] == SENT


def test_freeze_from_rule_uses_reachable_customers():
    store = segment_store()
    rule = {"all": []}
    # sent after the shop's last day (2026-10-31; one order on 11-02): the stored model is the model of the send
    cid = C.freeze_campaign(store, "全員LINE", "line", "2026-11-03 12:00", rule=rule, holdout_share=0.0)
    expected = {r[0] for r in store.fetchall("SELECT customer_id FROM customer_model WHERE has_line")}
    assert set(C.recipients(store, cid)["customer_id"]) == expected
    assert C.get_campaign(store, cid)["rule"] == rule


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"channel": "fax"},
        {"holdout_share": 0.6},
        {"attribution_days": 0},
        {"variants": ["A", "A"]},
        {"customer_ids": []},
        {"sent_at": "来週"},
    ],
    ids=["name", "channel", "holdout", "days", "variants", "empty", "date"],
)
def test_freeze_refuses_bad_input(kwargs):
    store = Store(":memory:")
    args = {"name": "x", "channel": "email", "sent_at": SENT, "customer_ids": ["C1"], **kwargs}
    with pytest.raises(InputError):
        C.freeze_campaign(store, **args)


def test_duplicate_campaign_id_refused():
    store = Store(":memory:")
    C.freeze_campaign(store, "a", "email", SENT, customer_ids=["C1"], campaign_id=9)
    with pytest.raises(InputError):
        C.freeze_campaign(store, "b", "email", SENT, customer_ids=["C1"], campaign_id=9)


def _store_with_customers() -> tuple[Store, int]:
    store = Store(":memory:")
    store.execute(
        "INSERT INTO customers (customer_id, email, line_user_id) VALUES "
        "('C1', 'a@example.jp', 'U1'), ('C2', 'B@Example.jp', 'U2'), ('C3', 'c@example.jp', NULL)"
    )
    cid = C.freeze_campaign(store, "t", "line", SENT, customer_ids=["C1", "C2", "C3"], holdout_share=0.0)
    return store, cid


def test_import_results_by_email_with_flags():
    store, cid = _store_with_customers()
    csv = "メールアドレス,配信,開封,クリック\r\nb@example.jp,1,0,1\r\na@example.jp,1,1,0\r\nzzz@example.jp,1,1,1\r\n"
    mapping = C.suggest_mapping(["メールアドレス", "配信", "開封", "クリック"])
    assert mapping == {"メールアドレス": "email", "配信": "delivered", "開封": "opened", "クリック": "clicked"}
    out = C.import_results(store, cid, csv.encode("cp932"), mapping)
    assert out == {"rows": 3, "matched": 2, "unmatched": 1}
    ev = store.df("SELECT customer_id, delivered, opened, clicked FROM campaign_events ORDER BY 1")
    assert ev.to_dict("records") == [
        {"customer_id": "C1", "delivered": True, "opened": True, "clicked": False},
        {"customer_id": "C2", "delivered": True, "opened": True, "clicked": True},  # a click implies an open
    ]
    # Re-import replaces, never duplicates.
    C.import_results(store, cid, b"uid,clicked\nU1,yes\n", {"uid": "line_user_id", "clicked": "clicked"})
    ev = store.df("SELECT customer_id, clicked FROM campaign_events ORDER BY 1")
    assert ev["customer_id"].tolist() == ["C1", "C2"] and ev["clicked"].tolist() == [True, True]


def test_import_results_needs_an_id_column():
    store, cid = _store_with_customers()
    with pytest.raises(InputError):
        C.import_results(store, cid, b"a,b\n1,2\n", {"a": "opened"})
    with pytest.raises(InputError):
        C.import_results(store, cid, b"a,b\n1,2\n", {"missing": "customer_id"})


def test_cli_freeze_and_results(tmp_path, capsys):
    import argparse

    store_path = tmp_path / "crm.duckdb"
    store = Store(store_path)
    from tests.segment_shop import fill_store

    fill_store(store)
    store.close()
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps({"all": []}), encoding="utf-8")
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    cli.add_campaign_commands(sub)
    args = parser.parse_args(["campaign", "freeze", "--name", "CLI", "--rule", str(rule), "--channel", "email",
                              "--sent-at", "2026-11-03 12:00", "--holdout", "0.2", "--variants", "A,B", "--db", str(store_path)])
    assert args.func(args) == 0
    cid = int(capsys.readouterr().out.strip())
    args = parser.parse_args(["results", "--campaign", str(cid), "--json", "--db", str(store_path)])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["campaign"]["name"] == "CLI" and report["groups"][0]["group"] == "配信"
    args = parser.parse_args(["results", "--campaign", str(cid), "--db", str(store_path)])
    assert args.func(args) == 0
    assert "ラストタッチ" in capsys.readouterr().out


HOSTILE = ["'; DROP TABLE orders; --", '" OR 1=1 --', "=cmd|' /C calc'!A0", "Robert'); DELETE FROM campaigns;--", "\x00\u202e"]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_are_data(text):
    store, cid = _store_with_customers()
    before = store.table_count("orders")
    new = C.freeze_campaign(store, "x" + text, "email", SENT, customer_ids=[text, "C1"], coupon_code=text, template=text)
    camp = C.get_campaign(store, new)
    assert camp["name"] == "x" + text and camp["coupon_code"] == text.strip()
    assert text in set(C.recipients(store, new)["customer_id"])
    frame = pd.DataFrame({text: [text, "C1"], "flag": ["1", text]})
    out = C.import_results(store, new, frame, {text: "customer_id", "flag": "clicked"})
    assert out["matched"] == 2
    with pytest.raises(InputError):
        C.import_results(store, new, frame, {text: "customer_id", "flag": text})
    from crm_core.results import attribution as R

    assert R.campaign_report(store, new)["groups"][0]["recipients"] == 2
    assert store.table_count("orders") == before and store.scalar("SELECT count(*) FROM campaigns") == 2


def test_audience_base_rates_hand_computed():
    import numpy as np

    store = Store(":memory:")
    end = dt.datetime(2026, 3, 31, 18, 0)
    orders = [("o1", "A", end - dt.timedelta(days=1), 1000), ("o2", "A", end - dt.timedelta(days=10), 500),
              ("o3", "B", end - dt.timedelta(days=2), 2000), ("o4", "B", end - dt.timedelta(days=3), 1000),
              ("o5", "C", end - dt.timedelta(days=20), 7000),  # before the two weeks looked at
              ("o6", "X", end, 300)]  # not in the audience; the latest order sets the end
    for oid, cid, at, total in orders:
        store.execute("INSERT INTO orders (order_id, source, customer_id, ordered_at, cancelled, total_amount) "
                      "VALUES (?, 'shopify', ?, ?, FALSE, ?)", [oid, cid, at, total])
    base = C.audience_base_rates(store, ["A", "B", "C"], days=7, lookback_days=14)
    pairs = [1000, 500, 3000, 0, 0, 0]  # (customer, week): A 1000 / 500, B 3000 / 0, C 0 / 0
    assert base["windows"] == 2 and base["customers"] == 3
    assert base["conversion"] == pytest.approx(3 / 6)
    assert base["mean"] == pytest.approx(np.mean(pairs)) and base["sd"] == pytest.approx(np.std(pairs, ddof=1))


def test_cli_freeze_prints_what_the_test_can_detect(tmp_path, capsys):
    import argparse

    from tests.segment_shop import fill_store

    store_path = tmp_path / "crm.duckdb"
    store = Store(store_path)
    fill_store(store)
    C.set_global_holdout(store, 0.05)
    store.close()
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps({"all": []}), encoding="utf-8")
    parser = argparse.ArgumentParser()
    cli.add_campaign_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["campaign", "freeze", "--name", "CLI", "--rule", str(rule), "--channel", "email",
                              "--sent-at", "2026-11-03 12:00", "--holdout", "0.1", "--db", str(store_path)])
    assert args.func(args) == 0
    captured = capsys.readouterr()
    assert int(captured.out.strip()) == 1
    assert "検出できる効果" in captured.err and "全体の比較グループ（5%）" in captured.err
