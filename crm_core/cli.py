"""Command line: ``python -m crm_core COMMAND ...`` drives the same functions as the app.

Every command of the console lives here and calls library functions; no domain
module imports this one.  Every command prints JSON on stdout (or writes the
file asked for) and exits non-zero with a Japanese message on stderr when the
input cannot be used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import signal
import sys
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pandas as pd

from crm_core.db import EXIT_BUSY, WAIT_MESSAGE, Store, StoreBusy, default_db_path, store_is_busy
from crm_core.errors import InputError
from crm_core.ingest.formats import FORMATS_BY_KEY, KIND_FIELDS

DB_HELP = "DuckDB file (default: $CRM_DB or data/crm.duckdb)"
WAIT_HELP = (f"seconds to wait while another process writes to the store (default: $CRM_WAIT or 600); "
             f"exit status {EXIT_BUSY} when the wait runs out")
SHOP_HELP = "shop name: its store is data/shops/NAME/crm.duckdb ($CRM_SHOPS_DIR moves the folder); instead of --db"


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    return obj


def _print(obj: object) -> None:
    """The one JSON printer of the command line (one object per line, Japanese kept as is)."""
    sys.stdout.write(json.dumps(_clean(obj), ensure_ascii=False, default=str, allow_nan=False) + "\n")


_opened: list[Store] = []
# set by Ctrl-C (see main): DuckDB turns the KeyboardInterrupt raised during a statement into its own
# RuntimeError("Query interrupted"), so the error alone does not say that the person stopped the command
_interrupted = threading.Event()
EXIT_INTERRUPTED = 130  # what shells report for a command stopped by Ctrl-C (128 + SIGINT)


def _say_waiting() -> None:
    sys.stderr.write(WAIT_MESSAGE + "\n")
    sys.stderr.flush()


def _store(args: argparse.Namespace, snapshot: bool = False) -> Store:
    """The store named by ``--db``, else ``$CRM_DB`` or ``data/crm.duckdb``.

    Opened lazily (at its first query) and closed when the command ends; when
    another process is writing, the command says so and waits up to ``--wait``.
    """
    store = Store(getattr(args, "db", None) or default_db_path(), wait=getattr(args, "wait", None),
                  on_wait=_say_waiting, lazy=True, snapshot=snapshot)
    _opened.append(store)
    return store


def _reading_store(args: argparse.Namespace) -> Store:
    """The store for a command that only reads: opened read-only when the file exists.

    Works on a read-only file and next to other readers; nothing is migrated or written.
    """
    path = Path(getattr(args, "db", None) or default_db_path())
    for open_store in _opened:  # this process already holds the file (commands run one after another in-process)
        if open_store.is_open and Path(open_store.path) == path:
            return open_store
    store = Store(path, read_only=True if path.exists() else None, wait=getattr(args, "wait", None), on_wait=_say_waiting)
    _opened.append(store)
    return store


class _Progress:
    """Progress lines on stderr (each step once), so a long import is never silent."""

    def __init__(self) -> None:
        self.last = ""

    def __call__(self, fraction: float, text: str) -> None:
        if text != self.last:
            self.last = text
            sys.stderr.write(f"{text}\n")
            sys.stderr.flush()


def _finish_pending(args: argparse.Namespace) -> None:
    """Before any command: finish a refresh a killed import left, and sweep its temp files."""
    from crm_core.tempfiles import sweep

    sweep()
    if args.command == "sample":
        return
    path = Path(getattr(args, "db", None) or default_db_path())
    if not path.exists():
        return
    from crm_core import pipeline

    if store_is_busy(path):
        return  # a writer is at work; a refresh left by a killed process waits for the next command
    probe = Store(path, read_only=True)
    try:
        due = pipeline.refresh_due(probe)
    finally:
        probe.close()
    if not due:
        return
    store = Store(path, wait=getattr(args, "wait", None), on_wait=_say_waiting)
    try:
        if pipeline.refresh_due(store):
            sys.stderr.write("前回中断された取り込みの仕上げ（顧客分析の更新）を行っています…\n")
            sys.stderr.flush()
            pipeline.finish_pending(store, _Progress())
    finally:
        store.close()


def _with_db(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    p.add_argument("--wait", type=float, default=argparse.SUPPRESS, metavar="SECONDS", help=WAIT_HELP)
    p.add_argument("--shop", default=argparse.SUPPRESS, help=SHOP_HELP)
    return p


def cmd_import(args: argparse.Namespace) -> int:
    from crm_core.ingest.mappings import load_mapping, parse_map_args
    from crm_core.pipeline import import_files

    store = _store(args, snapshot=True)  # a long write: the console reads the snapshot meanwhile
    mapping = parse_map_args(args.map or [])
    kind = args.kind
    if args.mapping_name:
        kind, mapping = load_mapping(store, args.mapping_name)
    fmt = args.format  # with "auto", a mapping applies only to the files that are not a known export
    if fmt == "generic" and not mapping:
        raise InputError("--format generic には --map 列名=項目 か --mapping-name を指定してください。", "generic without map")
    report = import_files(
        store, args.files, fmt=fmt, mapping=mapping or None, kind=kind, identity_key=args.identity_key, progress=_Progress()
    )
    if args.save_mapping and mapping:
        from crm_core.ingest.mappings import save_mapping

        generic = [f.kind for f in report.files if f.format == "generic"]  # the file the mapping was made for
        if generic:
            save_mapping(store, args.save_mapping, generic[0], mapping)
    _print(report.to_dict())
    level, message = report.outcome()
    if level == "warning":
        sys.stderr.write(f"注意: {message}\n")
    return 0


def cmd_profit(args: argparse.Namespace) -> int:
    from crm_core.analytics.profit import profit_overview

    _print(profit_overview(_reading_store(args)))
    return 0


def cmd_line_reach(args: argparse.Namespace) -> int:
    from crm_core.analytics.overview import line_reach

    _print(line_reach(_reading_store(args)))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from crm_core.sample.generate import generate_sample

    paths = generate_sample(args.out, customers=args.customers, seed=args.seed)
    _print({k: str(v) for k, v in paths.items()})
    return 0


def cmd_customers(args: argparse.Namespace) -> int:
    from crm_core import model
    from crm_core.export import unencodable_warning

    as_of = dt.date.fromisoformat(args.as_of) if args.as_of else None
    bad: set[str] = set()
    rows = model.export_customers(_store(args), args.out, as_of=as_of, encoding=args.encoding, unencodable=bad)
    out: dict[str, Any] = {"rows": rows, "out": str(args.out)}
    if bad:  # the same warning as segment export
        out["warnings"] = [unencodable_warning(bad)]
    _print(out)
    return 0


def cmd_rekey(args: argparse.Namespace) -> int:
    from crm_core import pipeline
    from crm_core.ingest.identity import rekey

    store = _store(args)
    stats = rekey(store, args.key)
    stats["warnings"] = pipeline.after_import(store)
    _print(stats)
    return 0


# -- segments -----------------------------------------------------------------------------------
def cmd_segment_count(args: argparse.Namespace) -> int:
    """``segment count``: print ``{"count": N, "description": "..."}``."""
    from crm_core.audience import segments

    rule = segments.read_rule_file(args.rule)
    store = _reading_store(args)
    c = segments.compile_rule(store, rule)
    _print({"count": segments.count(store, rule), "description": c.description})
    return 0


def cmd_segment_export(args: argparse.Namespace) -> int:
    """``segment export``: write the CSV (and optionally the LINE id list), print a JSON report."""
    from crm_core.audience import segments

    rule = segments.read_rule_file(args.rule)
    store = _reading_store(args)
    report = segments.export_csv(store, rule, args.out, encoding=args.encoding, opted_in_only=args.opted_in_only)
    out: dict[str, Any] = {"rows": report["rows"], "out": str(args.out), "encoding": args.encoding,
                           "description": segments.describe(rule, store)}
    if report["unencodable"]:
        from crm_core.export import unencodable_warning

        out["warnings"] = [unencodable_warning(report["unencodable"])]
    if args.line_ids:
        text = segments.line_ids_text(store, rule)
        Path(args.line_ids).write_text(text, encoding="utf-8")
        out["line_ids"] = text.count("\n")
        out["line_ids_out"] = str(args.line_ids)
    _print(out)
    return 0


def add_segment_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``segment count`` and ``segment export``."""
    seg = subparsers.add_parser("segment", help="count or export a segment given as a JSON rule")
    sub = seg.add_subparsers(dest="segment_command", required=True)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--rule", required=True, type=Path, help='JSON rule file, e.g. {"all": [{"field": "recency_days", "op": "gte", "value": 90}]}')
        return _with_db(p)

    p = common(sub.add_parser("count", help='print {"count": N, "description": "..."}'))
    p.set_defaults(func=cmd_segment_count)
    p = common(sub.add_parser("export", help="write the segment's customers as CSV"))
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--encoding", default="utf-8-sig", choices=["utf-8-sig", "cp932"])
    p.add_argument("--line-ids", type=Path, help="also write the LINE user ids, one per line")
    p.add_argument("--opted-in-only", action="store_true", help="only customers who allowed e-mail")
    p.set_defaults(func=cmd_segment_export)


