"""The customer table as a CSV that Excel opens (UTF-8 BOM or cp932), written in chunks."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.model.build import rebuild
from crm_core.model.table import COLUMNS, TABLE, _as_date, stored_as_of

_EXPORT_CHUNK_VECTORS = 100  # x 2048 rows per chunk


# ---------------------------------------------------------------------------
# Reading and exporting
# ---------------------------------------------------------------------------


def _export_select() -> str:
    """SELECT of the export: timestamps as text so every chunk formats alike."""
    cols = []
    for name in COLUMNS:
        if name in ("first_order_at", "last_order_at"):
            cols.append(f"strftime({name}, '%Y-%m-%d %H:%M:%S') AS {name}")
        elif name in ("birthday", "expected_next_order_date", "as_of"):
            cols.append(f"CAST({name} AS VARCHAR) AS {name}")
        else:
            cols.append(f'"{name}"')
    return "SELECT " + ", ".join(cols) + " FROM customer_model ORDER BY customer_id"  # noqa: S608 - constant names


def export_customers(
    store: Store,
    out_path: str | Path,
    as_of: date | datetime | str | None = None,
    encoding: str = "utf-8-sig",
    unencodable: set[str] | None = None,
) -> int:
    """Write the customer table as a CSV that Excel opens.

    Rebuilds first when the table is missing or ``as_of`` differs from the
    stored one.  Cells that could start a spreadsheet formula are neutralised
    (:func:`crm_core.export.to_csv_bytes`); written in chunks, so memory stays
    flat on millions of customers.

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
    from crm_core.export import ENCODINGS, cp932_unencodable, to_csv_bytes

    if encoding not in ENCODINGS:
        raise InputError("文字コードは utf-8-sig か cp932 を指定してください。", f"bad encoding {encoding}")
    wanted = _as_date(as_of)
    if not store.has_table(TABLE) or (wanted is not None and wanted != stored_as_of(store)):
        rebuild(store, wanted)
    result = store.execute(_export_select())
    rows = 0
    bom = "\ufeff".encode() if encoding == "utf-8-sig" else b""
    with open(out_path, "wb") as fh:
        first = True
        while True:
            chunk = result.fetch_df_chunk(_EXPORT_CHUNK_VECTORS)
            if chunk.empty:
                if first:
                    fh.write(to_csv_bytes(pd.DataFrame(columns=list(COLUMNS)), encoding))
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
