"""The customer table as a CSV that Excel opens (UTF-8 BOM or cp932), written in chunks."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.model.build import model_as_of, rebuild
from crm_core.model.table import COLUMNS, TABLE, _as_date, stored_as_of

_EXPORT_CHUNK_VECTORS = 100  # x 2048 rows per chunk


# ---------------------------------------------------------------------------
# Reading and exporting
# ---------------------------------------------------------------------------


EXPORT_COLUMNS: tuple[str, ...] = ("customer_id", "customer_key", *COLUMNS[1:])
"""Columns of the customers export: the model's, with the shop's own customer number second."""


def _export_select() -> str:
    """SELECT of the export: timestamps as text so every chunk formats alike."""
    cols = _export_columns()
    return "SELECT " + ", ".join(f"{e} AS {h}" for e, h in cols) + " " + _EXPORT_FROM


_EXPORT_FROM = "FROM " + TABLE + " AS m LEFT JOIN customers AS k ON k.customer_id = m.customer_id ORDER BY m.customer_id"


def _export_columns() -> list[tuple[str, str]]:
    """(SQL expression, header) of each exported column."""
    cols = []
    for name in EXPORT_COLUMNS:
        if name in ("first_order_at", "last_order_at"):
            cols.append((f"strftime(m.{name}, '%Y-%m-%d %H:%M:%S')", name))
        elif name in ("birthday", "expected_next_order_date", "as_of"):
            cols.append((f"CAST(m.{name} AS VARCHAR)", name))
        elif name == "customer_key":
            cols.append(("k.customer_key", name))
        else:
            cols.append((f'm."{name}"', name))
    return cols


def export_customers(
    store: Store,
    out_path: str | Path,
    as_of: date | datetime | str | None = None,
    encoding: str = "utf-8-sig",
    unencodable: set[str] | None = None,
) -> int:
    """Write the customer table as a CSV that Excel opens.

    Builds the table first when it is missing; an ``as_of`` other than the
    stored one is computed in a rolled-back transaction (:func:`model_as_of`), so the stored model (what
    the console and every segment see) stays as it was.  Cells that could start a spreadsheet formula are neutralised
    in SQL and DuckDB's ``COPY`` writes the file (:func:`crm_core.export.copy_csv`),
    so memory stays flat and millions of customers take seconds; the file
    appears complete or not at all.

    Parameters
    ----------
    store : Store
        The CRM store.
    out_path : str or Path
        The CSV file to write.
    as_of : date, optional
        The day to describe (default: the stored table's, else the last order day).
    encoding : {"utf-8-sig", "cp932"}
        UTF-8 with BOM (default) or cp932.
    unencodable : set, optional
        With cp932, filled with the characters cp932 cannot carry (written as ``?``).

    Returns
    -------
    int
        Customers written.
    """
    from crm_core.export import ENCODINGS

    if encoding not in ENCODINGS:
        raise InputError("文字コードは utf-8-sig か cp932 を指定してください。", f"bad encoding {encoding}")
    wanted = _as_date(as_of)
    if wanted is not None and (not store.has_table(TABLE) or wanted != stored_as_of(store)):
        with model_as_of(store, wanted):  # rolled back afterwards: the stored model stays as it was
            return _write_export(store, out_path, encoding, unencodable)
    if not store.has_table(TABLE):
        rebuild(store)
    return _write_export(store, out_path, encoding, unencodable)


def _write_export(store: Store, out_path: str | Path, encoding: str, unencodable: set[str] | None) -> int:
    """Neutralised in SQL and written by DuckDB's COPY (:func:`crm_core.export.copy_csv`)."""
    from crm_core.export import copy_csv

    return copy_csv(store, _export_columns(), _EXPORT_FROM, None, out_path, encoding, unencodable)


def _write_export_pandas(store: Store, out_path: str | Path, encoding: str, unencodable: set[str] | None) -> int:
    """The earlier chunked pandas writer: kept as the reference the SQL export is tested against."""
    from crm_core.export import cp932_unencodable, to_csv_bytes

    result = store.execute(_export_select())
    rows = 0
    bom = "\ufeff".encode() if encoding == "utf-8-sig" else b""
    with open(out_path, "wb") as fh:
        first = True
        while True:
            chunk = result.fetch_df_chunk(_EXPORT_CHUNK_VECTORS)
            if chunk.empty:
                if first:
                    fh.write(to_csv_bytes(pd.DataFrame(columns=list(EXPORT_COLUMNS)), encoding))
                break
            data = to_csv_bytes(chunk, encoding)
            if encoding == "cp932" and unencodable is not None:
                unencodable |= cp932_unencodable(chunk)
            if not first:
                data = data[len(bom):] if bom and data.startswith(bom) else data
                data = data.split(b"\r\n", 1)[1]
            fh.write(data)
            rows += len(chunk)
            first = False
    return rows