# -- messages and test sends ----------------------------------------------------------------------
def cmd_templates(args: argparse.Namespace) -> int:
    from crm_core.messaging.templates import list_templates, template_names

    path = getattr(args, "db", None)
    store = _store(args) if path or default_db_path().exists() else None
    names = template_names(list_templates(store))
    if args.json:
        _print(names)
    else:
        for t in names:
            sys.stdout.write(f"{t['key']}\t{t['label']}\n")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from crm_core.messaging.templates import render_for_customer

    rendered = render_for_customer(_store(args), args.template, args.customer, args.channel)
    _print(rendered.to_json())
    return 0


def cmd_test_send(args: argparse.Namespace) -> int:
    from crm_core.messaging import sends
    from crm_core.messaging.channels import INVALID, NOT_CONFIGURED, REFUSED

    store = _store(args)
    settings = sends.console_settings(sends.secrets_file_settings(), store.path)  # plus what 送信設定 saved
    try:
        actor = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        actor = "cli"
    result = sends.test_send(store, settings, channel=args.channel, recipient=args.to, template_key=args.template,
                             customer_id=args.customer, actor=f"cli:{actor}")
    _print(result.to_dict())
    if result.ok:
        return 0
    sys.stderr.write(f"エラー: {result.message}\n")
    return 2 if result.outcome in (REFUSED, NOT_CONFIGURED, INVALID) else 1


