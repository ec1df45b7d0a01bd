"""Import export files into the store: detect, decode, normalise, validate, upsert.

The whole batch runs in one transaction: a file that cannot be imported
leaves the store exactly as it was.  Orders are keyed by (source, order_id);
a content hash per order makes re-imports idempotent (the same file again
adds and updates nothing) and overlapping files add only what is new and
update what changed.  Rows with unparseable dates or amounts are rejected
with their row number and reason (all rows of that order, so an order is
never stored half), and the rest is imported.

All normalisation runs in DuckDB SQL over a staging table; Python only
streams the file (cp932 -> UTF-8) and builds statements from the fixed
field lists in :mod:`crm_core.ingest.formats` (identifiers never come from
the file: CSV columns are read under generated names ``c0, c1, ...``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from crm_core import clock
from crm_core.db import LAST_ORDERS_FILE, Store, mark_refresh_due, orders_state, quote_ident
from crm_core.errors import InputError
from crm_core.ingest import formats as F
from crm_core.ingest.identity import IDENTITY_KEYS, identity_key_setting, rebuild_customers, record_line_reach
from crm_core.ingest.reader import ENCODING_LABELS, RawFile, prepare, remove_quietly
from crm_core.tempfiles import sweep, work_dir

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
DONE = "取り込みが完了しました。"
"""The last progress message of an import (the pipeline says it after the derived tables)."""


@dataclass
class FileReport:
    """What one file did to the store."""

    file_name: str
    format: str
    format_label: str
    kind: str
    encoding: str
    rows_read: int = 0
    orders_added: int = 0
    orders_updated: int = 0
    orders_unchanged: int = 0
    lines: int = 0
    rows_rejected: int = 0
    contacts: int = 0
    products: int = 0
    already_imported: bool = False
    import_id: int | None = None
    changed: bool = False
    note: str | None = None


@dataclass
class ImportReport:
    """The result of one import batch (one or more files)."""

    files: list[FileReport] = field(default_factory=list)
    customers: int = 0
    orders_merged: int = 0
    customers_without_key: int = 0
    identity_key: str = "email"
    rejects: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def total(self, name: str) -> int:
        """Sum of a counter over the files."""
        return sum(getattr(f, name) for f in self.files)

    def outcome(self) -> tuple[str, str]:
        """``(level, Japanese sentence)`` for the marketer: what the import did.

        ``success`` only when something was written; ``info`` when every file
        had been imported before with the same content; ``warning`` when no row
        could be imported, with each file's reason.
        """
        if any(f.changed for f in self.files):
            return "success", "取り込みが完了しました。"
        notes = [f.note for f in self.files if f.note]
        if notes:
            return "warning", "取り込めたデータはありません。" + " ".join(notes)
        return "info", "すでに取り込み済みの内容です。データは変更されていません。"

    def to_dict(self) -> dict:
        """JSON-ready summary (the command line prints this)."""
        return {
            "orders_added": self.total("orders_added"),
            "orders_updated": self.total("orders_updated"),
            "orders_unchanged": self.total("orders_unchanged"),
            "lines": self.total("lines"),
            "rows_read": self.total("rows_read"),
            "rows_rejected": self.total("rows_rejected"),
            "contacts": self.total("contacts"),
            "products": self.total("products"),
            "customers": self.customers,
            "orders_merged": self.orders_merged,
            "customers_without_key": self.customers_without_key,
            "identity_key": self.identity_key,
            "errors": self.errors,
            "warnings": self.warnings,
            "outcome": self.outcome()[0],
            "message": self.outcome()[1],
            "files": [asdict(f) for f in self.files],
        }


@dataclass
class FileSpec:
    """One file of a batch with its own format and, for a generic CSV, its own mapping.

    ``fmt`` is ``auto`` (detect), a known format key or ``generic``;
    ``mapping`` and ``kind`` belong to this file only.
    """

    path: str | Path
    name: str | None = None
    fmt: str = "auto"
    mapping: dict[str, str] | None = None
    kind: str | None = None


@dataclass
class _Plan:
    raw: RawFile
    display_name: str
    fmt_key: str
    fmt_label: str
    kind: str
    source: str
    columns: dict[str, int]
    rows: int = 0
    same: dict | None = None  # the record of this very file, when the store still holds what it left
    track_touched: bool = True  # list the customers it touches (not when the store was empty: all are new)


def import_files(
    store: Store,
    paths: Sequence[str | Path | FileSpec],
    fmt: str = "auto",
    mapping: dict[str, str] | None = None,
    kind: str | None = None,
    identity_key: str | None = None,
    display_names: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import one or more export files atomically.

    Parameters
    ----------
    store : Store
        The open store.
    paths : sequence of path or FileSpec
        Files to import (Rakuten current / legacy, Shopify orders /
        customers, the console's own layouts, or generic CSV with a
        mapping).  A :class:`FileSpec` carries the file's own format,
        mapping and kind; a plain path takes ``fmt`` / ``mapping`` / ``kind``.
    fmt : {"auto", "rakuten", "rakuten_legacy", "shopify", "shopify_customers", "generic", ...}
        Force a format, or detect from the header (``auto``).  A file that is
        close to a known export but lacks one of its required columns is
        refused with that export's name and the missing column.
    mapping : dict, optional
        ``{csv header: field}`` for generic files (fields of
        :data:`crm_core.ingest.formats.KIND_FIELDS`).  With ``fmt="auto"`` it
        applies only to files that are not a known export.
    kind : {"orders", "contacts", "products"}, optional
        What a generic file holds; guessed from the mapping when omitted.
    identity_key : {"email", "phone", "name_phone", "name_postcode"}, optional
        How orders are merged into customers; defaults to the stored setting.
    display_names : sequence of str, optional
        Names to show for the files (the uploaded names in the UI).
    progress : callable, optional
        ``progress(fraction, japanese_message)`` during long work.

    Returns
    -------
    ImportReport

    Raises
    ------
    InputError
        When a file cannot be imported; the store is then unchanged (with several files, the message says that
        the others were not imported either).
    """
    try:
        return _import_files(store, paths, fmt, mapping, kind, identity_key, display_names, progress)
    except InputError as exc:
        if len(paths) < 2:
            raise
        others = len(paths) - 1
        raise InputError(exc.message + f"この取込のほかの{others:,}件のファイルも取り込んでいません（1件でも取り込めないと、"
                         "まとめて取り消します）。そのファイルを外すか直してから、もう一度取り込んでください。",
                         exc.detail) from None


