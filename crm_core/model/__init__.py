"""Stage 3 — the customer model: one row per customer (RFM, ranks, events, predictions).

Modules, bottom-up: ``table`` (the ``customer_model`` contract, its as-of day, reading),
``settings`` (RFM thresholds, segment grid, ranks), ``clv`` (BG/NBD + Gamma-Gamma),
``build`` (:func:`rebuild`; purchases as :mod:`crm_core.purchases` defines them), ``export`` (CSV for Excel).  Callers use the names below
(``from crm_core import model; model.rebuild(store)``).
"""

from crm_core.model.build import (
    CHURN_HORIZON_DAYS,
    PREDICTION_COLUMNS,
    PREDICTION_HORIZON_DAYS,
    ModelReport,
    aggregate_orders,
    model_as_of,
    rebuild,
    sale_windows,
)
from crm_core.model.export import EXPORT_COLUMNS, export_customers
from crm_core.model.settings import (
    DEFAULT_ORDER_RANK_THRESHOLDS,
    DEFAULT_RANK_THRESHOLDS,
    DEFAULT_RFM_SEGMENTS,
    DEFAULT_RFM_THRESHOLDS,
    OTHER_SEGMENT,
    QUINTILE,
    RANK_KEYS,
    SETTING_RANKS,
    SETTING_SEGMENTS,
    SETTING_THRESHOLDS,
    rank_basis,
    rank_gap_text,
    rank_thresholds,
    rfm_segments,
    rfm_thresholds,
    set_rank_thresholds,
    set_rfm_segments,
    set_rfm_thresholds,
)
from crm_core.model.table import (
    COLUMN_LABELS,
    COLUMNS,
    META_TABLE,
    TABLE,
    as_of_default,
    current_sizes,
    customer_table,
    last_report,
    stored_as_of,
)

__all__ = [
    "CHURN_HORIZON_DAYS", "COLUMNS", "COLUMN_LABELS", "DEFAULT_ORDER_RANK_THRESHOLDS", "DEFAULT_RANK_THRESHOLDS",
    "DEFAULT_RFM_SEGMENTS", "DEFAULT_RFM_THRESHOLDS", "EXPORT_COLUMNS", "META_TABLE", "OTHER_SEGMENT", "PREDICTION_COLUMNS",
    "PREDICTION_HORIZON_DAYS", "QUINTILE", "RANK_KEYS", "SETTING_RANKS", "SETTING_SEGMENTS", "SETTING_THRESHOLDS",
    "TABLE", "ModelReport", "aggregate_orders", "as_of_default", "current_sizes", "customer_table", "export_customers",
    "last_report", "model_as_of", "rank_basis", "rank_gap_text", "rank_thresholds", "rebuild", "rfm_segments", "rfm_thresholds",
    "sale_windows", "set_rank_thresholds", "set_rfm_segments", "set_rfm_thresholds", "stored_as_of",
]