def add_message_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``templates``, ``render`` and ``test-send``."""
    from crm_core.messaging.sends import SEND_CHANNELS

    p = _with_db(subparsers.add_parser("templates", help="list the message templates"))
    p.add_argument("--json", action="store_true", help="print JSON (key, label, scenario)")
    p.set_defaults(func=cmd_templates)

    p = _with_db(subparsers.add_parser("render", help="render a template for one customer as JSON"))
    p.add_argument("--template", required=True)
    p.add_argument("--customer", required=True)
    p.add_argument("--channel", default="line", choices=["line", "email", "rmail", "insert"])
    p.set_defaults(func=cmd_render)

    p = _with_db(subparsers.add_parser("test-send", help="send a rendered template to one test recipient"))
    p.add_argument("--channel", required=True, choices=list(SEND_CHANNELS))
    p.add_argument("--to", required=True, help="a LINE user id or an address on the test-recipient list")
    p.add_argument("--template", required=True)
    p.add_argument("--customer", required=True)
    p.set_defaults(func=cmd_test_send)


# -- sale calendar and plans --------------------------------------------------------------------------
def _range(args: argparse.Namespace) -> tuple[dt.date, dt.date]:
    from crm_core.events.calendar import parse_date

    start = parse_date(args.date_from, "--from の日付")
    end = parse_date(args.date_to, "--to の日付")
    if end < start:
        raise InputError("--to の日付は --from の日付以降にしてください。", "end before start")
    if (end - start).days > 3 * 366:
        raise InputError("期間は3年以内で指定してください。", "range too long")
    return start, end


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    from crm_core.events.calendar import is_missing

    out = []
    for row in df.to_dict(orient="records"):
        out.append({k: (v.isoformat(sep=" ") if isinstance(v, pd.Timestamp | dt.datetime) else (None if is_missing(v) else v))
                    for k, v in row.items()})
    return out


def cmd_calendar_events(args: argparse.Namespace) -> int:
    from crm_core.events import calendar as cal

    start, end = _range(args)
    evts = cal.list_events(_store(args), start, end)
    if args.json:
        _print({"from": start.isoformat(), "to": end.isoformat(), "events": _records(evts)})
        return 0
    for ev in evts.itertuples(index=False):
        sys.stdout.write(f"{ev.event_id}\t{cal.format_period(ev.starts_at, ev.ends_at)}\t{ev.name}\t"
                         f"{cal.STATUS_LABELS.get(ev.status, ev.status)}\n")
    return 0


def cmd_calendar_plan(args: argparse.Namespace) -> int:
    from crm_core.events import calendar as cal
    from crm_core.planning import planner

    store = _store(args)
    event = cal.get_event(store, args.event)
    phases = planner.propose_phases(event, channel=args.channel)
    if args.json:
        _print({"event": _records(pd.DataFrame([event]))[0], "phases": _records(phases)})
        return 0
    sys.stdout.write(f"{event['name']}（{cal.format_period(event['starts_at'], event['ends_at'])}）\n")
    labels = planner.template_labels(store)
    for p in phases.itertuples(index=False):
        sys.stdout.write(f"{p.label}\t{cal.format_datetime(p.send_at)}\t{planner.CHANNELS[p.channel]}\t"
                         f"{labels.get(p.template, p.template)}（{p.template}）\n")
    return 0


def cmd_calendar_ics(args: argparse.Namespace) -> int:
    from crm_core.events import calendar as cal
    from crm_core.planning import calendar_views as views
    from crm_core.planning import frequency

    start, end = _range(args)
    store = _store(args)
    evts = cal.list_events(store, start, end)
    sends = frequency.sends_for_export(store, start, end)
    data = views.to_ics(evts, sends)
    Path(args.out).write_bytes(data)
    _print({"out": str(args.out), "events": len(evts), "sends": len(sends)})
    return 0


def add_calendar_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``calendar events | plan | ics``.

    ``python -m crm_core calendar events --from DATE --to DATE [--json]``,
    ``calendar plan --event EVENT_ID [--channel line] [--json]`` and
    ``calendar ics --from DATE --to DATE --out FILE.ics``; each takes ``--db PATH``.
    """
    cal = _with_db(subparsers.add_parser("calendar", help="sale-event calendar and campaign planner"))
    sub = cal.add_subparsers(dest="calendar_command", required=True)

    p = _with_db(sub.add_parser("events", help="list events (bundled, user and overrides) in a date range"))
    p.add_argument("--from", dest="date_from", required=True, metavar="DATE")
    p.add_argument("--to", dest="date_to", required=True, metavar="DATE")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_calendar_events)

    p = _with_db(sub.add_parser("plan", help="proposed send phases for an event"))
    p.add_argument("--event", required=True, metavar="EVENT_ID")
    p.add_argument("--channel", default="line", choices=["line", "rmail", "shopify_email", "email"])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_calendar_plan)

    p = _with_db(sub.add_parser("ics", help="write events and planned sends as an iCalendar (.ics) file"))
    p.add_argument("--from", dest="date_from", required=True, metavar="DATE")
    p.add_argument("--to", dest="date_to", required=True, metavar="DATE")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_calendar_ics)


# -- campaigns and results ------------------------------------------------------------------------------
def cmd_campaign_freeze(args: argparse.Namespace) -> int:
    """``campaign freeze``: print the new campaign id."""
    from crm_core.audience.segments import read_rule_file
    from crm_core.results import campaigns

    rule = read_rule_file(args.rule)
    store = _store(args)
    cid = campaigns.freeze_campaign(
        store, args.name, args.channel, args.sent_at, rule=rule, holdout_share=args.holdout,
        variants=[v for v in args.variants.split(",")], attribution_days=args.days, coupon_code=args.coupon or "",
        marked_only=args.marked_only, reach=args.reach,
    )
    sys.stdout.write(f"{cid}\n")
    # What this test can detect (on stderr, so stdout stays the id).
    ids = campaigns.recipients(store, cid)["customer_id"].tolist()
    hint = campaigns.detectable_effect(store, ids, args.holdout, args.days)
    sys.stderr.write("検出できる効果: " + hint["message"] + "\n")
    held = campaigns.global_holdout_setting(store)
    if held["share"] > 0:
        sys.stderr.write(f"全体の比較グループ（{held['share']:.0%}）のお客様は配信対象から除いています。\n")
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    """``results``: print the campaign's metrics (text, or JSON with ``--json``)."""
    from crm_core.results import attribution as results

    store = _reading_store(args)
    report = results.campaign_report(store, args.campaign)
    if args.json:
        _print(report)
    else:
        sys.stdout.write(results.report_text(report) + "\n")
    return 0


