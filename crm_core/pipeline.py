"""What is rebuilt after what: the one place that orders the derived tables.

The importer only imports; its callers (the command line, the import page,
the sample loader) call :func:`import_files` here, which imports and then
runs :func:`after_import`.  Pages and commands that change what the model is
built from (identity key, RFM or rank settings, sale dates) call
:func:`after_import` too, so recommendations and saved-segment sizes never go
stale.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from crm_core import db
from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.ingest import importer

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


def after_import(store: Store, progress: Progress | None = None) -> list[str]:
    """Rebuild the customer model, recommendations and saved-segment sizes; return Japanese warnings.

    ``progress(fraction, japanese_message)``, when given, hears the start of
    each step (fractions 0 to 1 of this work); on a shop of millions of
    customers the steps take tens of seconds.  A model that cannot be built
    becomes a warning (the import itself succeeded).
    """
    return _rebuild(store, progress, strict=False)


def after_settings_change(store: Store, progress: Progress | None = None) -> list[str]:
    """The same rebuild after the marketer changed what the model is built from.

    Called by the pages that change RFM or rank settings or sale dates, so
    recommendations and saved-segment sizes follow the model.  Here a model
    that cannot be built raises :class:`InputError` (the page shows it).
    """
    return _rebuild(store, progress, strict=True)


def _rebuild(store: Store, progress: Progress | None, strict: bool, touched: str | None = None) -> list[str]:
    warnings: list[str] = []
    if store.is_empty():
        return warnings
    from crm_core import model

    def say(fraction: float, text: str) -> None:
        if progress:
            progress(fraction, text)

    say(0.0, "顧客分析（RFM・ランク・予測）を計算しています…")
    try:
        # new settings refit at once; only the refresh after an import names the touched customers
        report = model.rebuild(store, reuse_fit=not strict, touched=touched)
        warnings.extend(getattr(report, "warnings", []) or [])
    except InputError as exc:
        if strict:
            raise
        warnings.append(exc.message)
    from crm_core.analytics import basket
    from crm_core.audience import library as segment_library

    say(0.3, "お客様ごとのおすすめ商品を選んでいます…")
    basket.build_recommendations(store)
    say(0.95, "保存したセグメントの人数を数えています…")
    segment_library.measure_all(store)  # size history of saved segments
    from crm_core.analytics import summaries

    # the pages' shop-wide figures and per-customer gross profit, so no first render scans every order line
    summaries.write(store, data_version(store), touched=touched)
    return warnings


REFRESH_DUE = db.REFRESH_DUE


def refresh(store: Store, progress: Progress | None = None) -> list[str]:
    """:func:`after_import`, then clear the 'refresh due' mark and the touched customers; return its Japanese warnings.

    The imports record the customers they touched in ``refresh_touched``
    (:func:`crm_core.ingest.identity.rebuild_customers`): the customer model
    aggregates only their orders and reuses everyone else's stored aggregates
    (``model.rebuild(touched=...)``; a NULL row, i.e. everyone, or an empty
    list with the refresh due -- a migration, an interrupted refresh of
    unknown scope -- aggregates everyone).  The shop-wide parts (scores by
    quintile, the as-of day with recency and predictions, the association
    rules, segment sizes) are recomputed for everyone; the list is emptied
    once done.
    """
    touched = "refresh_touched" if store.scalar("SELECT count(*) FROM refresh_touched") else None
    warnings = _rebuild(store, progress, strict=False, touched=touched)
    with store.transaction() as cur:
        cur.execute("DELETE FROM settings WHERE key = ?", [REFRESH_DUE])
        cur.execute("DELETE FROM refresh_touched")
    return warnings


def refresh_due(store: Store) -> bool:
    """True when an import (or a migration) committed but its refresh has not finished.

    The importer writes the mark in the import's own transaction
    (:func:`crm_core.db.mark_refresh_due`); :func:`refresh` clears it.  A
    process killed in between leaves it, and :func:`finish_pending` (run by
    every command and at the console's start) does the refresh, so an import
    is never left without its customer model.
    """
    return bool(store.get_setting(REFRESH_DUE, False))


def finish_pending(store: Store, progress: Progress | None = None) -> list[str] | None:
    """Finish a refresh an earlier process (or a migration) did not complete; None when nothing was due.

    ``refresh_due = "customers"`` (a migration that re-keyed customers) also
    rebuilds the customers table first.
    """
    due = store.get_setting(REFRESH_DUE, False)
    if not due:
        return None
    log.info("finishing a refresh left by an interrupted import or a migration")
    if due == "customers":
        from crm_core.ingest.identity import rebuild_customers

        with store.transaction() as cur:
            rebuild_customers(cur)
    return refresh(store, progress)


def import_files(
    store: Store,
    paths: Sequence[str | Path | importer.FileSpec],
    *,
    progress: Progress | None = None,
    rebuild_model: bool = True,
    **options,
) -> importer.ImportReport:
    """Import files (:func:`crm_core.ingest.importer.import_files`), then rebuild what depends on them.

    ``options`` are the importer's (``fmt``, ``mapping``, ``kind``,
    ``identity_key``, ``display_names``).  When the batch holds orders,
    contacts or LINE link files, ``rebuild_model`` is true and the import changed something (or
    an earlier refresh is still due, or there is no model yet), :func:`refresh`
    runs in the last tenth of ``progress``; its warnings join the report's.
    """

    def say(fraction: float, text: str) -> None:
        if progress:
            progress(min(max(fraction, 0.0), 1.0), text)

    def importing(fraction: float, text: str) -> None:
        if text != importer.DONE:  # said once, after the derived tables
            say(fraction, text)

    report = importer.import_files(store, paths, progress=importing, **options)
    try:
        record_mail_permissions(store)
    except (sqlite3.Error, OSError) as exc:  # the import is committed; the next import records what is missing
        log.warning("consent records of the import not written: %s", type(exc).__name__)
        report.warnings.append("メール配信の同意・拒否の記録を保存できませんでした（次の取り込みのときに保存します）。")
    wanted = refresh_due(store) or not store.has_table("customer_model")
    if rebuild_model and wanted and any(f.kind in ("orders", "contacts", "line_links") for f in report.files):
        try:
            report.warnings.extend(refresh(store, lambda f, text: say(0.9 + 0.1 * f, text)))
        except InputError as exc:
            report.warnings.append(exc.message)
    say(1.0, importer.DONE)
    return report


def record_mail_permissions(store: Store) -> dict[str, int] | None:
    """Record the mail permission columns of imports not recorded yet as consent records (operations store).

    Runs after every committed import (and catches up imports a killed process
    left unrecorded); None for a throwaway or read-only store.  The rules
    (an import never undoes an unsubscribe) are in
    :func:`crm_core.messaging.consent.record_imported`.
    """
    if store.path == ":memory:" or store.read_only:
        return None
    from contextlib import closing

    from crm_core import opsdb
    from crm_core.ingest import permissions
    from crm_core.messaging import consent

    with closing(opsdb.connect(opsdb.ops_path(store.path))) as ops:
        todo = consent.unrecorded_imports(ops, permissions.imports(store))
        if not todo:
            return None
        rows = permissions.mail_permissions(store, [i for i, _ in todo])
        return consent.record_imported(ops, rows, todo)


def data_version(store: Store) -> tuple[int, str]:
    """A key that changes whenever an import or a rebuild of the customer model changes the data.

    Pages pass it to cached functions so results are keyed by the data they were computed
    from; rebuilds without an import (new RFM or rank settings, corrected sale dates) count too.
    """
    imports = int(store.scalar("SELECT coalesce(max(import_id), 0) FROM imports") or 0)
    built = store.scalar("SELECT max(built_at) FROM customer_model_meta") if store.has_table("customer_model_meta") else None
    return imports, str(built)
