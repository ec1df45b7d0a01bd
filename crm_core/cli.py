"""Command line: ``python -m crm_core COMMAND ...`` drives the same functions as the app.

Every command prints JSON on stdout (or writes the file asked for) and exits
non-zero with a Japanese message on stderr when the input cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from crm_core.db import Store, default_db_path
from crm_core.errors import InputError


def _print(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def _store(args: argparse.Namespace) -> Store:
    return Store(args.db or default_db_path())


def cmd_import(args: argparse.Namespace) -> int:
    from crm_core.ingest.importer import import_files
    from crm_core.ingest.mappings import load_mapping, parse_map_args

    store = _store(args)
    mapping = parse_map_args(args.map or [])
    kind = args.kind
    if args.mapping_name:
        kind, mapping = load_mapping(store, args.mapping_name)
    fmt = "generic" if mapping else args.format
    if fmt == "generic" and not mapping:
        raise InputError("--format generic には --map 列名=項目 か --mapping-name を指定してください。", "generic without map")
    report = import_files(store, args.files, fmt=fmt, mapping=mapping or None, kind=kind, identity_key=args.identity_key)
    if args.save_mapping and mapping:
        from crm_core.ingest.mappings import save_mapping

        save_mapping(store, args.save_mapping, report.files[0].kind, mapping)
    _print(report.to_dict())
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from crm_core.sample.generate import generate_sample

    paths = generate_sample(args.out, customers=args.customers, seed=args.seed)
    _print({k: str(v) for k, v in paths.items()})
    return 0


def cmd_customers(args: argparse.Namespace) -> int:
    import datetime as dt

    from crm_core.model import build as model

    as_of = dt.date.fromisoformat(args.as_of) if args.as_of else None
    rows = model.export_customers(_store(args), args.out, as_of=as_of, encoding=args.encoding)
    _print({"rows": rows, "out": str(args.out)})
    return 0


def cmd_rekey(args: argparse.Namespace) -> int:
    from crm_core import pipeline
    from crm_core.ingest.identity import rekey

    store = _store(args)
    stats = rekey(store, args.key)
    stats["warnings"] = pipeline.after_import(store)
    _print(stats)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m crm_core", description="CRM marketing console — command line")
    parser.add_argument("--db", help="DuckDB file (default: $CRM_DB or data/crm.duckdb)")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_db(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--db", default=argparse.SUPPRESS, help="DuckDB file (default: $CRM_DB or data/crm.duckdb)")
        return p

    p = with_db(sub.add_parser("import", help="import order / customer / product CSV files"))
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--format", default="auto", choices=["auto", "rakuten", "rakuten_legacy", "shopify", "shopify_customers", "generic"])
    p.add_argument("--map", action="append", metavar="COLUMN=field", help="column mapping for generic CSV (repeatable)")
    p.add_argument("--kind", choices=["orders", "contacts", "products"], help="what a generic file holds")
    p.add_argument("--mapping-name", help="use a saved column mapping")
    p.add_argument("--save-mapping", metavar="NAME", help="save the --map mapping under this name")
    p.add_argument("--identity-key", choices=["email", "phone", "name_phone", "name_postcode"])
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("sample", help="generate the fictional sample shop's export files")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--customers", type=int, default=2000)
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_sample)

    p = with_db(sub.add_parser("customers", help="write the customer table as CSV"))
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--as-of", help="YYYY-MM-DD (default: last order date)")
    p.add_argument("--encoding", default="utf-8-sig", choices=["utf-8-sig", "cp932"])
    p.set_defaults(func=cmd_customers)

    p = with_db(sub.add_parser("rekey", help="change the customer identity key and re-merge orders"))
    p.add_argument("key", choices=["email", "phone", "name_phone", "name_postcode"])
    p.set_defaults(func=cmd_rekey)

    # Each later stage of the pipeline registers its own commands.
    from crm_core.audience import segments
    from crm_core.events import calendar
    from crm_core.messaging import sends
    from crm_core.results import campaigns

    for module in (segments, sends, calendar, campaigns):
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "db"):
        args.db = None
    try:
        return args.func(args)
    except InputError as exc:
        sys.stderr.write(f"エラー: {exc.message}\n")
        _print({"errors": [exc.message]})
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
