"""AppTest for the ジョブ履歴 page: history, waiting jobs and schedules from the operations store, in Japanese."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from streamlit.testing.v1 import AppTest

from crm_core import jobs, opsdb

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/jobs/history.py"


def _open(tmp_path, monkeypatch) -> tuple[AppTest, Path]:
    db = tmp_path / "crm.duckdb"
    monkeypatch.setenv("CRM_DB", str(db))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    monkeypatch.setenv("CRM_INBOX", str(tmp_path / "inbox"))
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60), opsdb.ops_path(db)


def test_the_page_explains_an_empty_history(tmp_path, monkeypatch):
    at, _ops = _open(tmp_path, monkeypatch)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.title[0].value == "🗂️ ジョブ履歴"
    assert any("まだ実行されたジョブはありません" in i.value for i in at.info)
    assert any(str(tmp_path / "inbox") in i.value for i in at.info)


def test_the_page_shows_runs_waiting_jobs_and_schedules(tmp_path, monkeypatch):
    at, ops = _open(tmp_path, monkeypatch)
    ok = jobs.enqueue(ops, "inbox_import", {"name": "rakuten_2026-12.csv"})
    bad = jobs.enqueue(ops, "inbox_import", {"name": "broken.csv"})
    jobs.enqueue(ops, "campaign_send", {"campaign": "冬のセール"}, run_at=jobs.now() + jobs.dt.timedelta(days=1))
    jobs.set_schedule(ops, "daily-stats", "line_stats", "cron:0 4 * * *")
    with closing(opsdb.connect(ops)) as con:
        for expected in (ok, bad):
            job = jobs.claim(con, "host:1")
            assert job.job_id == expected
            if expected == ok:
                jobs.finish(con, job, summary="「rakuten_2026-12.csv」を取り込みました（注文 追加10件・更新0件）。")
            else:
                jobs.finish(con, job, error="「broken.csv」は楽天RMS・Shopifyの注文エクスポートとして認識できませんでした。")
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    history = at.dataframe[1].value
    assert list(history["結果"]) == ["失敗", "完了"]
    assert list(history["種類"]) == ["受信フォルダの取込", "受信フォルダの取込"]
    assert list(history["対象"]) == ["broken.csv", "rakuten_2026-12.csv"]
    assert "認識できませんでした" in history["内容"].iloc[0]  # a failure's reason is its content (no column off-screen)
    assert history["内容"].iloc[1].startswith("「rakuten_2026-12.csv」を取り込みました")
    assert list(history.columns) == ["開始", "終了", "種類", "対象", "結果", "内容", "試行"]
    assert history["開始"].iloc[0] != "—" and history["終了"].iloc[0] != "—"
    waiting = at.dataframe[0].value
    assert list(waiting["種類"]) == ["予約配信の送信"] and list(waiting["状態"]) == ["待機中"]
    assert list(waiting["対象"]) == ["冬のセール"]
    schedules = at.dataframe[2].value
    assert list(schedules["種類"]) == ["LINE配信統計の取得"] and schedules["次回"].iloc[0].endswith("04:00:00")
