"""The prediction step of the model build: BG/NBD + Gamma-Gamma fits on a sample, per-customer predictions, scores."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

from crm_core.db import Store
from crm_core.errors import InputError
from crm_core.model.report import ModelReport
from crm_core.model.settings import QUINTILE

CHURN_HORIZON_DAYS = 90
PREDICTION_HORIZON_DAYS = 365
FIT_SAMPLE_MAX = 300_000
"""At most this many customers (a fixed hash sample) enter the model fits."""
REFIT_DAYS = 7
"""A rebuild after an import keeps the last BG/NBD + Gamma-Gamma fit for this many days ..."""
REFIT_GROWTH = 0.05
"""... unless the number of customers changed by more than this share since the fit.

The fits describe the shop's population (purchase rates, drop-out, spend); a day of new orders
barely moves them, while fitting costs seconds.  Predictions are still evaluated for every customer
with the kept parameters, on the new as-of day.  A change of settings refits at once."""


def kept_fit(previous: dict[str, Any] | None, n_customers: int, as_of: date, now: datetime) -> dict[str, Any] | None:
    """The previous build's fit when it may be kept (see :data:`REFIT_DAYS`, :data:`REFIT_GROWTH`), else None.

    ``previous`` is the last build's report (:func:`crm_core.model.table.last_report`).  Never kept
    when it has no Gamma-Gamma fit, was made for a later day than ``as_of``, or is from before
    fit dates were recorded.
    """
    if not previous or not previous.get("bg_params") or not previous.get("gg_params") or not previous.get("fitted_at"):
        return None
    fitted_at = datetime.fromisoformat(previous["fitted_at"])
    fitted_customers = int(previous.get("fitted_customers") or 0)
    made_for = previous.get("as_of")
    if made_for is None or date.fromisoformat(made_for) > as_of or fitted_customers <= 0:
        return None
    if now - fitted_at >= timedelta(days=REFIT_DAYS):
        return None
    if abs(n_customers - fitted_customers) > REFIT_GROWTH * fitted_customers:
        return None
    return previous


# ---------------------------------------------------------------------------
# Step 3: predictions
# ---------------------------------------------------------------------------


def _next_order_days(clv: Any, bg: Any, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Smallest whole day d in 1..365 with P(no purchase within d days) <= 0.5, else NaN."""
    out = np.full(x.shape, np.nan)
    p_year = clv.prob_no_purchase(bg, float(PREDICTION_HORIZON_DAYS), x, tx, T)
    idx = np.flatnonzero(p_year <= 0.5)
    if idx.size == 0:
        return out
    lo = np.zeros(idx.size)  # P0(lo) > 0.5 (P0(0) = 1)
    hi = np.full(idx.size, float(PREDICTION_HORIZON_DAYS))  # P0(hi) <= 0.5
    xs, txs, Ts = x[idx], tx[idx], T[idx]
    while True:
        open_ = hi - lo > 1
        if not open_.any():
            break
        mid = np.where(open_, np.floor((lo + hi) / 2), hi)
        ok = clv.prob_no_purchase(bg, mid, xs, txs, Ts) <= 0.5
        hi = np.where(open_ & ok, mid, hi)
        lo = np.where(open_ & ~ok, mid, lo)
    out[idx] = hi
    return out


