"""「すべてのデータを削除」: says exactly what goes, can keep campaigns and issued codes, offers a backup first."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from crm_core.backup import ClearPlan, backup_store, clear_plan
from crm_core.db import Store
from crm_core.messaging import coupons
from crm_core.pipeline import import_files
from crm_core.results import campaigns as C
from tests import fixtures as fx
from tests.sample_store import sample_db

pytestmark = pytest.mark.slow  # the sample shop, subprocesses and AppTest pages

ROOT = Path(__file__).resolve().parents[1]


def _counts(con) -> dict[str, int]:
    return {t: con.execute("SELECT count(*) FROM " + t).fetchone()[0]  # noqa: S608 - fixed names
            for t in ("orders", "customers", "campaigns", "campaign_recipients", "campaign_events")}


def test_backup_is_a_complete_store_that_opens(tmp_path):
    store = Store(sample_db(tmp_path / "crm.duckdb"))
    before = _counts(store.cursor())
    path = backup_store(store)
    assert path.parent == tmp_path / "backups" and path.suffix == ".duckdb"
    copy = duckdb.connect(str(path), read_only=True)
    assert _counts(copy) == before
    copy.close()
    assert backup_store(store) != path  # a second backup never overwrites the first


def test_clear_plan_counts_what_goes_and_what_stays(tmp_path):
    store = Store(sample_db(tmp_path / "crm.duckdb"))
    plan = clear_plan(store)
    deleted = {label: n for label, n, _ in plan.deleted}
    assert deleted["注文"] == store.scalar("SELECT count(*) FROM orders") > 0
    assert deleted["顧客"] == store.scalar("SELECT count(*) FROM customers")
    campaigns = {label: n for label, n, _ in plan.campaigns}
    assert campaigns["施策の記録"] == 4 and campaigns["施策の対象者"] == store.scalar("SELECT count(*) FROM campaign_recipients")
    assert ClearPlan.text(plan.deleted).startswith(f"注文 {deleted['注文']:,}件")


def test_clear_keeps_campaigns_and_codes_when_asked(tmp_path):
    store = Store(sample_db(tmp_path / "crm.duckdb"))
    coupon = coupons.create_coupon(store, coupons.Coupon(name="c", kind="yen", value=300, code_mode="unique"))
    coupons.issue_unique_codes(store, coupon, [r[0] for r in store.fetchall("SELECT customer_id FROM customers LIMIT 5")])
    kept = {t: store.scalar("SELECT count(*) FROM " + t) for t in ("campaigns", "campaign_recipients", "coupon_codes")}  # noqa: S608
    store.clear_data(keep_campaigns=True)
    assert store.is_empty() and store.table_count("customers") == 0
    assert {t: store.scalar("SELECT count(*) FROM " + t) for t in kept} == kept  # noqa: S608
    store.clear_data()
    assert {t: store.scalar("SELECT count(*) FROM " + t) for t in kept} == dict.fromkeys(kept, 0)  # noqa: S608


def _page(tmp_path, monkeypatch) -> tuple[AppTest, Path]:
    path = tmp_path / "crm.duckdb"
    store = Store(path)
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv")])
    person = store.scalar("SELECT customer_id FROM customer_model LIMIT 1")
    C.freeze_campaign(store, "テスト", "rmail", "2025-04-01 20:00", customer_ids=[person], holdout_share=0)
    coupon = coupons.create_coupon(store, coupons.Coupon(name="c", kind="yen", value=300, code_mode="unique"))
    coupons.issue_unique_codes(store, coupon, [person])
    store.close()
    monkeypatch.setenv("CRM_DB", str(path))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    at.switch_page("pages/data/import_data.py").run()
    assert not at.exception, at.exception
    return at, path


def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def test_page_says_what_goes_offers_a_backup_and_keeps_campaigns(tmp_path, monkeypatch):
    at, path = _page(tmp_path, monkeypatch)
    text = _captions(at)
    assert "注文 3件" in text and "注文明細 4行" in text and "顧客 2人" in text
    assert "施策の記録 1件" in text and "発行済みのクーポンコード 1件" in text  # listed under what stays
    box = at.checkbox(key="imp_clear_campaigns")
    assert not box.value  # not the sample: campaigns and codes stay unless asked
    at.button(key="imp_backup").click().run()
    assert not at.exception, at.exception
    backups = list((tmp_path / "backups").glob("*.duckdb"))
    assert len(backups) == 1
    assert any("バックアップを保存しました" in s.value for s in at.success)
    at.checkbox(key="imp_confirm_clear").check().run()
    at.button(key="imp_clear").click().run()
    assert not at.exception, at.exception
    store = Store(path)
    assert store.is_empty()
    assert store.scalar("SELECT count(*) FROM campaigns") == 1 and store.scalar("SELECT count(*) FROM coupon_codes") == 1
    store.close()
    backup = duckdb.connect(str(backups[0]), read_only=True)
    assert backup.execute("SELECT count(*) FROM orders").fetchone()[0] == 3
    backup.close()


def test_page_deletes_campaigns_and_codes_when_asked(tmp_path, monkeypatch):
    at, path = _page(tmp_path, monkeypatch)
    at.checkbox(key="imp_clear_campaigns").check().run()
    assert "施策の記録" not in _captions(at).split("残るもの")[1]
    at.checkbox(key="imp_confirm_clear").check().run()
    at.button(key="imp_clear").click().run()
    assert not at.exception, at.exception
    store = Store(path)
    assert store.scalar("SELECT count(*) FROM campaigns") == 0 and store.scalar("SELECT count(*) FROM coupon_codes") == 0
    store.close()
