"""Shop-wide figures the pages show first, computed once at refresh time instead of at a page's first render.

The sidebar's counts, the home page's overview and the shop's gross profit each scan every order
(or every order line): 0.6–3.5 s each at 2.3 M customers.  :func:`write` (called by
:mod:`crm_core.pipeline` at the end of a refresh) stores each result with the data version it was
computed from; :func:`get` returns the stored result when its version is the store's current one,
else computes it directly.  So a page always shows exactly what the direct computation gives.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import duckdb

from crm_core.analytics import overview, profit
from crm_core.db import Store, quote_ident
from crm_core.events import calendar

log = logging.getLogger(__name__)

TABLE = "page_summaries"

# name -> the direct computation (one home each: the pages and the refresh call the same function)
SUMMARIES: dict[str, Callable[[Store], Any]] = {
    "sidebar_counts": overview.sidebar_counts,
    "shop_overview": overview.shop_overview,
    "profit_overview": profit.profit_overview,
    "sales_by_day": calendar.sales_by_day,  # 販促カレンダー: last year's sales of any range without a scan per range
}
# Per-customer tables written at refresh: name -> (table, writer(connection, touched table or None) returning the
# customers it computed).  Read only while current (:func:`table_current`); a reader falls back to the same SQL over
# the orders otherwise.  After a daily import only the touched customers are recomputed (see :func:`write`).
TABLES: dict[str, tuple[str, Callable[[Any, str | None], int]]] = {
    "customer_profit": (profit.STORED_CUSTOMER_PROFIT, profit.store_customer_profit),
}
# Summaries that also depend on the costs (a cost can change without an import or a rebuild).
WITH_COSTS = frozenset({"profit_overview", "customer_profit"})


def ensure_table(store: Store) -> None:
    store.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (name VARCHAR PRIMARY KEY, version VARCHAR NOT NULL, "  # noqa: S608 - constant
        "value VARCHAR NOT NULL, seconds DOUBLE, written_at TIMESTAMP)"
    )


def version_key(store: Store, name: str, data_version: Sequence[Any]) -> str:
    """The key a stored ``name`` must carry to be current: the data version (and the costs' for profit)."""
    # the row counts too: a deletion of all data (``Store.clear_data``) must not meet a stored summary
    parts: list[Any] = [list(data_version), store.table_count("orders"), store.table_count("order_lines")]
    if name in WITH_COSTS:
        from crm_core.ingest import products

        parts.append(products.costs_version(store))
    return repr(parts)


def _enc(v: Any) -> Any:
    if isinstance(v, Decimal):
        return {"$dec": str(v)}
    if isinstance(v, dt.datetime):
        return {"$dt": v.isoformat()}
    if isinstance(v, dt.date):
        return {"$date": v.isoformat()}
    if isinstance(v, tuple):
        return {"$tuple": [_enc(x) for x in v]}
    if isinstance(v, list):
        return [_enc(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _enc(x) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"summary value of type {type(v).__name__} cannot be stored")


def _dec(v: Any) -> Any:
    if isinstance(v, list):
        return [_dec(x) for x in v]
    if isinstance(v, dict):
        if len(v) == 1:
            (tag, x), = v.items()
            if tag == "$dec":
                return Decimal(x)
            if tag == "$dt":
                return dt.datetime.fromisoformat(x)
            if tag == "$date":
                return dt.date.fromisoformat(x)
            if tag == "$tuple":
                return tuple(_dec(y) for y in x)
        return {k: _dec(x) for k, x in v.items()}
    return v


def encode(value: Any) -> str:
    """``value`` as stored text (decimals, dates, times and tuples keep their types through :func:`decode`)."""
    return json.dumps(_enc(value), ensure_ascii=False)


def decode(text: str) -> Any:
    return _dec(json.loads(text))


def write(store: Store, data_version: Sequence[Any], names: Sequence[str] = (*SUMMARIES, *TABLES),
          touched: str | None = None) -> dict[str, float]:
    """Compute and store the summaries and tables ``names`` for ``data_version``; returns seconds per name.

    ``touched`` (``refresh_touched``, from :func:`crm_core.pipeline.refresh`): the customers whose orders
    changed since the last refresh; a table of :data:`TABLES` is then updated for them only, when the last
    refresh wrote it with the same costs and no id is NULL ('everyone').

    A summary that cannot be written (a read-only store, a full disk) is only logged: the pages
    then compute it themselves.  A table that cannot be written loses its version row, so the next
    refresh writes it whole.
    """
    spent: dict[str, float] = {}
    if store.read_only:
        return spent
    try:
        ensure_table(store)
        for name in names:
            if name in TABLES:
                spent[name] = _write_table(store, name, data_version, touched)
                continue
            t = time.perf_counter()
            value = encode(SUMMARIES[name](store))
            key = version_key(store, name, data_version)
            spent[name] = time.perf_counter() - t
            with store.transaction() as cur:
                cur.execute(f"DELETE FROM {TABLE} WHERE name = ?", [name])  # noqa: S608 - constant
                cur.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, now())", [name, key, value, spent[name]])  # noqa: S608
    except duckdb.Error as exc:
        log.warning("page summaries not written: %s", type(exc).__name__)
    return spent


def _write_table(store: Store, name: str, data_version: Sequence[Any], touched: str | None) -> float:
    from crm_core.ingest import products

    t = time.perf_counter()
    table, writer = TABLES[name]
    # every cost and link of the products and category rates, digested (costs_version misses e.g. a changed SKU link)
    costs = repr((products.costs_version(store), store.fetchone(
        "SELECT (SELECT sum(hash(p)) FROM products p), (SELECT sum(hash(m)) FROM category_margins m)")))
    previous = _row(store, name)
    scope = None
    if touched is not None and previous is not None and store.has_table(table):
        kept = decode(previous[1])
        everyone = store.scalar("SELECT count(*) FROM " + quote_ident(touched, ("refresh_touched",))  # noqa: S608
                                + " WHERE customer_id IS NULL")
        scope = touched if kept.get("costs") == costs and not everyone else None
    try:
        with store.transaction() as cur:
            cur.execute(f"DELETE FROM {TABLE} WHERE name = ?", [name])  # noqa: S608 - constant
            computed = writer(cur, scope)
            value = encode({"computed": computed, "touched_only": scope is not None, "costs": costs})
            key = version_key(store, name, data_version)
            cur.execute(f"INSERT INTO {TABLE} VALUES (?, ?, ?, ?, now())",  # noqa: S608 - constant
                        [name, key, value, time.perf_counter() - t])
    except duckdb.Error:
        # the table may be older than the touched list the refresh is about to clear: never update it in place again
        store.execute(f"DELETE FROM {TABLE} WHERE name = ?", [name])  # noqa: S608 - constant
        raise
    return time.perf_counter() - t


def _row(store: Store, name: str) -> tuple | None:
    if not store.has_table(TABLE):
        return None
    return store.fetchone(f"SELECT version, value FROM {TABLE} WHERE name = ?", [name])  # noqa: S608 - constant


def stored(store: Store, name: str, data_version: Sequence[Any]) -> tuple[bool, Any]:
    """``(True, value)`` when ``name`` is stored for the current version, else ``(False, None)``."""
    row = _row(store, name)
    if row is None or row[0] != version_key(store, name, data_version):
        return False, None
    return True, decode(row[1])


def table_current(store: Store, name: str, data_version: Sequence[Any]) -> bool:
    """True when the table ``name`` of :data:`TABLES` was written for the store as it is now (data and costs)."""
    return store.has_table(TABLES[name][0]) and stored(store, name, data_version)[0]


def get(store: Store, name: str, data_version: Sequence[Any]) -> Any:
    """The summary ``name`` for the store as it is now: the stored one when current, else computed directly."""
    found, value = stored(store, name, data_version)
    return value if found else SUMMARIES[name](store)
