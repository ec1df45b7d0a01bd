"""Rank movement through the spend grid (value.rank_spend_grid + rank_movement_from_grid) equals the former one-query
formulation, where the thresholds were a CASE inside the SQL (frozen below), on random shops and thresholds."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_core.analytics import value as analytics
from crm_core.db import Store
from crm_core.purchases import PURCHASES_CTE
from tests.analytics_shop import add_order


def _rank_case(column, thresholds, params):
    parts = []
    for i, (name, minimum) in enumerate(thresholds[:-1]):
        params[f"rank_min_{i}"] = float(minimum)
        params[f"rank_name_{i}"] = name
        parts.append(f"WHEN coalesce({column}, 0) >= $rank_min_{i} THEN $rank_name_{i}")
    params["rank_last"] = thresholds[-1][0]
    return "CASE " + " ".join(parts) + " ELSE $rank_last END"


def rank_movement_before(store, date_from, date_to, thresholds, window_days=365, basis="revenue_12m"):
    """The matrix's counts as the single query computed them before the grid (main 1962991)."""
    ranks = analytics.check_thresholds(thresholds)
    a, b = analytics.as_of_date(date_from), analytics.as_of_date(date_to)
    measure = "revenue" if basis == "revenue_12m" else "1"
    params = {"end": analytics.period_params(b)["end"], "end_a": analytics.period_params(a)["end"],
              "window": int(window_days), "not_yet": analytics.NOT_YET_CUSTOMER}
    rank_a, rank_b = _rank_case("spend_a", ranks, params), _rank_case("spend_b", ranks, params)
    sql = ("WITH " + PURCHASES_CTE + """,
        per_customer AS (
            SELECT customer_id, min(ordered_at) AS first_at,
                   sum(""" + measure + """) FILTER (WHERE ordered_at >= $end_a - to_days($window) AND ordered_at < $end_a)
                       AS spend_a,
                   sum(""" + measure + """) FILTER (WHERE ordered_at >= $end - to_days($window)) AS spend_b
            FROM purchases GROUP BY customer_id)
        SELECT CASE WHEN first_at >= $end_a THEN $not_yet ELSE """ + rank_a + """ END AS from_rank,
               """ + rank_b + """ AS to_rank, count(*) AS customers
        FROM per_customer GROUP BY ALL""")
    df = analytics.query_df(store, sql, params)
    return {(r.from_rank, r.to_rank): int(r.customers) for r in df.itertuples() if r.customers}


DAY0 = dt.date(2025, 1, 1)
orders = st.lists(
    st.tuples(st.integers(0, 20), st.integers(0, 700), st.sampled_from([0, 500, 999.5, 1000, 3000, 10000, 25000]),
              st.booleans()),
    max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders=orders, cut=st.integers(0, 700), span=st.integers(0, 300),
       minimums=st.lists(st.sampled_from([1, 2, 3, 500, 1000, 2000, 3000, 10000, 25000, 50000]), min_size=1, max_size=4,
                         unique=True),
       basis=st.sampled_from(["revenue_12m", "orders_12m"]), window=st.sampled_from([30, 365]))
def test_the_grid_gives_the_matrix_the_single_query_gave(orders, cut, span, minimums, basis, window):
    store = Store(":memory:")
    try:
        for i, (who, day, total, cancelled) in enumerate(orders):
            add_order(store, f"o{i}", f"C{who}", str(DAY0 + dt.timedelta(days=day)), total, cancelled=cancelled)
        thresholds = tuple((f"R{i}", float(m)) for i, m in enumerate(sorted(minimums, reverse=True))) + (("最下位", 0.0),)
        a, b = DAY0 + dt.timedelta(days=cut), DAY0 + dt.timedelta(days=cut + span)
        got = analytics.rank_movement(store, a, b, thresholds=thresholds, window_days=window, basis=basis)
        nonzero = {(r.from_rank, r.to_rank): int(r.customers) for r in got.itertuples() if r.customers}
        assert nonzero == rank_movement_before(store, a, b, thresholds, window, basis)
        grid = analytics.rank_spend_grid(store, a, b, window, basis)
        pd.testing.assert_frame_equal(analytics.rank_movement_from_grid(grid, thresholds), got)
    finally:
        store.close()
