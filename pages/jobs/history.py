"""ジョブ履歴: what the background worker did (inbox imports, scheduled work) and what is waiting."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from crm_core import jobs, opsdb, shops
from crm_core.service import inbox
from crm_core.service.kinds import label
from pages import ui

st.title("🗂️ ジョブ履歴")
st.write(
    "バックグラウンドの「ワーカー」が実行した処理（受信フォルダのファイルの取込、予約した処理など）の記録です。"
    "ワーカーは `./run.sh` でコンソールと一緒に起動します（単独では `python -m crm_core worker`）。"
)
db = shops.db_path(ui.current_shop())  # the shop chosen in the sidebar
ops = opsdb.ops_path(db)
folder = inbox.default_inbox(db)
st.info(
    f"受信フォルダ: `{folder}` — ここに楽天RMS・Shopifyのエクスポートを置くと、ワーカーが1回だけ取り込み、"
    "`done/`（取込済み）か `failed/`（取り込めなかったもの）へ結果のレポート（.report.json）と一緒に移します。",
    icon="📂",
)
if st.button("最新の状態にする", key="jh_refresh"):
    st.rerun()


def _jst(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return "—"
    return pd.Timestamp(str(value)).tz_convert(jobs.JST).strftime("%Y-%m-%d %H:%M:%S")


def _target(args: dict) -> str:
    return str(args.get("name") or args.get("campaign") or args.get("scenario") or "")


waiting = ui.run(jobs.pending, ops)
st.subheader("待機中・実行中")
if not waiting:
    st.caption("待機中・実行中のジョブはありません。")
else:
    ui.dataframe(
        pd.DataFrame(
            {
                "状態": [j["status_label"] for j in waiting],
                "種類": [label(j["kind"]) for j in waiting],
                "対象": [_target(j["args"]) for j in waiting],
                "予定時刻": [_jst(j["run_at"]) for j in waiting],
                "試行": [j["attempts"] for j in waiting],
            }
        ),
        hide_index=True,
        width="stretch",
    )

runs = ui.run(jobs.history, ops, 300)
st.subheader("履歴（新しい順）")
if not runs:
    ui.empty_state("まだ実行されたジョブはありません。受信フォルダにファイルを置くと、ここに取込の記録が表示されます。")
else:
    ui.dataframe(
        pd.DataFrame(
            {
                "開始": [_jst(r["started_at"]) for r in runs],
                "終了": [_jst(r["finished_at"]) for r in runs],
                "種類": [label(r["kind"]) for r in runs],
                "対象": [_target(r["args"]) for r in runs],
                "結果": [r["outcome_label"] for r in runs],
                # a failed run's reason is its content: the first thing read (a column of its own sat off-screen)
                "内容": [r["error"] or r["summary"] or "" for r in runs],
                "試行": [r["attempts"] for r in runs],
            }
        ),
        hide_index=True,
        width="stretch",
    )

plans = ui.run(jobs.schedules, ops)
if plans:
    st.subheader("定期実行")
    ui.dataframe(
        pd.DataFrame(
            {
                "名前": [p["name"] for p in plans],
                "種類": [label(p["kind"]) for p in plans],
                "次回": [_jst(p["next_run_at"]) for p in plans],
                "有効": ["はい" if p["enabled"] else "いいえ" for p in plans],
            }
        ),
        hide_index=True,
        width="stretch",
    )
