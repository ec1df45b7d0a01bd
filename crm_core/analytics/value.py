"""Customer-value analyses: what counts as a purchase, RFM views, ranks, CLV views.

This module holds the one definition of a *purchase* that every analysis
module (:mod:`crm_core.analytics.repeat`, :mod:`crm_core.analytics.cohorts`,
:mod:`crm_core.analytics.subscription`, :mod:`crm_core.analytics.cycles`, :mod:`crm_core.analytics.basket`)
builds on, and the analyses of customer value itself:

- RFM segment sizes and revenue share, R×F heat map (from ``customer_model``);
- loyalty-rank movement between two dates (from ``orders``);
- predicted CLV distribution and churn-risk bands (from ``customer_model``).

Definitions
-----------
purchase
    A row of ``orders`` that is not cancelled (``orders.cancelled``), has a
    customer and an order time, and was placed on or before ``as_of`` (JST
    calendar day; ``ordered_at`` is stored in JST).
order revenue
    ``total_amount`` (falling back to ``item_amount``), taken once per order
    from ``orders`` (never summed over lines), as elsewhere in the console.
line category
    ``coalesce(products.category, order_lines.category)``: Rakuten exports have
    no category column, a product master import fills ``products``.
gross profit (粗利)
    Defined next to the purchase in :mod:`crm_core.purchases`
    (:data:`~crm_core.purchases.GROSS_PROFIT_CTE`): line amount − cost, an
    unknown cost left out (with its coverage), never 0.

Every function takes the store and explicit dates and parameters, runs its
heavy work in DuckDB with bound parameters and returns a small DataFrame.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.purchases import (
    PURCHASES_CTE,  # the one definition of a purchase (and of its gross profit: purchases.GROSS_PROFIT_CTE)
)

# --------------------------------------------------------------------------
# Shared definitions
# --------------------------------------------------------------------------

#: Loyalty ranks by 12-month spend, highest first: (rank, minimum spend in yen).
RANK_THRESHOLDS: tuple[tuple[str, float], ...] = (
    ("プラチナ", 50_000),
    ("ゴールド", 20_000),
    ("シルバー", 8_000),
    ("レギュラー", 0),
)
#: Setting that holds the shop's ranks (owned by :mod:`crm_core.model.build`):
#: ``[{"name": ..., "min_revenue_12m": ...}, ...]``.
RANK_SETTING = "rank_thresholds"
#: Row label of the rank movement matrix for customers who had not bought yet.
NOT_YET_CUSTOMER = "未購入"
#: The RFM segments of ``customer_model.rfm_segment``, best first.
RFM_SEGMENTS: tuple[str, ...] = ("優良顧客", "安定顧客", "新規顧客", "育成中", "要注意", "休眠予備軍", "休眠", "離反")
#: The churn-risk bands of ``customer_model.churn_risk``.
CHURN_BANDS: tuple[str, ...] = ("低", "中", "高")
#: Default bins (yen) of the predicted-CLV distribution.
CLV_EDGES: tuple[float, ...] = (0, 1_000, 3_000, 5_000, 10_000, 20_000, 50_000, 100_000)

# The product master, one row per product (latest import wins).
PRODUCT_MASTER_CTE = """
product_master AS (
    SELECT product_id,
           arg_max(product_name, coalesce(import_id, 0)) AS product_name,
           arg_max(category, coalesce(import_id, 0)) AS category
    FROM products
    WHERE product_id IS NOT NULL
    GROUP BY product_id
)"""


#: Days of the latest orders whose lines :func:`product_names_cte` reads first.
NAME_RECENT_DAYS = 31


def product_names_cte(ids: str, recent_days: int = NAME_RECENT_DAYS) -> str:
    """CTEs ``product_names(product_id, product_name)`` for the ids in CTE ``ids`` (and helpers ``name_*``).

    The name is the product master's, else the name on the product's latest
    order line with a name (orders of any status; lines of orders without a
    time are never the latest; among lines at the same latest time, any
    one's).  Needs ``product_master`` (:data:`PRODUCT_MASTER_CTE`).  Only the
    lines of the listed products without a master name are read.

    The lines of the orders of the last ``recent_days`` days (up to the
    latest order time) are read first: a product with a named line there has
    its latest named line there too, since every later line is there.  Only
    the other products' lines are joined to all their orders -- usually none,
    instead of every line of the shop (a shop without a product master).
    """
    if not ids.isidentifier():
        raise ValueError(f"not a CTE name: {ids!r}")
    recent = int(recent_days)
    return f"""
name_ids AS (
    SELECT product_id FROM {ids}
    EXCEPT SELECT product_id FROM product_master WHERE product_name IS NOT NULL
),
name_recent_orders AS MATERIALIZED (
    SELECT source, order_id, ordered_at FROM orders
    WHERE ordered_at >= (SELECT max(ordered_at) FROM orders) - to_days({recent})
),
name_recent AS (
    SELECT l.product_id, arg_max(l.product_name, o.ordered_at) AS product_name
    FROM order_lines l JOIN name_recent_orders o ON o.source = l.source AND o.order_id = l.order_id
    WHERE l.product_id IN (SELECT product_id FROM name_ids) AND l.product_name IS NOT NULL
    GROUP BY l.product_id
),
name_rest AS (SELECT product_id FROM name_ids EXCEPT SELECT product_id FROM name_recent),
line_names AS (
    SELECT product_id, product_name FROM name_recent
    UNION ALL
    SELECT l.product_id, arg_max(l.product_name, o.ordered_at) AS product_name
    FROM order_lines l JOIN orders o ON o.source = l.source AND o.order_id = l.order_id
    -- the count: DuckDB then hashes these lines, not all orders, and skips the join when there are none
    WHERE l.product_id IN (SELECT product_id FROM name_rest) AND (SELECT count(*) FROM name_rest) > 0
    GROUP BY l.product_id
),
product_names AS (
    SELECT i.product_id, coalesce(m.product_name, n.product_name) AS product_name
    FROM (SELECT DISTINCT product_id FROM {ids} WHERE product_id IS NOT NULL) i
    LEFT JOIN product_master m ON m.product_id = i.product_id
    LEFT JOIN line_names n ON n.product_id = i.product_id
)"""  # noqa: S608 - ids is a CTE name written in code, recent an int


def product_name_map(store: Store, ids: Sequence[Any]) -> dict[str, str]:
    """Names of the given product ids (see :func:`product_names_cte`); ids without a name are left out.

    Run it as its own statement after a heavy analysis, on the few ids of its
    result: inside the analysis, joining the lines to their orders for the
    names competes for memory with the analysis' own tables.
    """
    wanted = [str(i) for i in dict.fromkeys(ids) if i is not None and i == i]  # i == i: not NaN
    if not wanted:
        return {}
    df = query_df(
        store,
        "WITH "  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + PRODUCT_MASTER_CTE
        + ", wanted_ids AS (SELECT unnest($ids::VARCHAR[]) AS product_id),"
        + product_names_cte("wanted_ids")
        + " SELECT product_id, product_name FROM product_names WHERE product_name IS NOT NULL",
        {"ids": wanted},
    )
    return dict(zip(df["product_id"], df["product_name"]))


_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def bound(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The named parameters a statement uses (DuckDB refuses unused ones).

    Raises ``KeyError`` naming a parameter the statement needs but ``params``
    lacks.
    """
    names = set(_PARAM.findall(sql))
    missing = names - params.keys()
    if missing:
        raise KeyError(f"missing SQL parameters: {sorted(missing)}")
    return {k: v for k, v in params.items() if k in names}


def query_df(store: Store, sql: str, params: dict[str, Any]) -> pd.DataFrame:
    """Run a query with named parameters (only those it uses) and return a DataFrame."""
    return store.df(sql, bound(sql, params))


def query_row(store: Store, sql: str, params: dict[str, Any]) -> tuple | None:
    """Run a query with named parameters and return its first row."""
    return store.fetchone(sql, bound(sql, params))


def as_of_date(value: dt.date | dt.datetime | str) -> dt.date:
    """The as-of day as a date (accepts a date, a datetime or ``YYYY-MM-DD``)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError as exc:
            raise InputError(f"基準日「{value}」を日付として読めません。YYYY-MM-DD の形で指定してください。") from exc
    raise InputError("基準日が指定されていません。", detail=f"as_of of type {type(value).__name__}")


def period_params(as_of: dt.date | dt.datetime | str) -> dict[str, Any]:
    """Bound parameters for an as-of day: ``as_of`` (date) and ``end`` (next midnight)."""
    day = as_of_date(as_of)
    return {"as_of": day, "end": dt.datetime.combine(day + dt.timedelta(days=1), dt.time())}


def month_start(day: dt.date) -> dt.date:
    """First day of the month of ``day``."""
    return day.replace(day=1)


def add_months(day: dt.date, months: int) -> dt.date:
    """First day of the month ``months`` after (or before) the month of ``day``."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def has_table(store: Store, name: str) -> bool:
    """True when the store has a table (or view) called ``name`` (:meth:`Store.has_table`)."""
    return store.has_table(name)


def has_customer_model(store: Store) -> bool:
    """True when ``customer_model`` exists and has rows."""
    return has_table(store, "customer_model") and bool(store.scalar("SELECT count(*) FROM customer_model"))


def customer_model_as_of(store: Store) -> dt.date | None:
    """The as-of day the stored customer model was built for, or None (:func:`crm_core.model.stored_as_of`)."""
    from crm_core import model

    return model.stored_as_of(store)


def latest_order_date(store: Store) -> dt.date | None:
    """The day of the latest non-cancelled order, or None for an empty store."""
    value = store.scalar("SELECT max(ordered_at) FROM orders WHERE NOT coalesce(cancelled, FALSE)")
    return None if value is None else value.date()


# --------------------------------------------------------------------------
# RFM (from customer_model)
# --------------------------------------------------------------------------


def rfm_segment_summary(store: Store) -> pd.DataFrame:
    """Size and revenue share of each RFM segment.

    Parameters
    ----------
    store : Store
        Must hold ``customer_model`` (columns ``rfm_segment``, ``revenue``,
        ``revenue_12m``).

    Returns
    -------
    DataFrame
        One row per segment of the shop's RFM segment table (the
        ``rfm_segments`` setting; :data:`RFM_SEGMENTS` by default) in its
        order, zeros included, then other labels: ``segment``, ``customers``,
        ``customer_share``, ``revenue`` (lifetime), ``revenue_share``,
        ``revenue_per_customer``, ``revenue_12m``, ``revenue_12m_share``.
        Empty when there is no customer model.
    """
    columns = [
        "segment",
        "customers",
        "customer_share",
        "revenue",
        "revenue_share",
        "revenue_per_customer",
        "revenue_12m",
        "revenue_12m_share",
    ]
    if not has_customer_model(store):
        return pd.DataFrame(columns=columns)
    df = store.df(
        """
        SELECT coalesce(rfm_segment, '未分類') AS segment,
               count(*) AS customers,
               CAST(coalesce(sum(revenue), 0) AS DOUBLE) AS revenue,
               CAST(coalesce(sum(revenue_12m), 0) AS DOUBLE) AS revenue_12m
        FROM customer_model
        GROUP BY ALL
        """
    )
    from crm_core import model  # the shop's segment names (the model imports no analytics)

    try:
        names = [rule["name"] for rule in model.rfm_segments(store)]
    except InputError:  # an invalid stored setting: the model refuses it too
        names = list(RFM_SEGMENTS)
    order = names + sorted(set(df["segment"]) - set(names))
    df = df.set_index("segment").reindex(order).fillna(0).rename_axis("segment").reset_index()
    df["customers"] = df["customers"].astype("int64")
    df["customer_share"] = share_of_total(df["customers"])
    df["revenue_share"] = share_of_total(df["revenue"])
    df["revenue_12m_share"] = share_of_total(df["revenue_12m"])
    df["revenue_per_customer"] = (df["revenue"] / df["customers"].where(df["customers"] > 0)).astype("float64")
    return df[columns]


def rf_heatmap(store: Store, scores: Sequence[int] = (1, 2, 3, 4, 5)) -> pd.DataFrame:
    """Customer counts on the recency × frequency score grid.

    Parameters
    ----------
    store : Store
        Must hold ``customer_model`` (``r_score``, ``f_score``, ``revenue``).
    scores : sequence of int
        The score values of the grid (scores outside it are still shown).

    Returns
    -------
    DataFrame
        ``r_score``, ``f_score``, ``customers``, ``customer_share``,
        ``revenue``; every cell of the grid, zeros included.  Empty when
        there is no customer model.
    """
    columns = ["r_score", "f_score", "customers", "customer_share", "revenue"]
    if not has_customer_model(store):
        return pd.DataFrame(columns=columns)
    df = store.df(
        """
        SELECT CAST(r_score AS INTEGER) AS r_score, CAST(f_score AS INTEGER) AS f_score,
               count(*) AS customers, CAST(coalesce(sum(revenue), 0) AS DOUBLE) AS revenue
        FROM customer_model
        WHERE r_score IS NOT NULL AND f_score IS NOT NULL
        GROUP BY ALL
        """
    )
    r_values = sorted(set(scores) | set(df["r_score"].astype(int)))
    f_values = sorted(set(scores) | set(df["f_score"].astype(int)))
    grid = pd.MultiIndex.from_product([r_values, f_values], names=["r_score", "f_score"])
    df = df.set_index(["r_score", "f_score"]).reindex(grid, fill_value=0).reset_index()
    df["customers"] = df["customers"].astype("int64")
    df["customer_share"] = share_of_total(df["customers"])
    return df[columns]


# --------------------------------------------------------------------------
# Loyalty ranks (from orders)
# --------------------------------------------------------------------------


def check_thresholds(thresholds: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """Validate rank thresholds: names unique, minimum spends strictly descending.

    The last rank takes everyone below the previous threshold, whatever its
    own minimum.
    """
    items = [(str(name), float(minimum)) for name, minimum in thresholds]
    if not items:
        raise InputError("ランクの基準が1つもありません。")
    names = [name for name, _ in items]
    if len(set(names)) != len(names) or NOT_YET_CUSTOMER in names:
        raise InputError("ランク名が重複しています。ランクごとに別の名前を付けてください。")
    minimums = [minimum for _, minimum in items]
    if any(a <= b for a, b in zip(minimums, minimums[1:], strict=False)):
        raise InputError("ランクの基準額は上位のランクほど高くなるように（降順で）指定してください。")
    return items


RANK_BASES = ("revenue_12m", "orders_12m")
"""What ranks are set by: 12-month spend (yen) or 12-month number of orders."""


def shop_rank_basis(store: Store) -> str:
    """``"orders_12m"`` when the shop's ranks are set by number of orders, else ``"revenue_12m"``."""
    value = store.get_setting(RANK_SETTING, None)
    first = value[0] if isinstance(value, list) and value and isinstance(value[0], dict) else {}
    return "orders_12m" if "min_orders_12m" in first else "revenue_12m"


def shop_rank_thresholds(store: Store) -> tuple[tuple[str, float], ...]:
    """The shop's ranks from the ``rank_thresholds`` setting, else :data:`RANK_THRESHOLDS`.

    Returns ``(rank, minimum)`` pairs, highest first, the shape
    :func:`rank_movement` takes; the minimum is yen or a number of orders as
    :func:`shop_rank_basis` says.
    """
    value = store.get_setting(RANK_SETTING, None)
    key = "min_orders_12m" if shop_rank_basis(store) == "orders_12m" else "min_revenue_12m"
    try:
        pairs = [(str(r["name"]), float(r[key])) for r in value or []]
    except (TypeError, KeyError, ValueError):
        pairs = []
    pairs.sort(key=lambda p: p[1], reverse=True)
    return tuple(pairs) if pairs else RANK_THRESHOLDS


def rank_movement(
    store: Store,
    date_from: dt.date | str,
    date_to: dt.date | str,
    thresholds: Sequence[tuple[str, float]] = RANK_THRESHOLDS,
    window_days: int = 365,
    basis: str = "revenue_12m",
) -> pd.DataFrame:
    """Movement of customers between loyalty ranks from one date to another.

    A customer's rank on a day is set by their spend (order revenue of
    purchases; ``basis="orders_12m"``: their number of purchases) in the
    ``window_days`` days ending on that day (365: the 12-month figures
    ``customer_model.revenue_12m`` and ``orders_12m`` use).
    :func:`rank_spend_grid` (the query) then :func:`rank_movement_from_grid`
    (the thresholds), so a page can keep the grid and try other thresholds
    without reading the orders again.

    Parameters
    ----------
    store : Store
    date_from, date_to : date
        The two as-of days (``date_from`` <= ``date_to``).
    thresholds : sequence of (rank, minimum spend or orders)
        Highest rank first, e.g. :data:`RANK_THRESHOLDS`.
    window_days : int
        Length of the spend window in days.

    Returns
    -------
    DataFrame
        The full matrix in long form, one row per (``from_rank``,
        ``to_rank``): ``from_rank`` (移動元: :data:`NOT_YET_CUSTOMER` for
        customers whose first purchase came after ``date_from``, then the
        ranks), ``to_rank`` (移動先), ``customers``, ``share_of_from`` (share of
        the ``from_rank`` row), ``movement`` ('昇格', '維持', '降格' or '新規').
    """
    check_thresholds(thresholds)
    return rank_movement_from_grid(rank_spend_grid(store, date_from, date_to, window_days, basis), thresholds)


def rank_spend_grid(
    store: Store,
    date_from: dt.date | str,
    date_to: dt.date | str,
    window_days: int = 365,
    basis: str = "revenue_12m",
) -> pd.DataFrame:
    """Customers per (new after ``date_from``, spend on ``date_from``, spend on ``date_to``): what ranks bucket.

    Returns
    -------
    DataFrame
        ``is_new`` (first purchase after ``date_from``), ``spend_a``, ``spend_b``
        (spend or number of purchases in the ``window_days`` days ending on each
        day, 0 when none), ``customers``.  One row per distinct triple: a few
        hundred thousand rows for millions of customers.
    """
    a, b = as_of_date(date_from), as_of_date(date_to)
    if a > b:
        raise InputError("比較の開始日が終了日より後になっています。日付を入れ替えてください。")
    if window_days < 1:
        raise InputError("集計期間（日数）は1以上を指定してください。")
    if basis not in RANK_BASES:
        raise InputError("ランクの基準は購入金額か購入回数を選んでください。", detail=f"basis={basis!r}")
    measure = "revenue" if basis == "revenue_12m" else "1"  # sum(1) counts purchases
    params: dict[str, Any] = {
        "end": period_params(b)["end"],
        "end_a": period_params(a)["end"],
        "window": int(window_days),
    }
    sql = (
        "WITH "  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + PURCHASES_CTE
        + """,
        per_customer AS (
            SELECT customer_id,
                   min(ordered_at) AS first_at,
                   sum(""" + measure + """) FILTER (WHERE ordered_at >= $end_a - to_days($window) AND ordered_at < $end_a)
                       AS spend_a,
                   sum(""" + measure + """) FILTER (WHERE ordered_at >= $end - to_days($window)) AS spend_b
            FROM purchases
            GROUP BY customer_id
        )
        SELECT first_at >= $end_a AS is_new,
               CAST(coalesce(spend_a, 0) AS DOUBLE) AS spend_a,
               CAST(coalesce(spend_b, 0) AS DOUBLE) AS spend_b,
               count(*) AS customers
        FROM per_customer
        GROUP BY ALL
        """
    )
    return query_df(store, sql, params)


def rank_movement_from_grid(grid: pd.DataFrame, thresholds: Sequence[tuple[str, float]] = RANK_THRESHOLDS) -> pd.DataFrame:
    """The :func:`rank_movement` matrix of a :func:`rank_spend_grid` under ``thresholds``.

    A spend takes the first (highest) rank whose minimum it reaches, else the
    last rank (a customer without purchases in the window spends 0).
    """
    ranks = check_thresholds(thresholds)
    names = [name for name, _ in ranks]
    minimums = np.array([minimum for _, minimum in ranks[:-1]], dtype="float64")

    def rank_index(spend: pd.Series) -> np.ndarray:
        # minimums descend: the rank is the number of minimums the spend does not reach
        return (spend.to_numpy(dtype="float64")[:, None] < minimums[None, :]).sum(axis=1)

    # cell number: from (0 = not yet a customer, then the ranks) × len(names) + to; counted with bincount
    k = len(names)
    from_index = np.where(grid["is_new"].to_numpy(dtype=bool), 0, rank_index(grid["spend_a"]) + 1)
    cell = from_index * k + rank_index(grid["spend_b"])
    counts = np.bincount(cell, weights=grid["customers"].to_numpy(dtype="float64"), minlength=(k + 1) * k)
    index = pd.MultiIndex.from_product([[NOT_YET_CUSTOMER, *names], names], names=["from_rank", "to_rank"])
    df = pd.DataFrame({"customers": np.rint(counts).astype("int64")}, index=index).reset_index()
    row_total = df.groupby("from_rank", sort=False)["customers"].transform("sum")
    df["share_of_from"] = (df["customers"] / row_total.where(row_total > 0)).astype("float64")
    level = {name: i for i, name in enumerate(names)}  # 0 = highest

    def movement(row: pd.Series) -> str:
        if row["from_rank"] == NOT_YET_CUSTOMER:
            return "新規"
        diff = level[row["to_rank"]] - level[row["from_rank"]]
        return "維持" if diff == 0 else ("昇格" if diff < 0 else "降格")

    df["movement"] = df.apply(movement, axis=1).astype("str")
    return df[["from_rank", "to_rank", "customers", "share_of_from", "movement"]]


def rank_movement_summary(matrix: pd.DataFrame) -> pd.DataFrame:
    """Customers per kind of movement of a :func:`rank_movement` matrix.

    Returns
    -------
    DataFrame
        ``movement`` ('昇格', '維持', '降格', '新規' in that order),
        ``customers``, ``share``.
    """
    kinds = ["昇格", "維持", "降格", "新規"]
    out = matrix.groupby("movement")["customers"].sum().reindex(kinds, fill_value=0)
    df = out.rename_axis("movement").reset_index()
    df["customers"] = df["customers"].astype("int64")
    df["share"] = share_of_total(df["customers"])
    return df


# --------------------------------------------------------------------------
# Predicted value (from customer_model)
# --------------------------------------------------------------------------


def clv_distribution(store: Store, edges: Sequence[float] = CLV_EDGES) -> pd.DataFrame:
    """Distribution of predicted 365-day CLV over yen bins.

    Parameters
    ----------
    store : Store
        Must hold ``customer_model.predicted_clv_365d``.
    edges : sequence of float
        Ascending lower edges of the bins; the last bin is open-ended and
        values below the first edge fall into the first bin.

    Returns
    -------
    DataFrame
        ``bin_start``, ``bin_end`` (NaN for the open last bin), ``customers``,
        ``share``, ``predicted_clv`` (sum of the bin).  Empty when there is
        no customer model or no prediction.
    """
    columns = ["bin_start", "bin_end", "customers", "share", "predicted_clv"]
    lows = [float(e) for e in edges]
    if not lows or any(x >= y for x, y in zip(lows, lows[1:], strict=False)):
        raise InputError("CLV の区切りは小さい順に指定してください。")
    if not has_customer_model(store):
        return pd.DataFrame(columns=columns)
    params: dict[str, Any] = {}
    whens = []
    for i in range(len(lows) - 1, 0, -1):
        params[f"edge_{i}"] = lows[i]
        whens.append(f"WHEN predicted_clv_365d >= $edge_{i} THEN {i}")
    case = "CASE " + " ".join(whens) + " ELSE 0 END" if whens else "0"
    df = query_df(
        store,
        "SELECT "  # noqa: S608 - fixed SQL fragments; values are bound parameters
        + case
        + """ AS bin, count(*) AS customers, CAST(sum(predicted_clv_365d) AS DOUBLE) AS predicted_clv
        FROM customer_model
        WHERE predicted_clv_365d IS NOT NULL
        GROUP BY ALL
        """,
        params,
    )
    if df.empty:
        return pd.DataFrame(columns=columns)
    df = df.set_index("bin").reindex(range(len(lows)), fill_value=0)
    out = pd.DataFrame(
        {
            "bin_start": lows,
            "bin_end": lows[1:] + [float("nan")],
            "customers": df["customers"].astype("int64").to_numpy(),
            "predicted_clv": df["predicted_clv"].astype("float64").to_numpy(),
        }
    )
    out["share"] = share_of_total(out["customers"])
    return out[columns]


def churn_risk_summary(store: Store) -> pd.DataFrame:
    """Customers and value per churn-risk band (低 / 中 / 高).

    Returns
    -------
    DataFrame
        ``churn_risk``, ``customers``, ``share``, ``avg_churn_probability``,
        ``avg_p_alive``, ``revenue_12m``, ``predicted_clv``; one row per band
        of :data:`CHURN_BANDS` (zeros included).  Empty without a customer
        model.
    """
    columns = [
        "churn_risk",
        "customers",
        "share",
        "avg_churn_probability",
        "avg_p_alive",
        "revenue_12m",
        "predicted_clv",
    ]
    if not has_customer_model(store):
        return pd.DataFrame(columns=columns)
    df = store.df(
        """
        SELECT churn_risk, count(*) AS customers,
               avg(churn_probability_90d) AS avg_churn_probability,
               avg(p_alive) AS avg_p_alive,
               CAST(coalesce(sum(revenue_12m), 0) AS DOUBLE) AS revenue_12m,
               CAST(coalesce(sum(predicted_clv_365d), 0) AS DOUBLE) AS predicted_clv
        FROM customer_model
        WHERE churn_risk IS NOT NULL
        GROUP BY ALL
        """
    )
    order = list(CHURN_BANDS) + sorted(set(df["churn_risk"]) - set(CHURN_BANDS))
    df = df.set_index("churn_risk").reindex(order).rename_axis("churn_risk").reset_index()
    df["customers"] = df["customers"].fillna(0).astype("int64")
    for col in ("revenue_12m", "predicted_clv"):
        df[col] = df[col].fillna(0.0).astype("float64")
    df["share"] = share_of_total(df["customers"])
    return df[columns]


def share_of_total(values: pd.Series) -> pd.Series:
    """Each value's share of the column total (NaN when the total is zero)."""
    total = float(values.sum())
    if total == 0:
        return pd.Series(float("nan"), index=values.index, dtype="float64")
    return (values / total).astype("float64")