def _import_files(store: Store, paths: Sequence[str | Path | FileSpec], fmt: str, mapping: dict[str, str] | None,
                  kind: str | None, identity_key: str | None, display_names: Sequence[str] | None,
                  progress: Progress | None) -> ImportReport:
    if not paths:
        raise InputError("取り込むファイルを選んでください。", "no files")
    if identity_key is not None and identity_key not in IDENTITY_KEYS:
        raise InputError(f"顧客の識別キー「{identity_key}」は使えません。", f"bad identity key {identity_key}")
    specs = [p if isinstance(p, FileSpec) else FileSpec(p, None, fmt, mapping, kind) for p in paths]
    names = list(display_names) if display_names else [s.name or Path(s.path).name for s in specs]
    report = ImportReport(identity_key=identity_key or "")

    def say(frac: float, text: str) -> None:
        if progress:
            progress(min(max(frac, 0.0), 1.0), text)

    sweep()  # working folders of imports that were killed
    with work_dir("import") as workdir:
        plans: list[_Plan] = []
        n = len(paths)
        for i, (spec, name) in enumerate(zip(specs, names, strict=True)):
            say(i / n * 0.3, f"「{name}」を読み込んでいます…")
            try:
                raw = prepare(spec.path, workdir, lambda f, i=i, name=name: say((i + f) / n * 0.3, f"「{name}」を読み込んでいます…"))
            except InputError as exc:  # the reader names the file it read: an upload's is a temporary one
                raise InputError(_named(name, exc.message.replace(f"「{Path(spec.path).name}」", f"「{name}」")),
                                 exc.detail) from None
            plans.append(_plan(raw, name, spec.fmt, spec.mapping, spec.kind))

        # Decoding and checking the files above needs no store; a lazily opened
        # store (the command line's) takes its turn among writers only here.
        key = identity_key or identity_key_setting(store)
        if key not in IDENTITY_KEYS:
            raise InputError(f"顧客の識別キー「{key}」は使えません。", f"bad identity key {key}")
        report.identity_key = key
        cur = store.cursor()
        _drop_temp(cur, len(plans))
        cur.execute("DROP TABLE IF EXISTS temp.touched_customers")
        # Read every file into its staging table first: a file DuckDB cannot parse
        # fails here, before anything in the store is touched.
        empty_before = not cur.execute("SELECT count(*) FROM (SELECT 1 FROM orders LIMIT 1)").fetchone()[0]
        for i, plan in enumerate(plans):
            plan.track_touched = not empty_before
            plan.same = _same_as_last_file(cur, plan, key)
            if plan.same is None:
                say(0.3 + i / n * 0.2, f"「{plan.display_name}」を解析しています…")
                plan.rows = _stage(cur, plan, f"stage_{i}")
        cur.execute("BEGIN TRANSACTION")
        try:
            # customers whose orders this batch adds or changes (before and after), for the refresh
            cur.execute("CREATE TEMP TABLE touched_customers (customer_id VARCHAR)")
            for i, plan in enumerate(plans):
                say(0.5 + i / n * 0.35, f"「{plan.display_name}」を取り込んでいます（{F.KIND_LABELS[plan.kind]}）…")
                _drop_temp(cur)  # the previous file's working tables
                if plan.same is not None:
                    plan.same = _same_as_last_file(cur, plan, key)  # an earlier file of the batch may have changed it
                    if plan.same is None:
                        plan.rows = _stage(cur, plan, f"stage_{i}")
                if plan.same is None:
                    _stage_view(cur, plan, f"stage_{i}")
                report.files.append(_import_one(cur, plan, key, report))
                cur.execute("DROP TABLE IF EXISTS temp." + quote_ident(f"stage_{i}"))  # its memory, at once
            say(0.88, "顧客データを更新しています…")
            # only the customers whose orders changed, unless contact lists or LINE links (matched by
            # e-mail and phone) are in the batch, or the store was empty (every customer is new)
            everyone = empty_before or any(p.kind in ("contacts", "line_links") for p in plans)
            stats = rebuild_customers(cur, touched=None if everyone else "touched_customers")
            report.customers = stats["customers"]
            report.orders_merged = stats["orders_merged"]
            report.customers_without_key = stats["customers_without_key"]
            if any(f.kind in ("orders", "contacts", "line_links") and f.changed for f in report.files):
                # committed with the data: a process killed before the refresh ends
                # leaves the mark, and the next start or command finishes the refresh
                mark_refresh_due(cur)
            ids = [f.import_id for f in report.files if f.import_id is not None]
            if ids:
                record_line_reach(cur, max(ids), "、".join(f.file_name for f in report.files), clock.now())
            cur.execute("COMMIT")
        except InputError:
            cur.execute("ROLLBACK")
            raise
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            for plan in plans:
                for part in plan.raw.temporary:
                    remove_quietly(part)
            _drop_temp(cur, len(plans))
            cur.execute("DROP TABLE IF EXISTS temp.touched_customers")

    report.warnings.extend(f.note for f in report.files if f.note)
    if report.total("rows_rejected"):
        report.warnings.append(
            f"{report.total('rows_rejected'):,}行は日付や金額を読めなかったため取り込んでいません。"
            "「取り込めなかった行」で行番号と理由を確認できます。"
        )
    if report.customers_without_key:
        report.warnings.append(
            f"{report.customers_without_key:,}件の注文は識別キー（メールアドレス・電話番号など）が空のため、"
            "注文ごとに別の顧客として扱いました。"
        )
    say(1.0, DONE)
    return report


def _named(name: str, message: str) -> str:
    return message if name in message else f"「{name}」: {message}"


def _short_duckdb_message(exc: Exception) -> str:
    line = re.search(r"[Ll]ine:? ?(\d+)", str(exc))
    if line:
        return f"{int(line.group(1)):,}行目付近"
    return "ファイルの内容"


def _plan(raw: RawFile, name: str, fmt: str, mapping: dict[str, str] | None, kind: str | None) -> _Plan:
    """Decide how to read one file (format, kind, column positions).

    ``auto``: a known export is read with its own layout (a mapping given for
    the batch does not apply to it); a file close to a known export but
    missing one of its required columns is refused, naming both; any other
    file is a generic CSV and needs ``mapping``.
    """
    headers = raw.headers
    if fmt == "generic":
        return _generic_plan(raw, name, mapping or {}, kind)
    if fmt == "auto":
        close = F.closest_format(headers)
        if close is None:
            if mapping:
                return _generic_plan(raw, name, mapping, kind)
            raise InputError(
                f"「{name}」は楽天RMS・Shopifyの注文エクスポートとして認識できませんでした。"
                "その他のシステムのCSVは「汎用CSV」を選び、列の対応を指定して取り込んでください。",
                "format not detected",
            )
        known, missing = close
        if missing:
            raise InputError(F.missing_message(name, known, missing), f"{known.key} without {len(missing)} required column(s)")
    elif fmt in F.FORMATS_BY_KEY:
        known = F.FORMATS_BY_KEY[fmt]
    else:
        raise InputError(f"形式「{fmt}」には対応していません。", f"unknown format {fmt}")
    columns = F.resolve_columns(known, headers)
    missing = known.missing(headers)
    if missing:
        raise InputError(F.missing_message(name, known, missing), f"{known.key} without required column(s)")
    return _Plan(raw, name, known.key, known.label, known.kind, known.source, columns)


def _generic_plan(raw: RawFile, name: str, mapping: dict[str, str], kind: str | None) -> _Plan:
    headers = raw.headers
    if not mapping:
        raise InputError(
            f"「{name}」: 汎用CSVは、どの列が何を表すか（列の対応）を指定してください。", "generic without mapping"
        )
    fields = {F.FIELD_SYNONYMS.get(f, f) for f in mapping.values()}
    kind = kind or _kind_from_fields(fields)
    if kind not in F.KIND_FIELDS:
        raise InputError(f"データの種類「{kind}」には対応していません。", f"unknown kind {kind}")
    allowed = F.KIND_FIELDS[kind]
    norm_pos = {F.normalize_header(h): i for i, h in reversed(list(enumerate(headers)))}
    exact_pos = {h: i for i, h in reversed(list(enumerate(headers)))}
    columns: dict[str, int] = {}
    for header, fld in mapping.items():
        if fld in ("", None, "ignore"):
            continue
        fld = F.FIELD_SYNONYMS.get(fld, fld)
        if fld not in allowed:
            raise InputError(
                f"「{fld}」は{F.KIND_LABELS[kind]}の項目ではありません。使える項目: {', '.join(allowed)}",
                f"field {fld!r} not allowed for {kind}",
            )
        pos = exact_pos.get(header, norm_pos.get(F.normalize_header(header)))
        if pos is None:
            raise InputError(f"「{name}」に列「{header}」がありません。列名を確認してください。", "mapped column missing")
        if fld in columns:
            raise InputError(f"項目「{allowed[fld]}」に複数の列が割り当てられています。", f"duplicate field {fld}")
        columns[fld] = pos
    _check_required(name, kind, columns, lambda fld: allowed[fld])
    return _Plan(raw, name, "generic", f"汎用CSV（{F.KIND_LABELS[kind]}）", kind, "generic", columns)