def _scores(spec: Any, values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """RFM scores 1-5 of ``values`` for one dimension.

    ``"quintile"``: ``1 + 5 * (rank - 1) // n`` with SQL ``rank()`` semantics
    (tied values share the lowest rank, so ties get one score), ranking
    ascending when higher is better and descending otherwise.  Four
    thresholds ``a < b < c < d``: ``>= d`` scores 5 ... ``< a`` scores 1 when
    higher is better, ``<= a`` scores 5 ... ``> d`` scores 1 otherwise.
    """
    n = values.size
    if spec == QUINTILE:
        _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
        through = np.cumsum(counts)  # values <= each distinct value
        below = (through - counts) if higher_is_better else (n - through)  # strictly worse values
        rank = below[inverse.ravel()] + 1
        return (1 + (5 * (rank - 1)) // max(n, 1)).astype(np.int32)
    a, b, c, d = (float(v) for v in spec)
    if higher_is_better:
        conditions = [values >= d, values >= c, values >= b, values >= a]
    else:
        conditions = [values <= a, values <= b, values <= c, values <= d]
    return np.select(conditions, [5, 4, 3, 2], 1).astype(np.int32)


PREDICTION_COLUMNS = ("p_alive", "churn_probability_90d", "expected_orders_365d", "predicted_clv_365d", "next_days")


def _per_customer(
    store: Store, report: ModelReport, n_customers: int, as_of: date, thresholds: dict[str, Any],
    kept: dict[str, Any] | None = None, now: datetime | None = None, source: str = "cm_agg",
) -> pa.Table:
    """RFM scores and BG/NBD + Gamma-Gamma predictions for every row of ``source`` (a constant table name).

    The rows come back in ``source``'s row order, so the final query pairs
    them with a positional join.  Prediction columns are null when the fit is
    impossible (reason in the report).
    """
    rate = min(1.0, FIT_SAMPLE_MAX / max(n_customers, 1))
    data = store.execute(
        """
        SELECT rowid AS rid, n_days - 1 AS x, date_diff('day', first_d, last_d) AS t_x,
               date_diff('day', first_d, $as_of) AS "T",
               CASE WHEN n_days > 1 THEN (CAST(revenue AS DOUBLE) - first_day_amt) / (n_days - 1) ELSE 0 END AS m,
               (hash(customer_id) % 1000000) < $fit_per_million AS fit,
               date_diff('day', last_d, $as_of) AS recency_days, orders, CAST(revenue AS DOUBLE) AS revenue
        FROM """ + source,  # noqa: S608 - a constant of crm_core.model.build
        {"as_of": as_of, "fit_per_million": int(math.ceil(rate * 1_000_000))},
    ).fetchnumpy()
    rid = np.asarray(data["rid"], dtype=np.int64)
    order = None if np.array_equal(rid, np.arange(rid.size)) else np.argsort(rid)

    def arr(name: str, dtype: Any) -> np.ndarray:
        values = np.asarray(data[name], dtype=dtype)
        return values if order is None else values[order]

    columns: dict[str, pa.Array] = {
        "r_score": pa.array(_scores(thresholds["r"], arr("recency_days", np.float64), False)),
        "f_score": pa.array(_scores(thresholds["f"], arr("orders", np.float64), True)),
        "m_score": pa.array(_scores(thresholds["m"], arr("revenue", np.float64), True)),
    }
    predictions = _predict(
        report, n_customers, arr("x", np.float64), arr("t_x", np.float64), arr("T", np.float64),
        arr("m", np.float64), arr("fit", bool), kept, now,
    )
    for name in PREDICTION_COLUMNS:
        values = predictions[name] if predictions else np.full(rid.size, np.nan)
        columns[name] = pa.array(values, mask=~np.isfinite(values), type=pa.float64())
    return pa.table(columns)


def _predict(
    report: ModelReport, n_customers: int, x: np.ndarray, tx: np.ndarray, T: np.ndarray, m: np.ndarray, fit: np.ndarray,
    kept: dict[str, Any] | None = None, now: datetime | None = None,
) -> dict[str, np.ndarray] | None:
    """Fit BG/NBD and Gamma-Gamma on the sample ``fit`` (or use ``kept``, see :func:`kept_fit`) and predict per customer.

    Returns arrays named by :data:`PREDICTION_COLUMNS` (NaN = empty) or None
    when the BG/NBD fit is impossible (reason in the report).
    """
    try:
        from crm_core.model import clv
    except ImportError:
        report.prediction_error = "予測モジュール（crm_core.model.clv）が利用できないため、予測列は空欄です。"
        return None
    if n_customers == 0:
        report.prediction_error = "顧客がいないため、予測はできません。"
        return None
    if kept is not None:
        bg = clv.BetaGeoParams(**kept["bg_params"])
        gg = clv.GammaGammaParams(**kept["gg_params"])
        report.bg_params, report.gg_params = dict(kept["bg_params"]), dict(kept["gg_params"])
        report.fit_customers = int(kept.get("fit_customers") or 0)
        report.fitted_at, report.fitted_customers = kept["fitted_at"], int(kept["fitted_customers"])
        report.fit_reused = True
    else:
        report.fit_customers = int(fit.sum())
        report.fitted_at = (now or datetime.now()).isoformat(timespec="seconds")
        report.fitted_customers = int(n_customers)
        try:
            bg = clv.fit_beta_geo(x[fit], tx[fit], T[fit])
        except InputError as exc:
            report.prediction_error = exc.message
            return None
        report.bg_params = {k: float(v) for k, v in asdict(bg).items()}
        gg = None
        try:
            gg = clv.fit_gamma_gamma(x[fit], m[fit])
            report.gg_params = {k: float(v) for k, v in asdict(gg).items()}
        except InputError as exc:
            report.warnings.append(f"予測購入金額（CLV）は計算できませんでした: {exc.message}")

    # Everything except spend depends on (x, t_x, T) only: evaluate once per
    # distinct triple (several times fewer rows than customers).
    # x, t_x and T are whole days below 2**21, so one int64 identifies a triple.
    key = (x.astype(np.int64) << 42) | (tx.astype(np.int64) << 21) | T.astype(np.int64)
    uniq, inverse = np.unique(key, return_inverse=True)
    inverse = inverse.ravel()
    ux = (uniq >> 42).astype(np.float64)
    utx = ((uniq >> 21) & ((1 << 21) - 1)).astype(np.float64)
    uT = (uniq & ((1 << 21) - 1)).astype(np.float64)
    u_alive = clv.p_alive(bg, ux, utx, uT)
    u_churn = clv.prob_no_purchase(bg, float(CHURN_HORIZON_DAYS), ux, utx, uT)
    u_orders = clv.expected_purchases(bg, float(PREDICTION_HORIZON_DAYS), ux, utx, uT)
    u_next = _next_order_days(clv, bg, ux, utx, uT)
    expected_orders = u_orders[inverse]
    if gg is not None:
        # Same as clv.predicted_clv (documented as expected_purchases * expected_spend),
        # reusing the per-triple expected purchases instead of recomputing 2F1 per customer.
        clv_365 = np.round(expected_orders * clv.expected_spend(gg, x, m))
    else:
        clv_365 = np.full(x.shape, np.nan)
    return {
        "p_alive": u_alive[inverse],
        "churn_probability_90d": u_churn[inverse],
        "expected_orders_365d": expected_orders,
        "predicted_clv_365d": clv_365,
        "next_days": u_next[inverse],
    }
