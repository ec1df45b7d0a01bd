"""The worker's job kind ``scenario_run`` (daily and after each import).

Registered in ``crm_core/service/kinds.py``; queued every hour of the day by the schedule
``scenarios`` (:data:`crm_core.scenarios.definitions.DAILY`, set when a scenario is switched on) and after
each inbox import.  ``run_job`` is idempotent: every (scenario, step, customer,
trigger event) is recorded once.
"""

from __future__ import annotations

import datetime as dt
from contextlib import closing
from typing import Any

from crm_core import opsdb
from crm_core.scenarios import engine
from crm_core.scenarios.definitions import list_scenarios


def channels(db_path: str) -> dict[str, Any]:
    """LINE, SMTP and unsubscribe objects from the send settings (送信設定, secrets, environment; None where not set)."""
    from crm_core.messaging.delivery import channel_objects
    from crm_core.messaging.sends import console_settings, secrets_file_settings

    secrets = secrets_file_settings()
    return channel_objects(console_settings(secrets, db_path), secrets)


def run_job(ctx: Any) -> dict[str, Any]:
    """``ctx.job.args``: optional ``date`` (YYYY-MM-DD). Uses ``ctx.store()`` and ``ctx.ops_path``."""
    args = getattr(ctx.job, "args", {}) or {}
    day = dt.date.fromisoformat(args["date"]) if args.get("date") else None
    with closing(opsdb.connect(ctx.ops_path)) as ops:
        if not any(s.enabled for s in list_scenarios(ops)):
            return {"summary": "オンのシナリオはありません。"}
    objs = channels(ctx.db_path)
    try:
        with closing(opsdb.connect(ctx.ops_path)) as ops, ctx.store() as store:
            return engine.run_scenarios(store, ops, day, line=objs["line"], smtp=objs["smtp"],
                                        unsubscribe=objs["unsubscribe"], from_addr=objs["from_addr"] or "")
    finally:
        if objs["smtp"] is not None:
            objs["smtp"].close()