def add_campaign_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``campaign freeze`` and ``results``."""
    from crm_core.results.campaigns import CHANNELS, DEFAULT_ATTRIBUTION_DAYS, DEFAULT_HOLDOUT, REACH

    camp = subparsers.add_parser("campaign", help="freeze a campaign's recipients (holdout and A/B groups)")
    sub = camp.add_subparsers(dest="campaign_command", required=True)
    p = sub.add_parser("freeze", help="freeze the recipients of a send and print the campaign id")
    p.add_argument("--name", required=True)
    p.add_argument("--rule", required=True, type=Path, help="JSON segment rule file")
    p.add_argument("--channel", required=True, choices=list(CHANNELS))
    p.add_argument("--sent-at", required=True, help="JST, e.g. 2026-11-20 12:00")
    p.add_argument("--holdout", type=float, default=DEFAULT_HOLDOUT, help="holdout share (default 0.1)")
    p.add_argument("--variants", default="A", help="A/B variant names, e.g. A,B")
    p.add_argument("--days", type=int, default=DEFAULT_ATTRIBUTION_DAYS, help="attribution window in days (default 7)")
    p.add_argument("--coupon", help="coupon code used in the campaign")
    p.add_argument("--marked-only", action="store_true", help="the send was made outside the console (e.g. R-Mail from RMS)")
    p.add_argument("--reach", choices=["auto", *REACH], default="auto",
                   help="channel: only customers the console can reach on the channel; all: the whole segment; "
                        "auto (default): all for R-Mail and --marked-only, else channel")
    p.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    p.add_argument("--shop", default=argparse.SUPPRESS, help=SHOP_HELP)
    p.set_defaults(func=cmd_campaign_freeze)
    p = subparsers.add_parser("results", help="print a campaign's results (attribution, lift vs holdout, A/B, ROI)")
    p.add_argument("--campaign", required=True, type=int)
    p.add_argument("--json", action="store_true")
    p.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
    p.add_argument("--shop", default=argparse.SUPPRESS, help=SHOP_HELP)
    p.set_defaults(func=cmd_results)
    add_live_commands(sub, subparsers)


# -- live campaigns (issue 14) -------------------------------------------------------------------
def _ops(args: argparse.Namespace):
    from crm_core import opsdb

    return opsdb.connect(opsdb.ops_path(getattr(args, "db", None) or default_db_path()))


def _actor(args: argparse.Namespace) -> str:
    return getattr(args, "by", None) or getpass.getuser()


def cmd_campaign_create(args: argparse.Namespace) -> int:
    """``campaign create``: a draft live campaign; prints its id and the audience funnel."""
    from crm_core.audience.segments import read_rule_file
    from crm_core.results import live

    rule = read_rule_file(args.rule)
    store = _store(args)
    with closing(_ops(args)) as ops:
        out = live.create(store, ops, name=args.name, channel=args.channel, rule=rule, template=args.template,
                          coupon_id=args.coupon, holdout=args.holdout, variants=[v for v in args.variants.split(",") if v],
                          variant_templates=dict(v.split("=", 1) for v in args.variant_template or []),
                          send_at=args.send_at, quiet_hours=args.quiet_hours, frequency_cap=args.frequency_cap, actor=_actor(args),
                          ab={"sample_share": args.ab_sample, "wait_hours": args.ab_wait_hours,
                              "default": args.variants.split(",")[0]} if args.ab_sample else None)
        out["cost"] = live.send_cost(store, args.channel, out["funnel"])
    _print(out)
    return 0


def cmd_campaign_test_send(args: argparse.Namespace) -> int:
    from crm_core.messaging.sends import load_settings, secrets_file_settings
    from crm_core.results import live

    store = _store(args)
    with closing(_ops(args)) as ops:
        result = live.test_send(store, ops, args.campaign, settings=load_settings(secrets_file_settings()), recipient=args.to,
                                actor=_actor(args), channel=args.channel)
    _print(result.to_dict())
    return 0 if result.ok else 1


def cmd_campaign_approve(args: argparse.Namespace) -> int:
    from crm_core.results import live

    with closing(_ops(args)) as ops:
        _print(live.approve(ops, args.campaign, by=args.by, confirm_count=args.count, role=args.role or "",
                            accept_overage=args.accept_overage))
    return 0


def cmd_campaign_send(args: argparse.Namespace) -> int:
    """``campaign send``: prepare once, then send what is due from the ledger (resumable; safe to run twice)."""
    from crm_core.results import live

    db_path = str(getattr(args, "db", None) or default_db_path())
    with closing(_ops(args)) as ops:
        outcome = live.send_due(db_path, ops, args.campaign)
    _print(outcome.to_dict())
    return 0 if outcome.status in ("done", "waiting", "busy", "approved", "sending", "ab_waiting") else 1


def cmd_campaign_status(args: argparse.Namespace) -> int:
    from crm_core.results import live

    with closing(_ops(args)) as ops:
        out = live.status(ops, args.campaign)
    if args.json:
        _print(out)
    else:
        sys.stdout.write(f"{out['name']}: {out['status_label']} " + json.dumps(out["ledger"], ensure_ascii=False) + "\n")
    return 0


def cmd_campaign_pause(args: argparse.Namespace) -> int:
    from crm_core.results import live

    fn = {"pause": live.pause, "cancel": live.cancel, "resume": live.resume}[args.campaign_command]
    with closing(_ops(args)) as ops:
        _print(fn(ops, args.campaign, _actor(args)))
    return 0


def cmd_campaign_rmail(args: argparse.Namespace) -> int:
    from crm_core.export import to_csv_bytes
    from crm_core.results import live

    with closing(_ops(args)) as ops:
        rows = live.rmail_export(ops, args.campaign)
        if args.mark_sent:
            live.mark_rmail_sent(ops, args.campaign, args.mark_sent, _actor(args))
    Path(args.out).write_bytes(to_csv_bytes(pd.DataFrame(rows, columns=["顧客ID", "メールアドレス"]), encoding=args.encoding))
    _print({"rows": len(rows), "out": str(args.out)})
    return 0


def cmd_suppress(args: argparse.Namespace) -> int:
    """``suppress add|remove|list``: manual suppression records (never deleted; remove adds an opt-in)."""
    from crm_core.messaging import audit, consent

    with closing(_ops(args)) as ops:
        if args.suppress_command == "list":
            _print({"suppressed": consent.list_suppressed(ops, args.channel)})
            return 0
        if args.suppress_command == "add":
            consent.suppress(ops, args.channel, args.address, source="manual", reason=args.reason or "", actor=_actor(args))
            audit.log(ops, _actor(args), "suppress", channel=args.channel, reason=args.reason or "")
        else:
            consent.unsuppress(ops, args.channel, args.address, actor=_actor(args), reason=args.reason or "")
            audit.log(ops, _actor(args), "unsuppress", channel=args.channel, reason=args.reason or "")
        _print({"channel": args.channel, "status": consent.status(ops, args.channel, args.address)})
    return 0


def add_live_commands(camp_sub: argparse._SubParsersAction, subparsers: argparse._SubParsersAction) -> None:
    """``campaign create|test-send|approve|send|status|pause|resume|cancel|rmail-export`` and ``suppress``."""
    from crm_core.results.campaigns import DEFAULT_HOLDOUT
    from crm_core.results.live import SEND_CHANNELS

    p = _with_db(camp_sub.add_parser("create", help="create a live campaign (draft) and print its audience funnel"))
    p.add_argument("--name", required=True)
    p.add_argument("--rule", required=True, type=Path, help="JSON segment rule file")
    p.add_argument("--channel", required=True, choices=list(SEND_CHANNELS),
                   help="line_or_email: LINE to customers LINE reaches, e-mail to the others (one message each)")
    p.add_argument("--template", required=True, help="message template key")
    p.add_argument("--coupon", help="coupon id (unique codes are issued per recipient)")
    p.add_argument("--holdout", type=float, default=DEFAULT_HOLDOUT)
    p.add_argument("--variants", default="A", help="A/B variant names, e.g. A,B")
    p.add_argument("--variant-template", action="append", help="VARIANT=TEMPLATE_KEY (default: --template)")
    p.add_argument("--send-at", help="JST, e.g. 2026-12-04 12:00 (default: now)")
    p.add_argument("--quiet-hours", default="21-08", help="no sends between these hours JST, or off")
    p.add_argument("--frequency-cap", type=int, default=None,
                   help="max marketing messages per customer per 7 days (0: none; default: the shop's 7-day limit)")
    p.add_argument("--ab-sample", type=float, default=0.0,
                   help="automatic A/B: share of recipients per variant sent first (e.g. 0.1); the rest get the winner")
    p.add_argument("--ab-wait-hours", type=float, default=24.0, help="hours to wait before picking the winner (default 24)")
    p.add_argument("--by", help="who creates it (default: the OS user)")
    p.set_defaults(func=cmd_campaign_create)
    p = _with_db(camp_sub.add_parser("test-send", help="send exactly this content to a registered test recipient"))
    p.add_argument("--campaign", required=True, type=int)
    p.add_argument("--to", required=True)
    p.add_argument("--channel", choices=["line", "email"],
                   help="line_or_email campaigns: the channel to test (each channel used needs a test send)")
    p.add_argument("--by")
    p.set_defaults(func=cmd_campaign_test_send)
    p = _with_db(camp_sub.add_parser("approve", help="approve a tested campaign"))
    p.add_argument("--campaign", required=True, type=int)
    p.add_argument("--by", required=True)
    p.add_argument("--count", type=int, help="the number of recipients, typed to confirm (when the creator approves)")
    p.add_argument("--role", help="approver role of --by (when someone else approves)")
    p.add_argument("--accept-overage", action="store_true", help="allow a LINE send beyond this month's quota (paid messages)")
    p.set_defaults(func=cmd_campaign_approve)
    p = _with_db(camp_sub.add_parser("send", help="send what is due (foreground, resumable, never twice)"))
    p.add_argument("--campaign", required=True, type=int)
    p.set_defaults(func=cmd_campaign_send)
    p = _with_db(camp_sub.add_parser("status", help="status and ledger counts by state"))
    p.add_argument("--campaign", required=True, type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_campaign_status)
    for name in ("pause", "resume", "cancel"):
        p = _with_db(camp_sub.add_parser(name, help=f"{name} a live campaign"))
        p.add_argument("--campaign", required=True, type=int)
        p.add_argument("--by")
        p.set_defaults(func=cmd_campaign_pause)
    p = _with_db(camp_sub.add_parser("rmail-export", help="write the R-Mail list (holdout and suppressed removed)"))
    p.add_argument("--campaign", required=True, type=int)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--encoding", default="cp932", choices=["cp932", "utf-8-sig"])
    p.add_argument("--mark-sent", help="JST time the R-Mail was sent from RMS")
    p.add_argument("--by")
    p.set_defaults(func=cmd_campaign_rmail)

    sup = subparsers.add_parser("suppress", help="suppression records (opt-outs) for e-mail and LINE")
    ssub = sup.add_subparsers(dest="suppress_command", required=True)
    for name in ("add", "remove"):
        p = _with_db(ssub.add_parser(name, help=f"{name} a suppression (kept as a record)"))
        p.add_argument("--channel", required=True, choices=["email", "line"])
        p.add_argument("--address", required=True)
        p.add_argument("--reason")
        p.add_argument("--by")
        p.set_defaults(func=cmd_suppress)
    p = _with_db(ssub.add_parser("list", help="list suppressed addresses"))
    p.add_argument("--channel", choices=["email", "line"])
    p.set_defaults(func=cmd_suppress)


# -- scenarios (issue 15) -----------------------------------------------------------------------------
def cmd_scenario(args: argparse.Namespace) -> int:
    """``scenario list|show|enable|disable NAME``."""
    from contextlib import closing

    from crm_core.scenarios import definitions as SD
    from crm_core.scenarios import engine

    with closing(_ops(args)) as ops:
        what = args.scenario_command
        if what == "list":
            rows = [{"name": s.name, "title": s.title, "enabled": s.enabled, "priority": s.priority, "trigger": s.trigger_label(),
                     "steps": [st.day for st in s.steps], "holdout": s.holdout} for s in SD.list_scenarios(ops)]
            if args.json:
                _print({"scenarios": rows})
            else:
                for r in rows:
                    sys.stdout.write(f"{'●' if r['enabled'] else '○'} {r['name']:<20} {r['title']}（{r['trigger']}、"
                                     f"{'・'.join(f'{d}日後' for d in r['steps'])}）\n")
            return 0
        if what == "show":
            s = SD.get(ops, args.name)
            _print({**s.to_dict(), "enabled": s.enabled})
            return 0
        if what == "enable":
            store = _store(args)
            try:
                s = engine.enable(store, ops, args.name, actor=args.by or "cli",
                                  include_current=bool(getattr(args, "include_current", False)))
            finally:
                store.close()
        else:
            s = engine.disable(ops, args.name, actor=args.by or "cli")
        _print({"name": s.name, "enabled": s.enabled})
    return 0


def cmd_scenario_run(args: argparse.Namespace) -> int:
    """``scenario run --date YYYY-MM-DD [--dry-run] [--json]``: the day's sends once (or what they would be)."""
    import datetime as dt
    from contextlib import closing

    from crm_core.scenarios import engine

    try:
        day = dt.date.fromisoformat(args.date) if args.date else None
    except ValueError:
        raise InputError("日付は YYYY-MM-DD の形で入力してください。", f"bad date {args.date!r}") from None
    store = _store(args)
    try:
        with closing(_ops(args)) as ops:
            if args.dry_run:
                from crm_core import clock

                out = engine.dry_run(store, ops, day or clock.today() + dt.timedelta(days=1), names=args.scenario or None)
                out.pop("rows")
            else:
                from crm_core.messaging.delivery import channel_objects
                from crm_core.messaging.sends import load_settings, secrets_file_settings

                secrets = secrets_file_settings()
                objs = channel_objects(load_settings(secrets), secrets)
                now = dt.datetime.now(dt.UTC)
                if day is not None and args.at:
                    now = dt.datetime.combine(day, dt.time.fromisoformat(args.at), tzinfo=engine.JST)
                try:
                    out = engine.run_scenarios(store, ops, day, now=now, line=objs["line"], smtp=objs["smtp"],
                                               unsubscribe=objs["unsubscribe"], from_addr=objs["from_addr"] or "",
                                               names=args.scenario or None)
                finally:
                    if objs["smtp"] is not None:
                        objs["smtp"].close()
    finally:
        store.close()
    if args.json:
        _print(out)
    elif args.dry_run:
        sys.stdout.write(f"{out['day']} に届くメッセージ: 合計 {out['total']}件\n")
        for c in out["steps"]:
            sys.stdout.write(f"  {c['title']} ステップ{c['step']}: 送信 {c['queued']}件・比較用 {c['held_out']}件・"
                             f"上限 {c['daily_cap'] + c['capped']}件・終了 {c['exited']}件\n")
    else:
        sys.stdout.write(out["summary"] + "\n")
    return 0


