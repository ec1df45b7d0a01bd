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

from crm_core.errors import InputError

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
        outcome = live.send_due(ctx.db_path, ops, int(ctx.job.args["campaign_id"]), store=ctx.store)
    return {**outcome.to_dict(), "summary": outcome.message}


def _not_yet(label: str) -> Callable[[JobContext], None]:
    def run(ctx: JobContext) -> None:
        raise InputError(f"「{label}」のジョブはまだこのバージョンでは実行できません。", f"job kind {ctx.job.kind} has no function yet")

    return run


# Reserved names for the live-send and scenario work: replace the placeholder
# with the real function (e.g. ``JobKind("配信予約の送信", messaging.live.run_scheduled_send)``).
KINDS: dict[str, JobKind] = {
    "inbox_import": JobKind("受信フォルダの取込", _inbox_import_then_scenarios),
    "campaign_send": JobKind("予約配信の送信", _campaign_send, retry=False),
    "scenario_run": JobKind("シナリオの実行", _scenario_run),
    "line_stats": JobKind("LINE配信統計の取得", _not_yet("LINE配信統計の取得"), retry=False),
}


def label(kind: str) -> str:
    """The Japanese name of a job kind (the kind itself when unknown)."""
    k = KINDS.get(kind)
    return k.label if k else kind