def _kind_from_fields(fields: set[str]) -> str:
    """What a generic file holds, from the fields its mapping uses (when the caller did not say)."""
    if "line_user_id" in fields and fields & {"order_id", "phone", "email"} and "ordered_at" not in fields:
        return "line_links"
    if "order_id" in fields:
        return "orders"
    if fields & {"opens", "clicks", "unique_clicks"}:
        return "message_stats"
    if fields & {"unit_cost", "margin_rate", "jan"} or ("category" in fields and "email" not in fields):
        return "products"
    return "contacts"


def _check_required(name: str, kind: str, columns: dict[str, int], label: Callable[[str], str]) -> None:
    for alternatives in F.REQUIRED[kind]:
        if not any(a in columns for a in alternatives):
            wanted = "」または「".join(label(a) for a in alternatives)
            raise InputError(
                f"「{name}」に必須の列「{wanted}」が見つかりません。エクスポートの設定で、この列を含めてください。",
                f"missing required column for {alternatives}",
            )


# --------------------------------------------------------------------------
# staging
# --------------------------------------------------------------------------


def _stage(cur: duckdb.DuckDBPyConnection, plan: _Plan, table: str) -> int:
    """Read the file into TEMP ``table``: one column per field the file has, nothing else.

    Fields the file lacks are not stored (a column of NULLs still costs memory
    for every row); :func:`_stage_view` adds them as constants.  An orders
    file is parsed on the way in (:func:`_orders_parse_select`): amounts, dates
    and the reason a row cannot be read, so the rows are read and parsed once.

    The fast path reads in parallel and expects every row to have the header's
    number of columns; if DuckDB refuses the file, a second, single-threaded
    pass pads short rows (some tools drop trailing empty columns).  A file
    neither pass can read raises :class:`InputError` naming the line.
    """
    ncols = max(len(plan.raw.headers), max(plan.columns.values(), default=0) + 1)
    names = [f"c{i}" for i in range(ncols)]
    fields = [f for f in _STAGE_FIELDS[plan.kind] if f in plan.columns]
    select = ", ".join(f"{quote_ident(names[plan.columns[f]])} AS {quote_ident(f)}" for f in fields)
    if plan.kind == "orders":
        head, tail = _orders_parse_select(plan)
    else:
        head, tail = "SELECT * FROM (", ")"
    target = quote_ident(table)
    last_error: Exception | None = None
    for options in (_CSV_FAST, _CSV_PADDED):
        try:
            with _lazy_fallbacks(cur):
                cur.execute(
                    "CREATE OR REPLACE TEMP TABLE " + target + " AS " + head + "SELECT " + select  # noqa: S608 - quote_ident() identifiers only
                    + " FROM read_csv($paths, header = false, skip = $skip, all_varchar = true, names = $names,"
                    " delim = ',', quote = '\"', escape = '\"', max_line_size = 10000000, " + options + ")" + tail,
                    {"paths": [str(p) for p in plan.raw.parts], "skip": plan.raw.skip, "names": names},
                )
            return int(cur.execute("SELECT count(*) FROM " + target).fetchone()[0])  # noqa: S608
        except duckdb.Error as exc:
            last_error = exc
    raise InputError(
        f"「{plan.display_name}」の形式が崩れているため取り込めませんでした（列の数が行によって違う、引用符が閉じていない等）。"
        f"{_short_duckdb_message(last_error)}を確認してください。",
        f"duckdb could not parse the CSV: {type(last_error).__name__}",
    )


