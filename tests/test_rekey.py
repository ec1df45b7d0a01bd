"""Re-keying customers keeps campaign recipients, their results and issued coupon codes attached."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crm_core import pipeline
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.ingest.identity import rekey
from crm_core.messaging import coupons
from crm_core.pipeline import import_files
from crm_core.results import attribution as results
from crm_core.results import campaigns as C
from tests import fixtures as fx
from tests.sample_store import sample_db

pytestmark = pytest.mark.slow  # the sample shop, subprocesses and AppTest pages

ROOT = Path(__file__).resolve().parents[1]


def _groups(store: Store) -> list[tuple]:
    out = []
    for cid in store.fetchall("SELECT campaign_id FROM campaigns ORDER BY 1"):
        for g in results.campaign_report(store, cid[0])["groups"]:
            out.append((cid[0], g["group"], g["recipients"], g["buyers"], g["revenue"], g["opened"], g["clicked"]))
    return out


def test_rekey_on_the_sample_shop_keeps_campaign_results_and_coupon_codes(tmp_path):
    store = Store(sample_db(tmp_path / "crm.duckdb"))
    coupon = coupons.create_coupon(store, coupons.Coupon(name="お礼クーポン", kind="yen", value=500, code_mode="unique"))
    holders = [r[0] for r in store.fetchall(
        "SELECT customer_id FROM campaign_recipients WHERE campaign_id = 2 ORDER BY customer_id LIMIT 40")]
    assert coupons.issue_unique_codes(store, coupon, holders) == 40
    codes_before = dict(store.fetchall(
        "SELECT k.code, min(o.order_id) FROM coupon_codes k JOIN orders o USING (customer_id) GROUP BY k.code"))
    names_before = coupons.export_codes(store, coupon)[["クーポンコード", "氏名"]].fillna("")
    before = _groups(store)
    assert any(b[3] > 0 for b in before)  # the sample's campaigns have buyers

    stats = rekey(store, "phone")
    pipeline.after_import(store)

    assert stats["carried"]["coupon_codes"] == 40
    assert stats["carried"]["campaign_recipients"] > 0
    assert _groups(store) == before  # recipients, buyers, revenue, opens and clicks unchanged
    # every code still belongs to the customer who placed the same orders
    codes_after = dict(store.fetchall(
        "SELECT k.code, min(o.order_id) FROM coupon_codes k JOIN orders o USING (customer_id) GROUP BY k.code"))
    assert codes_after == codes_before
    orphans = store.scalar(
        "SELECT count(*) FROM (SELECT customer_id FROM campaign_recipients UNION ALL SELECT customer_id FROM coupon_codes "
        "UNION ALL SELECT customer_id FROM campaign_events) x ANTI JOIN customers c USING (customer_id)")
    assert orphans == 0
    names_after = coupons.export_codes(store, coupon)[["クーポンコード", "氏名"]].fillna("")
    assert names_after.sort_values("クーポンコード").values.tolist() == names_before.sort_values("クーポンコード").values.tolist()


def _two_phone_store(tmp_path) -> Store:
    """Orders A and C share one e-mail address but carry different phone numbers."""
    rows = fx.rakuten_rows()
    rows[3] = {**rows[3], "注文者電話番号3": "0000", "注文者電話番号2": "7777"}
    store = Store(tmp_path / "crm.duckdb")
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv", rows)], identity_key="email")
    return store


def test_rekey_refuses_when_a_recipient_splits_and_changes_nothing(tmp_path):
    store = _two_phone_store(tmp_path)
    person = store.scalar("SELECT customer_id FROM orders WHERE order_id LIKE '%0000001'")
    C.freeze_campaign(store, "テスト", "line", "2025-03-10 12:00", customer_ids=[person], holdout_share=0)
    ids_before = store.fetchall("SELECT order_id, customer_id FROM orders ORDER BY 1")
    with pytest.raises(InputError) as err:
        rekey(store, "phone")
    assert "施策の対象者1人" in err.value.message
    assert "変更を中止しました" in err.value.message
    assert store.fetchall("SELECT order_id, customer_id FROM orders ORDER BY 1") == ids_before
    assert store.get_setting("identity_key", "email") == "email"
    assert store.fetchall("SELECT customer_id FROM campaign_recipients") == [(person,)]


def test_rekey_refuses_when_a_coupon_holder_splits(tmp_path):
    store = _two_phone_store(tmp_path)
    person = store.scalar("SELECT customer_id FROM orders WHERE order_id LIKE '%0000001'")
    coupon = coupons.create_coupon(store, coupons.Coupon(name="c", kind="yen", value=300, code_mode="unique"))
    coupons.issue_unique_codes(store, coupon, [person])
    with pytest.raises(InputError, match="クーポンコード1件"):
        rekey(store, "phone")
    assert store.scalar("SELECT customer_id FROM coupon_codes") == person


def test_rekey_merges_recipients_of_one_group_and_refuses_across_groups(tmp_path):
    rows = fx.rakuten_rows()
    # Order C: the same phone as A, another masked address -> two customers by e-mail, one by phone.
    rows[3] = {**rows[3], "注文者メールアドレス": "other00000@pc.fw.rakuten.ne.jp"}
    store = Store(tmp_path / "crm.duckdb")
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv", rows)], identity_key="email")
    a = store.scalar("SELECT customer_id FROM orders WHERE order_id LIKE '%0000001'")
    c = store.scalar("SELECT customer_id FROM orders WHERE order_id LIKE '%0000003'")
    assert a != c
    # a campaign id whose hash puts the two in different variants, and one that puts them together
    differ = next(i for i in range(1, 200) if C.assign(i, a, 0, ["A", "B"]) != C.assign(i, c, 0, ["A", "B"]))
    same = next(i for i in range(1, 200) if C.assign(i, a, 0, ["A", "B"]) == C.assign(i, c, 0, ["A", "B"]))
    C.freeze_campaign(store, "同じグループ", "line", "2025-03-10 12:00", customer_ids=[a, c], holdout_share=0,
                      variants=["A", "B"], campaign_id=same)
    stats = rekey(store, "phone")
    assert stats["customers"] == 2
    assert store.fetchall("SELECT count(*), count(DISTINCT customer_id) FROM campaign_recipients") == [(1, 1)]

    store2 = Store(tmp_path / "crm2.duckdb")
    import_files(store2, [fx.rakuten_current(tmp_path / "r.csv", rows)], identity_key="email")
    C.freeze_campaign(store2, "別のグループ", "line", "2025-03-10 12:00", customer_ids=[a, c], holdout_share=0,
                      variants=["A", "B"], campaign_id=differ)
    with pytest.raises(InputError, match="別のグループ"):
        rekey(store2, "phone")
    assert store2.scalar("SELECT count(DISTINCT customer_id) FROM orders") == 3


def test_cli_rekey_reports_what_was_carried(tmp_path):
    db = sample_db(tmp_path / "crm.duckdb")
    res = subprocess.run([sys.executable, "-m", "crm_core", "rekey", "phone", "--db", str(db)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["carried"]["campaign_recipients"] > 0


def test_page_rekey_says_what_was_carried_and_refusal_is_shown(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    path = sample_db(tmp_path / "crm.duckdb")
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/data/import_data.py").run()
    at.radio(key="imp_identity_key").set_value("phone").run()
    at.button(key="imp_rekey").click().run()
    assert not at.exception, at.exception
    done = "\n".join(s.value for s in at.success)
    assert "施策の対象者" in done and "引き継ぎました" in done
    store = Store(path)
    assert store.scalar(
        "SELECT count(*) FROM campaign_recipients r ANTI JOIN customers c USING (customer_id)") == 0
    store.close()
