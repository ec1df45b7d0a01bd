"""Seeded generator of a realistic fictional shop: the export files a marketer would upload.

The shop, かすみボタニカ (KASUMI BOTANICA, fictional), sells skin care, make-up,
supplements and gift sets on Rakuten Ichiba and on a sister Shopify D2C store.
:func:`generate_sample` writes four files in the exact shape of the real
exports (FACTS.md §1):

``rakuten_orders.csv``
    Rakuten 楽天ペイ受注管理 download: cp932, every field double-quoted, CRLF,
    the 107 columns of ``export_headers.json`` (``rakuten_rpay_order_csv``),
    one row per line item with the order-level values repeated on every row.
``shopify_orders.csv``
    Shopify admin orders export (UTF-8 with BOM, 79 columns): one row per line
    item sharing ``Name``; only the first row of an order carries the
    order-level fields.
``products.csv``
    Product master of both stores (UTF-8 with BOM):
    ``商品管理番号,商品名,カテゴリ,標準リピート日数``.
``contacts.csv``
    LINE friends / mail-magazine list (UTF-8 with BOM):
    ``メールアドレス,電話番号,LINEユーザーID,誕生日,メルマガ希望``.

How the shop behaves
--------------------
Every customer has an acquisition time drawn from an hourly intensity (a
growing shop, a daily curve with lunch and late-evening peaks, the Rakuten
sale calendar), a personal pace and a per-purchase dropout probability drawn
from a Beta distribution (a BG/NBD-like process).  A repeat order falls due
after the repurchase cycle of the customer's main product (e.g. 45 ± 15 days
for a 化粧水) and is then placed at a time drawn from the sale-weighted
intensity around that due date, so Rakuten customers wait for 楽天スーパーSALE,
お買い物マラソン, 5と0のつく日 and ワンダフルデー.  About one customer in ten
subscribes (定期購入): monthly or two-monthly deliveries with ~70 % continuing
to the 2nd delivery and ~85 % per delivery after that.

Scale and determinism
---------------------
Customers are simulated (numpy, vectorised over customers) and written in
chunks of :data:`CHUNK_CUSTOMERS`, so memory stays bounded for any size; the
wide Rakuten rows go through Arrow's CSV writer in batches, then to cp932.
All randomness derives from ``numpy.random.default_rng(seed)`` (one spawned
generator per chunk); the same arguments give byte-identical files.  Rows are
in order-time order within a chunk (chunks follow each other, so a large file
is not globally sorted); identifiers (注文番号, Shopify ``Name``, 商品明細ID,
送付先ID, 申込番号) are unique over the whole file, and per-customer values
(relay address, phone, e-mail) come from keyed bijections of the customer
number, so they never collide.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np

from crm_core.sample.catalog import (
    CHUNK_CUSTOMERS,
    CONTACT_COLUMNS,
    PRODUCT_COLUMNS,
    RAKUTEN_COLUMNS,
    SHOPIFY_COLUMNS,
    Product,
    product_catalog,
)
from crm_core.sample.simulate import _make_context, _simulate
from crm_core.sample.timing import SaleEvent, sale_calendar
from crm_core.sample.writers import _contact_rows, _product_rows, _shopify_rows, _write_rakuten

__all__ = [
    "CHUNK_CUSTOMERS",
    "CONTACT_COLUMNS",
    "PRODUCT_COLUMNS",
    "RAKUTEN_COLUMNS",
    "SHOPIFY_COLUMNS",
    "SaleEvent",
    "Product",
    "generate_sample",
    "product_catalog",
    "sale_calendar",
]

# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------


def generate_sample(out_dir: str | Path, customers: int = 2000, seed: int = 7,
                    end: dt.date = dt.date(2026, 10, 31), years: float = 2.0,
                    shopify_share: float = 0.25,
                    progress: Callable[[float], None] | None = None) -> dict[str, Path]:
    """Write the fictional shop's export files into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Directory to write into (created if missing; existing files are replaced).
    customers : int
        Number of customers over both stores (each places at least one order).
        About 5.2 order lines per customer: 2,000 give ~11,000 lines (about
        8,200 Rakuten rows and 2,900 Shopify rows), 1,000,000 give ~5.1
        million.  Customers are simulated and written in chunks of
        :data:`CHUNK_CUSTOMERS`, so memory stays bounded (~300 MB) at any size.
    seed : int
        Seed of everything random; the same arguments give byte-identical files.
    end : datetime.date
        Last day with orders (JST).
    years : float
        Length of the order history.
    shopify_share : float
        Share of customers who belong to the Shopify store (0..1); the rest buy on Rakuten.
    progress : callable, optional
        Called with the completed fraction (0 < f <= 1) after each chunk.

    Returns
    -------
    dict of str to Path
        ``rakuten_orders``, ``shopify_orders``, ``products`` and ``contacts``.

    Raises
    ------
    ValueError
        For a non-positive ``customers`` or ``years`` or a share outside 0..1.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if years <= 0:
        raise ValueError("years must be positive")
    if not 0.0 <= shopify_share <= 1.0:
        raise ValueError("shopify_share must be between 0 and 1")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_days = max(30, int(round(years * 365.25)))
    start = end - dt.timedelta(days=n_days - 1)
    root = np.random.default_rng(seed)
    ctx_rng = root.spawn(1)[0]
    ctx = _make_context(start, end, n_days, seed, customers, ctx_rng)
    n_chunks = -(-customers // CHUNK_CUSTOMERS)
    chunk_rngs = root.spawn(n_chunks)
    paths = {
        "rakuten_orders": out / "rakuten_orders.csv",
        "shopify_orders": out / "shopify_orders.csv",
        "products": out / "products.csv",
        "contacts": out / "contacts.csv",
    }
    paths["products"].write_bytes(
        (",".join(PRODUCT_COLUMNS) + "\r\n" + _product_rows()).encode("utf-8-sig"))
    with contextlib.ExitStack() as stack:
        rakuten = stack.enter_context(open(paths["rakuten_orders"], "wb"))
        shopify = stack.enter_context(open(paths["shopify_orders"], "wb"))
        contacts = stack.enter_context(open(paths["contacts"], "wb"))
        rakuten.write(('"' + '","'.join(RAKUTEN_COLUMNS) + '"\r\n').encode("cp932"))
        shopify.write((",".join(SHOPIFY_COLUMNS) + "\r\n").encode("utf-8-sig"))
        contacts.write((",".join(CONTACT_COLUMNS) + "\r\n").encode("utf-8-sig"))
        for k in range(n_chunks):
            rng = chunk_rngs[k]
            gidx = np.arange(k * CHUNK_CUSTOMERS, min(customers, (k + 1) * CHUNK_CUSTOMERS), dtype=np.int64)
            on_shopify = rng.random(len(gidx)) < shopify_share
            sim_r = _simulate(rng, gidx[~on_shopify], ctx, "rakuten")
            sim_s = _simulate(rng, gidx[on_shopify], ctx, "shopify")
            _write_rakuten(rakuten, rng, ctx, sim_r)
            shopify.write(_shopify_rows(rng, ctx, sim_s).encode("utf-8"))
            contacts.write(_contact_rows(rng, (sim_r, sim_s)).encode("utf-8"))
            if progress is not None:
                progress((k + 1) / n_chunks)
    return paths