def cmd_scenario_results(args: argparse.Namespace) -> int:
    """``scenario results NAME [--json]``: per step sent, conversion, revenue, lift against the holdout."""
    from contextlib import closing

    from crm_core.scenarios import report

    store = _store(args)
    try:
        with closing(_ops(args)) as ops:
            out = report.results(store, ops, args.name, days=args.days)
    finally:
        store.close()
    if args.json:
        _print(out)
    else:
        sys.stdout.write(f"{out['title']}（購入までの日数 {out['days']}日）\n")
        for r in out["steps"]:
            conv = "-" if r["conversion"] is None else f"{r['conversion']:.1%}"
            ctrl = "-" if r["control_conversion"] is None else f"{r['control_conversion']:.1%}"
            sys.stdout.write(f"  ステップ{r['step']}（{r['day']}日後）: 送信 {r['sent']}件 購入率 {conv}（比較用 {ctrl}）"
                             f" 売上 ¥{r['revenue']:,.0f} — {r['verdict']}\n")
    return 0


def add_scenario_commands(subparsers: argparse._SubParsersAction) -> None:
    """``scenario list|show|enable|disable|run|results``."""
    sc = subparsers.add_parser("scenario", help="scenario automation (step sends): list, switch, run a day, results")
    sub = sc.add_subparsers(dest="scenario_command", required=True)
    p = _with_db(sub.add_parser("list", help="every scenario with its switch"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_scenario)
    for name in ("show", "enable", "disable"):
        p = _with_db(sub.add_parser(name, help=f"{name} a scenario"))
        p.add_argument("name")
        p.add_argument("--by")
        if name == "enable":
            p.add_argument("--include-current", action="store_true",
                           help="segment trigger: customers already in the segment enter too (default: only those who enter after)")
        p.set_defaults(func=cmd_scenario)
    p = _with_db(sub.add_parser("run", help="record and send the day's scenario messages once (or --dry-run)"))
    p.add_argument("--date", help="YYYY-MM-DD (default: today, or tomorrow with --dry-run)")
    p.add_argument("--at", help="HH:MM JST: the time of the run on --date (a simulated clock)")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--scenario", action="append", help="only this scenario (even when switched off); repeatable")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_scenario_run)
    p = _with_db(sub.add_parser("results", help="per step: sent, conversion, revenue, lift against the holdout"))
    p.add_argument("name")
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_scenario_results)


