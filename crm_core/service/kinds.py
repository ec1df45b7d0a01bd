"""The registry of job kinds: what the worker can run.

A job kind is a name (stored in ``jobs.kind``), a Japanese label for the
ジョブ履歴 page and a function ``run(ctx) -> dict | None`` (the dict is kept as
the job's result; its ``"summary"`` entry, if any, is shown in the history).
Job functions must be idempotent: after a crash the same job runs again.

Raise :class:`crm_core.errors.InputError` for a problem a person must fix
(the job fails at once, with the Japanese message); any other exception is
retried (``retry=True``) up to the job's ``max_attempts``.

To add a kind, write its function in the package where the idea lives (it may
import anything below ``crm_core.service``) and add one line to :data:`KINDS`;
lower layers enqueue by name: ``jobs.enqueue(ops_path, "campaign_send", {...})``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crm_core import clock

if TYPE_CHECKING:
    from crm_core.service.context import JobContext


@dataclass(frozen=True)
class JobKind:
    label: str
    run: Callable[[JobContext], dict[str, Any] | None]
    retry: bool = True


def _inbox_import(ctx: JobContext) -> dict[str, Any] | None:
    from crm_core.service.inbox import import_inbox_file

    return import_inbox_file(ctx)


def _inbox_import_then_scenarios(ctx: JobContext) -> dict[str, Any] | None:
    """Import the file, then queue a scenario run for the new orders (once per import job)."""
    result = _inbox_import(ctx)
    if result and not result.get("skipped"):
        from crm_core import jobs

        jobs.enqueue(ctx.ops_path, "scenario_run", {}, dedupe_key=f"scenarios-after-import:{ctx.job.job_id}", created_by="worker")
    return result


def _scenario_run(ctx: JobContext) -> dict[str, Any] | None:
    from crm_core.scenarios.job import run_job

    return run_job(ctx)


def _campaign_send(ctx: JobContext) -> dict[str, Any] | None:
    from contextlib import closing

    from crm_core import opsdb
    from crm_core.results import live

    with closing(opsdb.connect(ctx.ops_path)) as ops:
        cid = int(ctx.job.args["campaign_id"])
        outcome = live.send_due(ctx.db_path, ops, cid, store=ctx.store)
        if outcome.status != "busy":  # a sender already at work schedules its own follow-up
            # not yet due, quiet hours, A/B decision pending: the job comes back at that time by itself
            live.schedule_send(ops, cid, actor="worker")
        if live.status(ops, cid)["channel"] == "line":
            from crm_core import jobs

            # LINE's statistics of the send are fetched once a day for 30 days (kept as it is when it exists)
            jobs.set_schedule(ctx.ops_path, LINE_STATS_SCHEDULE, "line_stats", LINE_STATS_TRIGGER, replace=False)
    return {**outcome.to_dict(), "summary": outcome.message}


LINE_STATS_SCHEDULE = "line-stats"
LINE_STATS_TRIGGER = "cron:30 9 * * *"
"""Every day at 09:30 JST: LINE's per-campaign statistics of the last 30 days' sends."""


def _line_stats(ctx: JobContext) -> dict[str, Any] | None:
    """Fetch LINE's statistics of recent console sends into the results page's engagement table."""
    from contextlib import closing

    from crm_core import opsdb
    from crm_core.messaging.delivery import channel_objects
    from crm_core.messaging.sends import console_settings, secrets_file_settings
    from crm_core.results import engagement

    secrets = secrets_file_settings()
    line = channel_objects(console_settings(secrets, ctx.db_path), secrets)["line"]
    if line is None:
        return {"fetched": [], "summary": "LINEのチャネルアクセストークンが設定されていないため、統計は取得しませんでした（「送信設定」で設定できます）。"}
    with closing(opsdb.connect(ctx.ops_path)) as ops:
        if not engagement.line_campaigns_to_fetch(ops, clock.now_utc()):
            return {"fetched": [], "summary": "統計を取得するLINEの配信（30日以内）はありません。"}
        with ctx.store() as store:
            return engagement.fetch_line_stats(store, ops, line)


KINDS: dict[str, JobKind] = {
    "inbox_import": JobKind("受信フォルダの取込", _inbox_import_then_scenarios),
    "campaign_send": JobKind("予約配信の送信", _campaign_send, retry=False),
    "scenario_run": JobKind("シナリオの実行", _scenario_run),
    "line_stats": JobKind("LINE配信統計の取得", _line_stats),
}


def label(kind: str) -> str:
    """The Japanese name of a job kind (the kind itself when unknown)."""
    k = KINDS.get(kind)
    return k.label if k else kind