@contextlib.contextmanager
def _lazy_fallbacks(cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Keep the parsers' slow branches lazy while a file is parsed.

    The date parser falls back to regular expressions only for values the
    plain cast cannot read; DuckDB's common-subexpression rule would compute
    the fallback's shared part (the digit folding) for every row instead,
    several times the cost of the whole read.  Only the plan changes, never a value.
    """
    cur.execute("SET disabled_optimizers = 'common_subexpressions'")
    try:
        yield
    finally:
        cur.execute("RESET disabled_optimizers")


def _field_type(fld: str) -> str:
    """The SQL type of a parsed order field (every other staged field is text)."""
    if fld in F.AMOUNT_FIELDS:
        return "DECIMAL(18, 2)"
    if fld in F.INT_FIELDS:
        return "BIGINT"
    return {"ordered_at": "TIMESTAMP", "birthday": "DATE"}.get(fld, "VARCHAR")


def _stage_view(cur: duckdb.DuckDBPyConnection, plan: _Plan, table: str) -> None:
    """The view the import statements read: the staged columns plus a typed NULL for every absent field.

    Orders: ``st_rows`` (``row_no`` = the file's row number, header = 1, parsed
    fields and ``reason``).  Other kinds: ``stage`` (raw text, ``_row`` in file
    order).  Constants cost nothing: DuckDB folds the expressions over them.
    """
    fields = _STAGE_FIELDS[plan.kind]
    absent = [f for f in fields if f not in plan.columns]
    if plan.kind == "orders":
        extra = "".join(f", NULL::{_field_type(f)} AS {quote_ident(f)}" for f in absent)
        cur.execute(
            "CREATE TEMP VIEW st_rows AS SELECT rowid + 2 AS row_no, *" + extra + " FROM " + quote_ident(table)  # noqa: S608 - quote_ident() identifiers, fixed types
        )
    else:
        extra = "".join(f", NULL::VARCHAR AS {quote_ident(f)}" for f in absent)
        cur.execute("CREATE TEMP VIEW stage AS SELECT rowid AS _row, *" + extra + " FROM " + quote_ident(table))  # noqa: S608


def _orders_parse_select(plan: _Plan) -> tuple[str, str]:
    """``(head, tail)`` around the raw read of an orders file that parse its text: typed fields and ``reason``.

    Only fields the file has.  The reason names every problem of the row
    (labels are the Japanese field names from formats.py, written as escaped
    SQL literals: our own constants).
    """
    present = [f for f in _ORDER_STAGE_FIELDS if f in plan.columns]
    typed = [f for f in present if f in F.AMOUNT_FIELDS + F.INT_FIELDS + ("ordered_at", "birthday")]
    # Trimmed in one layer, emptied in the next: ``NULLIF(trim(x), '')`` is ``CASE WHEN trim(x) = ''
    # THEN NULL ELSE trim(x) END``, which trims every value twice while common subexpressions are off
    # (see _lazy_fallbacks); that second trim was a third of the read on a narrow file.
    trimmed = [f"trim({quote_ident(f)}) AS {quote_ident(f)}" for f in present]
    cleaned = [f"NULLIF({quote_ident(f)}, '') AS {quote_ident(f + '_raw' if f in typed else f)}" for f in present]
    parsed = []
    for f in typed:
        raw = quote_ident(f + "_raw")
        if f in F.AMOUNT_FIELDS:
            expr = f"crm_amount({raw})"
        elif f in F.INT_FIELDS:
            expr = f"crm_int({raw})"
        elif f == "ordered_at":
            expr = f"crm_ts_jst({raw})"
        else:
            expr = f"CAST(crm_local_ts({raw}) AS DATE)"
        parsed.append(f"{expr} AS {quote_ident(f)}")
    checks = ["CASE WHEN order_id IS NULL THEN '注文番号が空です' END"]
    if "ordered_at" in typed:
        checks.append(
            "CASE WHEN ordered_at_raw IS NOT NULL AND ordered_at IS NULL "
            "THEN '注文日時「' || left(ordered_at_raw, 40) || '」を日時として読めません' END"
        )
    for f in typed:
        if f not in F.AMOUNT_FIELDS + F.INT_FIELDS:
            continue
        raw, val = quote_ident(f + "_raw"), quote_ident(f)
        kind_word = "数" if f in F.INT_FIELDS else "金額"
        checks.append(
            f"CASE WHEN {raw} IS NOT NULL AND {val} IS NULL "
            f"THEN {_text_literal(F.ORDER_FIELDS[f])} || '「' || left({raw}, 40) || '」を{kind_word}として読めません' END"
        )
    exclude = f" EXCLUDE ({', '.join(quote_ident(f + '_raw') for f in typed)})" if typed else ""
    head = (
        "SELECT *" + exclude + ", NULLIF(concat_ws('; ', " + ", ".join(checks) + "), '') AS reason FROM ("  # noqa: S608 - quote_ident() identifiers, our own labels
        "SELECT *" + "".join(", " + e for e in parsed) + " FROM ("
        "SELECT " + ", ".join(cleaned) + " FROM ("
        "SELECT " + ", ".join(trimmed) + " FROM ("
    )
    return head, "))))"


_CSV_FAST = "parallel = true, null_padding = false"
_CSV_PADDED = "parallel = false, null_padding = true"
_TEMP_VIEWS = ("new_orders", "o1", "st_ok", "st_rows", "stage")
_TEMP_TABLES = ("st", "st0", "rej", "bad_orders", "per_order", "new_lines", "diff", "status_codes", "pref_names")


def _drop_temp(cur: duckdb.DuckDBPyConnection, staged: int = 0) -> None:
    for view in _TEMP_VIEWS:
        cur.execute("DROP VIEW IF EXISTS temp." + quote_ident(view))
    for table in _TEMP_TABLES + tuple(f"stage_{i}" for i in range(staged)):
        cur.execute("DROP TABLE IF EXISTS temp." + quote_ident(table))


def _text_literal(text: str) -> str:
    """A constant of ours as a SQL string literal (for views, which take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _clean(fld: str) -> str:
    col = quote_ident(fld)
    return f"NULLIF(trim({col}), '')"


# --------------------------------------------------------------------------
# orders
# --------------------------------------------------------------------------


def _import_one(cur: duckdb.DuckDBPyConnection, plan: _Plan, key: str, report: ImportReport) -> FileReport:
    fr = FileReport(
        file_name=plan.display_name,
        format=plan.fmt_key,
        format_label=plan.fmt_label,
        kind=plan.kind,
        encoding=ENCODING_LABELS.get(plan.raw.encoding, plan.raw.encoding),
    )
    if plan.same is not None:
        return _unchanged_file(cur, plan, fr, report)
    previous = cur.execute(
        "SELECT import_id FROM imports WHERE sha256 = ? AND format = ? ORDER BY import_id DESC LIMIT 1",
        [plan.raw.sha256, plan.fmt_key],
    ).fetchone()
    fr.already_imported = previous is not None
    import_id = int(cur.execute("SELECT nextval('import_seq')").fetchone()[0])
    if plan.kind == "orders":
        _import_orders(cur, plan, key, import_id, fr, report)
        changed = fr.orders_added + fr.orders_updated > 0
    elif plan.kind == "contacts":
        changed = _import_contacts(cur, plan, import_id, fr)
    elif plan.kind == "line_links":
        changed = _import_line_links(cur, plan, import_id, fr)
    elif plan.kind == "message_stats":
        changed = _import_message_stats(cur, plan, import_id, fr)
    else:
        changed = _import_products(cur, plan, import_id, fr)
    fr.changed = changed
    if changed or not fr.already_imported:
        if fr.rows_rejected and plan.kind == "orders":
            cur.execute("INSERT INTO import_rejects SELECT ?, ?, row_no, order_id, reason FROM rej", [import_id, plan.display_name])
        cur.execute(
            "INSERT INTO imports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                import_id,
                plan.display_name,
                plan.raw.sha256,
                plan.fmt_key,
                plan.raw.encoding,
                fr.rows_read,
                fr.orders_added,
                fr.orders_updated,
                fr.orders_unchanged,
                fr.lines,
                fr.rows_rejected,
                key,
                clock.now(),
            ],
        )
        fr.import_id = import_id
    if plan.kind == "orders":
        _remember_file(cur, plan, key, fr, import_id if fr.import_id is not None else (previous[0] if previous else None))
    return fr


# --------------------------------------------------------------------------
# the same file again
# --------------------------------------------------------------------------

_READER_VERSION = 2
"""Part of every file's recipe: raise it when the importer reads a file differently (an identical file is then read again)."""
_LAST_FILE = LAST_ORDERS_FILE  # settings key prefix (crm_core.db, where migration 9 also reads it)


def _recipe(plan: _Plan, key: str) -> str:
    """How a file is read: format, kind, column positions, identity key, reader version."""
    spec = {"v": _READER_VERSION, "format": plan.fmt_key, "kind": plan.kind, "source": plan.source,
            "columns": sorted(plan.columns.items()), "key": key, "encoding": plan.raw.encoding}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _remember_file(cur: duckdb.DuckDBPyConnection, plan: _Plan, key: str, fr: FileReport, rejects_of: int | None) -> None:
    """Record the last orders file of a source with the state it left the store in (see :func:`_same_as_last_file`)."""
    record = {
        "sha256": plan.raw.sha256, "recipe": _recipe(plan, key), "state": orders_state(cur, plan.source),
        "rows_read": fr.rows_read, "orders": fr.orders_added + fr.orders_updated + fr.orders_unchanged,
        "lines": fr.lines, "rows_rejected": fr.rows_rejected, "rejects_of": rejects_of,
    }
    cur.execute("DELETE FROM settings WHERE key = ?", [_LAST_FILE + plan.source])
    cur.execute("INSERT INTO settings VALUES (?, ?)", [_LAST_FILE + plan.source, json.dumps(record)])


def _same_as_last_file(cur: duckdb.DuckDBPyConnection, plan: _Plan, key: str) -> dict | None:
    """The record of this source's last orders file when importing ``plan`` again cannot change anything.

    That is: byte for byte the same file (SHA-256), read the same way (format,
    column positions, identity key, reader version), and the store still holds
    exactly what that import left of the source (count, import ids and content
    hashes of its orders).  Then the file is not read again: it would add and
    update nothing.
    """
    if plan.kind != "orders":
        return None
    row = cur.execute("SELECT value FROM settings WHERE key = ?", [_LAST_FILE + plan.source]).fetchone()
    if row is None:
        return None
    last = json.loads(row[0])
    if last.get("sha256") != plan.raw.sha256 or last.get("recipe") != _recipe(plan, key):
        return None
    return last if last.get("state") == orders_state(cur, plan.source) else None


def _unchanged_file(cur: duckdb.DuckDBPyConnection, plan: _Plan, fr: FileReport, report: ImportReport) -> FileReport:
    """The report of a file that is the source's last file again: nothing read, nothing written; its rejects as recorded."""
    last = plan.same or {}
    fr.already_imported = True
    fr.rows_read, fr.orders_unchanged = int(last["rows_read"]), int(last["orders"])
    fr.lines, fr.rows_rejected = int(last["lines"]), int(last["rows_rejected"])
    if fr.rows_rejected and last.get("rejects_of") is not None:
        rows = cur.execute(
            "SELECT row_no, order_id, reason FROM import_rejects WHERE import_id = ? ORDER BY row_no LIMIT 10000",
            [int(last["rejects_of"])],
        ).fetchall()
        report.rejects.extend({"file": plan.display_name, "row": r[0], "order_id": r[1], "reason": r[2]} for r in rows)
    return fr


_ORDER_STAGE_FIELDS = ("order_id",) + F.ORDER_LEVEL + F.LINE_LEVEL

_STAGE_FIELDS = {
    "orders": _ORDER_STAGE_FIELDS,
    "contacts": tuple(F.CONTACT_FIELDS),
    "products": tuple(F.PRODUCT_FIELDS),
    "line_links": tuple(F.LINE_LINK_FIELDS),
    "message_stats": tuple(F.MESSAGE_STATS_FIELDS),
}

_NEW_LINES_SELECT = """
    CREATE TEMP TABLE new_lines AS
    SELECT order_id,
           CAST(row_number() OVER (PARTITION BY order_id ORDER BY row_no) AS INTEGER) AS line_no,
           coalesce(product_id, product_id_alt, sku, product_name) AS product_id,
           sku, product_name, category, unit_price,
           CAST(coalesce(quantity, 1) AS INTEGER) AS quantity,
           coalesce(line_amount, unit_price * coalesce(quantity, 1)) AS line_amount
    FROM (SELECT * FROM st_ok WHERE coalesce(product_id, product_id_alt, sku, product_name) IS NOT NULL
"""
_NEW_LINES = _NEW_LINES_SELECT + ")"
_NEW_LINES_DEDUPED = (
    _NEW_LINES_SELECT + " QUALIFY row_number() OVER (PARTITION BY order_id, line_key ORDER BY row_no) = 1)"
)


def _import_orders(
    cur: duckdb.DuckDBPyConnection, plan: _Plan, key: str, import_id: int, fr: FileReport, report: ImportReport
) -> None:
    """Validate, compare and upsert the staged rows of an orders file (view ``st_rows``, see :func:`_stage_view`).

    Set-based throughout, and nothing wide is materialised: the per-order
    facts (first row, bad rows) and the keys compared with the store are
    narrow tables; the order rows themselves are computed by a view when
    they are inserted.
    """
    fr.rows_read = plan.rows
    if fr.rows_read == 0:
        raise InputError(f"「{plan.display_name}」にはデータ行がありません（見出し行だけです）。", "no data rows")

    cur.execute("CREATE TEMP TABLE status_codes (code VARCHAR, label VARCHAR)")
    cur.executemany("INSERT INTO status_codes VALUES (?, ?)", list(F.STATUS_LABELS.items()))
    cur.execute("CREATE TEMP TABLE pref_names (code VARCHAR, label VARCHAR)")
    cur.executemany(
        "INSERT INTO pref_names VALUES (?, ?)",
        list(F.PREFECTURES_EN.items()) + list(F.PREFECTURE_CODES.items()),
    )
    # A clean order log (one row per order, every row readable and dated, no product
    # lines) needs no per-order pass: nothing is rejected and every row is its order's
    # first.  A file with product fields can have several rows per order: straight to the pass.
    clean = not _has_lines(plan) and _one_clean_row_per_order(cur, fr.rows_read)
    if clean:
        cur.execute("CREATE TEMP TABLE bad_orders (order_id VARCHAR, has_bad_row BOOLEAN, no_date BOOLEAN)")
        cur.execute("CREATE TEMP TABLE rej (row_no BIGINT, order_id VARCHAR, reason VARCHAR)")
        fr.rows_rejected = 0
        cur.execute("CREATE TEMP VIEW st_ok AS SELECT * FROM st_rows")
        cur.execute("CREATE TEMP VIEW o1 AS SELECT * FROM st_ok")
    else:
        _order_facts(cur, plan, fr, report)
    # Rakuten's line grain is (order, 商品明細ID): a line repeated in the file is kept once.
    dedupe = "line_key" in plan.columns
    cur.execute(_NEW_LINES_DEDUPED if dedupe else _NEW_LINES)
    cur.execute(_skip_absent_joins(plan, """
        CREATE TEMP VIEW new_orders AS
        WITH l AS (
            SELECT order_id, sum(line_amount) AS line_sum,
                   bit_xor(hash(line_no, product_id, sku, product_name, category, unit_price, quantity, line_amount)) AS line_sig
            FROM new_lines GROUP BY order_id
        ), o AS (
            SELECT o1.*,
                   coalesce(sc.label, o1.status) AS status_label,
                   coalesce(NULLIF(concat_ws(' ', o1.last_name, o1.first_name), ''), o1.buyer_name) AS name_full,
                   NULLIF(concat_ws(' ', o1.last_name_kana, o1.first_name_kana), '') AS kana_full,
                   coalesce(crm_digits(o1.phone), crm_digits(concat(o1.phone1, o1.phone2, o1.phone3))) AS phone_digits,
                   coalesce(crm_digits(o1.postcode), crm_digits(concat(o1.postcode1, o1.postcode2))) AS postcode_digits,
                   l.line_sum, l.line_sig
            FROM o1
            LEFT JOIN l USING (order_id)
            LEFT JOIN status_codes sc ON sc.code = lower(o1.status)
        )
        SELECT
            order_id,
            $source AS source,
            crm_customer_id($key, $source, customer_key, email, phone_digits, name_full, postcode_digits, order_id) AS customer_id,
            ordered_at,
            status_label AS status,
            coalesce(crm_bool(cancelled_flag), FALSE)
              OR coalesce(status_label LIKE '%キャンセル%', FALSE)
              OR coalesce(lower(status) LIKE '%cancel%', FALSE)
              OR coalesce(lower(financial_status) IN ('refunded', 'voided'), FALSE)
              OR cancelled_at IS NOT NULL AS cancelled,
            coalesce(total_amount, item_amount + coalesce(shipping_fee, 0), line_sum + coalesce(shipping_fee, 0)) AS total_amount,
            coalesce(item_amount, line_sum) AS item_amount,
            shipping_fee, discount_amount, points_used, refunded_amount, coupon_code, payment_method,
            coalesce(pn.label, pc.label, o.prefecture) AS prefecture,
            subscription_id, CAST(subscription_seq AS INTEGER) AS subscription_seq,
            name_full AS buyer_name, kana_full AS buyer_name_kana,
            email, phone_digits AS phone, postcode_digits AS postcode,
            CASE WHEN lower(gender) IN ('男', '男性', 'male', 'm', '1') THEN '男性'
                 WHEN lower(gender) IN ('女', '女性', 'female', 'f', '2') THEN '女性'
                 WHEN gender IS NULL THEN NULL ELSE 'その他' END AS gender,
            birthday,
            crm_bool(email_opt_in) AS email_opt_in,
            customer_key,
            -- change detection only (not security): a 64-bit hash of every stored field and line, stored as
            -- the number it is (its decimal text cost a quarter of the insert: migration 9)
            hash(ordered_at, status, cancelled_flag, cancelled_at, financial_status, total_amount,
                 item_amount, shipping_fee, discount_amount, points_used, refunded_amount, coupon_code,
                 payment_method, o.prefecture, subscription_id, subscription_seq, customer_key, name_full,
                 kana_full, email, phone_digits, postcode_digits, gender, birthday, email_opt_in, line_sig) AS content_hash,
            $import_id AS import_id
        FROM o
        LEFT JOIN pref_names pn ON pn.code = regexp_replace(lower(o.prefecture), '[- ](ken|to|fu|prefecture)$', '')
        LEFT JOIN pref_names pc ON pc.code = lower(o.prefecture)
        """.replace("$source", _text_literal(plan.source)).replace("$key", _text_literal(key)).replace(
            "$import_id", str(int(import_id))
        ))  # a view takes no bound parameters: our own constants (format source, checked identity key, an integer)
    )
    # The keys compared with the store: narrow, materialised once.
    had_orders = cur.execute("SELECT count(*) FROM (SELECT 1 FROM orders WHERE source = ? LIMIT 1)", [plan.source]).fetchone()[0]
    if had_orders:
        cur.execute(
            """
            CREATE TEMP TABLE diff AS
            SELECT n.order_id, n.content_hash, e.content_hash AS old_hash, e.customer_id AS old_customer_id
            FROM (SELECT order_id, content_hash FROM new_orders) n
            LEFT JOIN (SELECT order_id, content_hash, customer_id FROM orders WHERE source = ?) e USING (order_id)
            """,
            [plan.source],
        )
        added, updated, unchanged = cur.execute(
            """
            SELECT count(*) FILTER (WHERE old_hash IS NULL),
                   count(*) FILTER (WHERE old_hash IS NOT NULL AND old_hash <> content_hash),
                   count(*) FILTER (WHERE old_hash = content_hash)
            FROM diff
            """
        ).fetchone()
    else:  # nothing of this source in the store: every order is new
        added = fr.rows_read if clean else cur.execute("SELECT count(*) FROM per_order WHERE NOT (has_bad_row OR no_date)").fetchone()[0]
        updated = unchanged = 0
    fr.orders_added, fr.orders_updated, fr.orders_unchanged = int(added), int(updated), int(unchanged)
    if updated and plan.track_touched:
        # the customers the changed orders belonged to are touched too (the identity may have changed)
        cur.execute(
            "INSERT INTO touched_customers SELECT DISTINCT old_customer_id FROM diff "
            "WHERE old_hash <> content_hash AND old_customer_id IS NOT NULL"
        )
        for table in ("order_lines", "orders"):
            cur.execute(
                "DELETE FROM "  # noqa: S608 - identifiers are quote_ident() over fixed field lists; values are bound
                + quote_ident(table)
                + " WHERE source = ? AND order_id IN (SELECT order_id FROM diff WHERE old_hash <> content_hash)",
                [plan.source],
            )
    if added or updated:
        changed = "" if not had_orders or not (unchanged or updated) else (
            " WHERE order_id IN (SELECT order_id FROM diff WHERE old_hash IS NULL OR old_hash <> content_hash)"
        )
        with _unordered_inserts(cur):
            cur.execute("INSERT INTO orders BY NAME SELECT * FROM new_orders" + changed)  # noqa: S608 - fixed SQL
            cur.execute("INSERT INTO order_lines BY NAME SELECT ? AS source, * FROM new_lines" + changed, [plan.source])  # noqa: S608
        if plan.track_touched:
            cur.execute("INSERT INTO touched_customers SELECT DISTINCT customer_id FROM orders WHERE import_id = ?", [import_id])
    fr.lines = int(cur.execute("SELECT count(*) FROM new_lines").fetchone()[0])


def _skip_absent_joins(plan: _Plan, sql: str) -> str:
    """``new_orders`` without the lookups of fields the file does not have (each probes every row; a narrow log has none).

    Only the plan changes, never a value: without product fields there are no
    lines (``line_sum``/``line_sig`` NULL of the same types, so content hashes are
    the same), without a status or prefecture the lookups find nothing.
    """
    cuts = []
    if not _has_lines(plan):
        cuts += [("LEFT JOIN l USING (order_id)", ""),
                 ("l.line_sum, l.line_sig", "NULL::DECIMAL(38, 2) AS line_sum, NULL::UBIGINT AS line_sig")]
    if "status" not in plan.columns:
        cuts += [("LEFT JOIN status_codes sc ON sc.code = lower(o1.status)", ""),
                 ("coalesce(sc.label, o1.status) AS status_label", "o1.status AS status_label")]
    if "prefecture" not in plan.columns:
        cuts += [("LEFT JOIN pref_names pn ON pn.code = regexp_replace(lower(o.prefecture), '[- ](ken|to|fu|prefecture)$', '')", ""),
                 ("LEFT JOIN pref_names pc ON pc.code = lower(o.prefecture)", ""),
                 ("coalesce(pn.label, pc.label, o.prefecture) AS prefecture", "o.prefecture AS prefecture")]
    for old, new in cuts:
        if old not in sql:
            raise RuntimeError(f"new_orders changed: {old!r} not found")
        sql = sql.replace(old, new)
    return sql


def _has_lines(plan: _Plan) -> bool:
    """Whether the file can have product lines (a product field is mapped): then orders may span rows."""
    return any(f in plan.columns for f in ("product_id", "product_id_alt", "sku", "product_name"))


def _one_clean_row_per_order(cur: duckdb.DuckDBPyConnection, rows: int) -> bool:
    """Every staged row readable, dated, with an order id, and no order id twice (two cheap scans, no table)."""
    bad = cur.execute(
        "SELECT count(*) FILTER (WHERE order_id IS NULL OR reason IS NOT NULL OR ordered_at IS NULL) FROM st_rows"
    ).fetchone()[0]
    return not bad and cur.execute("SELECT count(DISTINCT order_id) FROM st_rows").fetchone()[0] == rows


def _order_facts(cur: duckdb.DuckDBPyConnection, plan: _Plan, fr: FileReport, report: ImportReport) -> None:
    """The general path: per-order facts, rejected rows (``rej``) and the views ``st_ok`` and ``o1`` of the rows kept."""
    # One pass over the rows for every per-order fact: its first row, whether any
    # row is bad, whether it has an order date at all.
    cur.execute(
        """
        CREATE TEMP TABLE per_order AS
        SELECT order_id, min(row_no) AS first_row, count(*) AS n_rows,
               bool_or(reason IS NOT NULL) AS has_bad_row, max(ordered_at) IS NULL AS no_date
        FROM st_rows WHERE order_id IS NOT NULL
        GROUP BY order_id
        """
    )
    # Orders with any bad row, or with no order date at all, are rejected whole.
    cur.execute("CREATE TEMP TABLE bad_orders AS SELECT order_id, has_bad_row, no_date FROM per_order WHERE has_bad_row OR no_date")
    # Rejected rows are kept aside; they are recorded with the import record
    # (a file imported again adds neither, see _import_one).
    cur.execute(
        """
        CREATE TEMP TABLE rej AS
        SELECT st.row_no, st.order_id,
               coalesce(st.reason,
                        CASE WHEN b.no_date THEN '注文日時がありません'
                             ELSE '同じ注文の別の行に不備があるため、この注文は取り込んでいません' END) AS reason
        FROM st_rows st LEFT JOIN bad_orders b USING (order_id)
        WHERE st.order_id IS NULL OR b.order_id IS NOT NULL
        """
    )
    fr.rows_rejected = int(cur.execute("SELECT count(*) FROM rej").fetchone()[0])
    if fr.rows_rejected:
        rows = cur.execute("SELECT row_no, order_id, reason FROM rej ORDER BY row_no LIMIT 10000").fetchall()
        report.rejects.extend({"file": plan.display_name, "row": r[0], "order_id": r[1], "reason": r[2]} for r in rows)
    if fr.rows_rejected == fr.rows_read:
        raise InputError(
            f"「{plan.display_name}」のすべての行（{fr.rows_read:,}行）で日付や金額を読めませんでした。"
            f"最初の問題: {report.rejects[0]['reason'] if report.rejects else '不明'}。"
            "正しい注文データのファイルか確認してください。",
            "every row rejected",
        )
    cur.execute(
        "CREATE TEMP VIEW st_ok AS SELECT r.* FROM st_rows r ANTI JOIN bad_orders b USING (order_id) WHERE r.order_id IS NOT NULL"
    )
    # Order level: the values of the order's first row.  Rakuten repeats them on
    # every row and Shopify fills only the first one, so the first row is right
    # for both.  When every order has one row (a narrow order log), every row is first.
    one_row_each = not cur.execute("SELECT count(*) FROM per_order WHERE n_rows > 1").fetchone()[0]
    if one_row_each:
        cur.execute("CREATE TEMP VIEW o1 AS SELECT * FROM st_ok")
    else:
        cur.execute("CREATE TEMP VIEW o1 AS SELECT s.* FROM st_ok s SEMI JOIN per_order f ON s.row_no = f.first_row")


@contextlib.contextmanager
def _unordered_inserts(cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Let DuckDB write rows in any order (faster, less memory); rows have no order in a table anyway."""
    cur.execute("SET preserve_insertion_order = false")
    try:
        yield
    finally:
        cur.execute("RESET preserve_insertion_order")


# --------------------------------------------------------------------------
# contacts and products
# --------------------------------------------------------------------------



def _import_contacts(cur: duckdb.DuckDBPyConnection, plan: _Plan, import_id: int, fr: FileReport) -> bool:
    fr.rows_read = plan.rows
    cur.execute(
        f"""
        CREATE TEMP TABLE st AS
        SELECT ? AS source,
               lower({_clean('email')}) AS email,
               crm_digits({_clean('phone')}) AS phone,
               coalesce(NULLIF(concat_ws(' ', {_clean('last_name')}, {_clean('first_name')}), ''), {_clean('buyer_name')}) AS name,
               crm_bool({_clean('email_opt_in')}) AS email_opt_in,
               crm_bool({_clean('sms_opt_in')}) AS sms_opt_in,
               regexp_replace({_clean('line_user_id')}, '^''', '') AS line_user_id,
               regexp_replace({_clean('customer_key')}, '^''', '') AS customer_key,
               CAST(crm_local_ts({_clean('birthday')}) AS DATE) AS birthday,
               CASE WHEN lower({_clean('gender')}) IN ('男', '男性', 'male', 'm') THEN '男性'
                    WHEN lower({_clean('gender')}) IN ('女', '女性', 'female', 'f') THEN '女性'
                    WHEN {_clean('gender')} IS NULL THEN NULL ELSE 'その他' END AS gender,
               {_clean('prefecture')} AS prefecture,
               {_clean('tags')} AS tags,
               ? AS import_id
        FROM stage
        WHERE {_clean('email')} IS NOT NULL OR crm_digits({_clean('phone')}) IS NOT NULL
        """,  # noqa: S608 - identifiers from quote_ident over fixed field names
        [plan.source, import_id],
    )
    fr.contacts = int(cur.execute("SELECT count(*) FROM st").fetchone()[0])
    fr.rows_rejected = fr.rows_read - fr.contacts
    if fr.contacts == 0:
        fr.note = (
            f"「{plan.display_name}」: {fr.rows_read:,}行すべてにメールアドレスも電話番号もないため、"
            "連絡先として使える行がありません（列の対応を確認してください）。"
        )
        return False
    same = cur.execute(
        """
        SELECT count(*) FROM st s
        WHERE EXISTS (SELECT 1 FROM contacts c WHERE c.source = s.source
                      AND c.email IS NOT DISTINCT FROM s.email AND c.phone IS NOT DISTINCT FROM s.phone
                      AND c.name IS NOT DISTINCT FROM s.name AND c.email_opt_in IS NOT DISTINCT FROM s.email_opt_in
                      AND c.sms_opt_in IS NOT DISTINCT FROM s.sms_opt_in AND c.line_user_id IS NOT DISTINCT FROM s.line_user_id
                      AND c.birthday IS NOT DISTINCT FROM s.birthday AND c.gender IS NOT DISTINCT FROM s.gender
                      AND c.prefecture IS NOT DISTINCT FROM s.prefecture AND c.tags IS NOT DISTINCT FROM s.tags
                      AND c.customer_key IS NOT DISTINCT FROM s.customer_key)
        """
    ).fetchone()[0]
    if same == fr.contacts:
        return False
    cur.execute(
        """
        DELETE FROM contacts c
        WHERE c.source = ? AND (
            (c.email IS NOT NULL AND c.email IN (SELECT email FROM st WHERE email IS NOT NULL))
            OR (c.email IS NULL AND c.phone IN (SELECT phone FROM st WHERE email IS NULL AND phone IS NOT NULL)))
        """,
        [plan.source],
    )
    cur.execute("INSERT INTO contacts BY NAME SELECT * FROM st")
    return True


def _import_products(cur: duckdb.DuckDBPyConnection, plan: _Plan, import_id: int, fr: FileReport) -> bool:
    """Upsert the product master.  A product is keyed by its id, else SKU, else JAN.

    Cost and margin rate are only overwritten by a file that has them: an RMS
    item export (no cost column) keeps the costs entered in the console.
    """
    fr.rows_read = plan.rows
    key = f"coalesce({_clean('product_id')}, {_clean('sku')}, {_clean('jan')})"
    rate = f"crm_amount(replace({_clean('margin_rate')}, '%', ''))"
    cur.execute(
        f"""
        CREATE TEMP TABLE st AS
        SELECT {key} AS product_id,
               arg_min({_clean('product_name')}, _row) AS product_name,
               arg_min({_clean('category')}, _row) AS category,
               arg_min({_clean('sku')}, _row) AS sku,
               arg_min(ltrim({_clean('jan')}, ''''), _row) AS jan,
               arg_min(crm_amount({_clean('unit_cost')}), _row) AS unit_cost,
               arg_min(CAST(CASE WHEN {rate} > 1 THEN {rate} / 100 ELSE {rate} END AS DOUBLE), _row) AS margin_rate,
               CAST(? AS VARCHAR) AS cost_source,
               ? AS import_id
        FROM stage WHERE {key} IS NOT NULL
        GROUP BY 1
        """,  # noqa: S608 - identifiers from quote_ident over fixed field names
        [plan.display_name if "unit_cost" in plan.columns or "margin_rate" in plan.columns else None, import_id],
    )
    fr.products = int(cur.execute("SELECT count(*) FROM st").fetchone()[0])
    fr.rows_rejected = fr.rows_read - int(cur.execute(f"SELECT count(*) FROM stage WHERE {key} IS NOT NULL").fetchone()[0])  # noqa: S608
    if fr.products == 0:
        fr.note = f"「{plan.display_name}」: {fr.rows_read:,}行すべてで商品管理番号・SKU・JANコードが空のため、商品として使える行がありません。"
        return False
    has_cost = "unit_cost" in plan.columns or "margin_rate" in plan.columns
    same = cur.execute(
        """
        SELECT count(*) FROM st s JOIN products p USING (product_id)
        WHERE p.product_name IS NOT DISTINCT FROM s.product_name AND p.category IS NOT DISTINCT FROM s.category
          AND p.sku IS NOT DISTINCT FROM s.sku AND p.jan IS NOT DISTINCT FROM s.jan
          AND (NOT ? OR (p.unit_cost IS NOT DISTINCT FROM s.unit_cost AND p.margin_rate IS NOT DISTINCT FROM s.margin_rate))
        """,
        [has_cost],
    ).fetchone()[0]
    if same == fr.products:
        return False
    if not has_cost:
        cur.execute(
            "UPDATE st SET unit_cost = p.unit_cost, margin_rate = p.margin_rate, cost_source = p.cost_source "
            "FROM products p WHERE p.product_id = st.product_id"
        )
    else:
        cur.execute("UPDATE st SET cost_source = NULL WHERE unit_cost IS NULL AND margin_rate IS NULL")
    cur.execute("DELETE FROM products WHERE product_id IN (SELECT product_id FROM st)")
    cur.execute("INSERT INTO products BY NAME SELECT * FROM st")
    return True


def _import_line_links(cur: duckdb.DuckDBPyConnection, plan: _Plan, import_id: int, fr: FileReport) -> bool:
    """Store rows "order number / phone / e-mail -> LINE user id"; customers pick them up in rebuild_customers."""
    fr.rows_read = plan.rows
    cur.execute(
        f"""
        CREATE TEMP TABLE st AS
        SELECT DISTINCT {_clean('order_id')} AS order_id,
               crm_digits({_clean('phone')}) AS phone,
               lower({_clean('email')}) AS email,
               ltrim({_clean('line_user_id')}, '''') AS line_user_id,
               CAST(? AS INTEGER) AS import_id
        FROM stage
        WHERE {_clean('line_user_id')} IS NOT NULL
          AND coalesce({_clean('order_id')}, crm_digits({_clean('phone')}), {_clean('email')}) IS NOT NULL
        """,  # noqa: S608 - identifiers from quote_ident over fixed field names
        [import_id],
    )
    fr.contacts = int(cur.execute("SELECT count(*) FROM st").fetchone()[0])
    fr.rows_rejected = fr.rows_read - fr.contacts
    new = cur.execute(
        """
        SELECT count(*) FROM st s WHERE NOT EXISTS (
            SELECT 1 FROM line_links l WHERE l.line_user_id = s.line_user_id
              AND l.order_id IS NOT DISTINCT FROM s.order_id AND l.phone IS NOT DISTINCT FROM s.phone
              AND l.email IS NOT DISTINCT FROM s.email)
        """
    ).fetchone()[0]
    if not new:
        return False
    cur.execute(
        """
        INSERT INTO line_links BY NAME SELECT * FROM st s WHERE NOT EXISTS (
            SELECT 1 FROM line_links l WHERE l.line_user_id = s.line_user_id
              AND l.order_id IS NOT DISTINCT FROM s.order_id AND l.phone IS NOT DISTINCT FROM s.phone
              AND l.email IS NOT DISTINCT FROM s.email)
        """
    )
    return True


def _import_message_stats(cur: duckdb.DuckDBPyConnection, plan: _Plan, import_id: int, fr: FileReport) -> bool:
    """Aggregate message reports (per message, not per customer).

    A count the source withheld is stored as NULL and named in ``withheld``,
    never as 0: for LINE (column 配信元 says LINE) an empty cell, for any
    source an explicit marker (``-``, 非公開, ``<20``).  Otherwise an empty
    cell is simply unknown.  A report with the same source, campaign, message
    name and date replaces the earlier one.
    """
    fr.rows_read = plan.rows
    counts = [f for f in F.STATS_COUNT_FIELDS if f in plan.columns]
    channel = _clean("channel")
    raw = ", ".join(f"{_clean(f)} AS {quote_ident('raw_' + f)}" for f in F.STATS_COUNT_FIELDS)
    cur.execute(
        f"""
        CREATE TEMP TABLE st0 AS
        SELECT CAST(? AS BIGINT) * 100000 + row_number() OVER () AS stats_id,
               try_cast({_clean('campaign_id')} AS INTEGER) AS campaign_id,
               CASE WHEN lower({channel}) LIKE '%line%' THEN 'line'
                    WHEN regexp_replace(lower({channel}), '[^a-z]', '', 'g') = 'rmail' OR {channel} LIKE '%メルマガ%' THEN 'rmail'
                    ELSE 'report' END AS source,
               {_clean('message_name')} AS message_name,
               CAST(crm_local_ts({_clean('sent_on')}) AS DATE) AS sent_on,
               {raw}
        FROM stage
        WHERE coalesce({_clean('message_name')}, {_clean('sent_on')}, {_clean('campaign_id')}) IS NOT NULL
        """,  # noqa: S608 - identifiers from quote_ident over fixed field names
        [import_id],
    )
    markers = "('-', '－', '―', '非公開', '<20', '20未満')"
    withheld = [
        f"CASE WHEN ({quote_ident('raw_' + f)} IS NULL AND source = 'line') OR {quote_ident('raw_' + f)} IN {markers} "
        f"THEN {_text_literal(f)} END"
        for f in counts
    ]
    values = ", ".join(f"crm_int({quote_ident('raw_' + f)}) AS {quote_ident(f)}" for f in F.STATS_COUNT_FIELDS)
    cur.execute(
        f"""
        CREATE TEMP TABLE st AS
        SELECT stats_id, campaign_id, source, message_name, sent_on, {values},
               NULLIF(concat_ws(',', {', '.join(withheld) or "NULL"}), '') AS withheld,
               CAST(? AS INTEGER) AS import_id, CAST(? AS TIMESTAMP) AS recorded_at
        FROM st0
        """,  # noqa: S608 - identifiers from quote_ident over fixed field names; labels are our constants
        [import_id, clock.now()],
    )
    cur.execute("DROP TABLE st0")
    fr.contacts = int(cur.execute("SELECT count(*) FROM st").fetchone()[0])
    fr.rows_rejected = fr.rows_read - fr.contacts
    cur.execute(
        """
        DELETE FROM message_stats m WHERE EXISTS (
            SELECT 1 FROM st s WHERE s.message_name IS NOT DISTINCT FROM m.message_name
              AND s.sent_on IS NOT DISTINCT FROM m.sent_on AND s.source = m.source
              AND s.campaign_id IS NOT DISTINCT FROM m.campaign_id)
        """
    )
    cur.execute("INSERT INTO message_stats BY NAME SELECT * FROM st")
    return True


def rejects_table(store: Store, import_id: int | None = None) -> list[dict]:
    """Rejected rows of one import (or all), for download."""
    rows = store.fetchall(
        "SELECT import_id, file_name, row_no, order_id, reason FROM import_rejects "
        "WHERE ? IS NULL OR import_id = ? ORDER BY import_id, row_no",
        [import_id, import_id],
    )
    return [dict(zip(("import_id", "file_name", "row_no", "order_id", "reason"), r, strict=True)) for r in rows]


def import_history(store: Store, limit: int = 200) -> pd.DataFrame:
    """The latest imports, newest first: ``import_id, imported_at, file_name, format, encoding, rows_read,
    orders_added, orders_updated, orders_unchanged, rows_rejected``."""
    return store.df(
        "SELECT import_id, imported_at, file_name, format, encoding, rows_read, orders_added, orders_updated, "
        "orders_unchanged, rows_rejected FROM imports ORDER BY import_id DESC LIMIT ?",
        [int(limit)],
    )