# -- subscriptions ---------------------------------------------------------------------------------
def cmd_subscription_retention(args: argparse.Namespace) -> int:
    """``subscription retention``: sBG parameters per start cohort and the projected survival."""
    from crm_core.analytics import subscription

    report = subscription.retention_projection(_store(args), as_of=args.as_of, unit=args.unit, horizon=args.horizon,
                                               annual_discount=args.discount)
    if args.json:
        _print(report)
    else:
        sys.stdout.write(subscription.retention_text(report) + "\n")
    return 0


def add_subscription_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``subscription retention``."""
    from crm_core.analytics.subscription import COHORT_UNITS
    from crm_core.model import sbg

    sub = subparsers.add_parser("subscription", help="subscription (定期) analyses").add_subparsers(
        dest="subscription_command", required=True)
    p = _with_db(sub.add_parser("retention", help="fit the sBG model per start cohort and print the projected survival"))
    p.add_argument("--json", action="store_true")
    p.add_argument("--as-of", help="YYYY-MM-DD (default: last order date)")
    p.add_argument("--unit", default="half", choices=list(COHORT_UNITS), help="start cohort unit (default half-year)")
    p.add_argument("--horizon", type=int, default=sbg.HORIZON, help="deliveries projected (default 24)")
    p.add_argument("--discount", type=float, default=sbg.ANNUAL_DISCOUNT, help="annual discount rate (default 0.10)")
    p.set_defaults(func=cmd_subscription_retention)


# -- the processes around the console (issue 13) -----------------------------------------------------
def _db_path(args: argparse.Namespace) -> str:
    return str(getattr(args, "db", None) or default_db_path())


def cmd_worker(args: argparse.Namespace) -> int:
    """``worker``: run the background jobs (inbox imports, scheduled work) until Ctrl-C."""
    from crm_core.service import worker

    return worker.main(_db_path(args), inbox=args.inbox, poll=args.poll, once=args.once, wait=args.wait)


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve``: the endpoint service (health, LINE webhook, one-click unsubscribe)."""
    from crm_core.service import app

    return app.main(_db_path(args), host=args.host, port=args.port)


def cmd_run_all(args: argparse.Namespace) -> int:
    """``run-all``: console, worker and endpoint service together; restarts a crashed one."""
    from crm_core.service import supervisor

    return supervisor.run_all(getattr(args, "db", None), args.console_args)


def cmd_backup(args: argparse.Namespace) -> int:
    """``backup``: a consistent copy of the store and its operations file, while everything runs."""
    from crm_core.deploy import backup

    _print(backup(_db_path(args), args.out, wait=args.wait))
    return 0


def add_service_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``worker``, ``serve``, ``run-all`` and ``backup``."""
    p = _with_db(subparsers.add_parser("backup", help="copy the store and its operations file (safe while running)"))
    p.add_argument("--out", required=True, type=Path, help="folder for the copies")
    p.set_defaults(func=cmd_backup)
    p = _with_db(subparsers.add_parser("worker", help="run background jobs: inbox imports and scheduled work"))
    p.add_argument("--inbox", type=Path, help="folder watched for files to import (default: $CRM_INBOX or data/inbox)")
    p.add_argument("--poll", type=float, default=2.0, metavar="SECONDS", help="how often to look for work (default 2)")
    p.add_argument("--once", action="store_true", help="run what is due now, then exit (for cron)")
    p.set_defaults(func=cmd_worker)
    p = _with_db(subparsers.add_parser("serve", help="the endpoint service: /healthz, LINE webhook, one-click unsubscribe"))
    p.add_argument("--host", help="bind address (default: $CRM_BIND or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: $CRM_SERVICE_PORT or 8502)")
    p.set_defaults(func=cmd_serve)
    p = _with_db(subparsers.add_parser("run-all", help="console, worker and endpoint service together (what ./run.sh starts)"))
    p.set_defaults(func=cmd_run_all, console_args=[])  # unknown options go to `streamlit run` (see main)


# -- users and roles of a shop ----------------------------------------------------------------------
def _cli_user() -> Any:
    """Whoever runs the command line can open the store file: they act as 承認・管理, named in the audit log."""
    from crm_core import access

    return access.User(f"cli:{getpass.getuser()}", "command line", access.Role.ADMIN)


def cmd_users(args: argparse.Namespace) -> int:
    from crm_core import access

    store = _store(args)
    if args.users_command == "add":
        access.add_user(store, _cli_user(), args.email, args.role, name=args.name or "")
    elif args.users_command == "role":
        access.set_role(store, _cli_user(), args.email, args.role)
    elif args.users_command == "remove":
        access.remove_user(store, _cli_user(), args.email)
    _print(access.list_users(store))
    return 0


def add_user_commands(subparsers: argparse._SubParsersAction) -> None:
    users = _with_db(subparsers.add_parser("users", help="the shop's users and roles (閲覧, 担当, 承認・管理)"))
    sub = users.add_subparsers(dest="users_command", required=True)
    from crm_core.access import Role

    roles = [r.value for r in Role] + ["viewer", "operator", "admin"]
    _with_db(sub.add_parser("list", help="list the shop's users"))
    p = _with_db(sub.add_parser("add", help="give an e-mail address a role in the shop"))
    p.add_argument("email")
    p.add_argument("role", choices=roles)
    p.add_argument("--name")
    p = _with_db(sub.add_parser("role", help="change a user's role"))
    p.add_argument("email")
    p.add_argument("role", choices=roles)
    p = _with_db(sub.add_parser("remove", help="take a user's access away"))
    p.add_argument("email")
    users.set_defaults(func=cmd_users)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m crm_core", description="CRM marketing console — command line")
    parser.add_argument("--db", help=DB_HELP)
    parser.add_argument("--wait", type=float, metavar="SECONDS", help=WAIT_HELP)
    parser.add_argument("--shop", help=SHOP_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    p = _with_db(sub.add_parser("import", help="import order / customer / product CSV files"))
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--format", default="auto", choices=["auto", *FORMATS_BY_KEY, "generic"])
    p.add_argument("--map", action="append", metavar="COLUMN=field", help="column mapping for generic CSV (repeatable)")
    p.add_argument("--kind", choices=list(KIND_FIELDS), help="what a generic file holds")
    p.add_argument("--mapping-name", help="use a saved column mapping")
    p.add_argument("--save-mapping", metavar="NAME", help="save the --map mapping under this name")
    p.add_argument("--identity-key", choices=["email", "phone", "name_phone", "name_postcode"])
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("sample", help="generate the fictional sample shop's export files")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_sample)

    p = _with_db(sub.add_parser("customers", help="write the customer table as CSV"))
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--as-of", help="YYYY-MM-DD (default: last order date)")
    p.add_argument("--encoding", default="utf-8-sig", choices=["utf-8-sig", "cp932"])
    p.set_defaults(func=cmd_customers)

    p = _with_db(sub.add_parser("rekey", help="change the customer identity key and re-merge orders"))
    p.add_argument("key", choices=["email", "phone", "name_phone", "name_postcode"])
    p.set_defaults(func=cmd_rekey)

    p = _with_db(sub.add_parser("profit", help="gross profit and how much of the revenue has a known cost"))
    p.set_defaults(func=cmd_profit)

    p = _with_db(sub.add_parser("line-reach", help="customers reachable on LINE now and after each import"))
    p.set_defaults(func=cmd_line_reach)

    add_segment_commands(sub)
    add_message_commands(sub)
    add_calendar_commands(sub)
    add_campaign_commands(sub)
    add_subscription_commands(sub)
    add_scenario_commands(sub)
    add_service_commands(sub)
    add_user_commands(sub)
    return parser


def _resolve_shop(args: argparse.Namespace) -> None:
    """``--shop NAME`` names the store ``data/shops/NAME/crm.duckdb`` (created on first use)."""
    shop = getattr(args, "shop", None)
    if not shop:
        return
    from crm_core import shops

    if args.db:
        raise InputError("--db と --shop は同時に指定できません。どちらか一方にしてください。", "--db with --shop")
    args.db = str(shops.db_path(shop))


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command.

    An :class:`InputError` becomes a Japanese message and exit status 2; a
    failure of the machine (store locked by another process, read-only store,
    full disk, a rule nested too deeply — see :mod:`crm_core.failures`) a
    Japanese message and exit status 3.  This is the one place the command
    line maps them; anything else is a bug and keeps its traceback.
    """
    if not hasattr(args, "db"):
        args.db = None
    if not hasattr(args, "wait"):
        args.wait = None
    try:
        _resolve_shop(args)
        _finish_pending(args)
        return args.func(args)
    except StoreBusy as exc:
        sys.stderr.write(f"エラー: {exc.message}\n")
        _print({"errors": [exc.message]})
        return EXIT_BUSY
    except InputError as exc:
        return _fail(exc)
    except KeyboardInterrupt:
        return _stopped()
    except Exception as exc:
        if _interrupted.is_set():
            return _stopped()
        from crm_core.failures import translate

        problem = translate(exc, args.db or default_db_path())
        if problem is None:
            raise
        return _fail(problem)
    finally:
        while _opened:
            _opened.pop().close()


def _stopped() -> int:
    """Ctrl-C: say so, without a traceback.

    An import stopped before its commit is rolled back whole; stopped during the refresh after it, the orders
    are in and the next command finishes the refresh (``_finish_pending``).
    """
    sys.stderr.write("中断しました（Ctrl-C）。\n")
    return EXIT_INTERRUPTED


def _on_interrupt(*_: Any) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


def _fail(exc: InputError) -> int:
    """Print the Japanese message (stderr, and as JSON on stdout); 2 for input, 3 for the machine."""
    from crm_core.errors import StorageError

    sys.stderr.write(f"エラー: {exc.message}\n")
    _print({"errors": [exc.message]})
    return 3 if isinstance(exc, StorageError) else 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "command", None) != "run-all":
            parser.error("unrecognized arguments: " + " ".join(extra))
        args.console_args = list(args.console_args) + extra  # `streamlit run` options such as --server.port 8600
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.default_int_handler and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_interrupt)
    try:
        return run_command(args)
    finally:
        if signal.getsignal(signal.SIGINT) is _on_interrupt:
            signal.signal(signal.SIGINT, previous)
        _interrupted.clear()


if __name__ == "__main__":
    raise SystemExit(main())
