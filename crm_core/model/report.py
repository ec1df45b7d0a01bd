"""What a model build reports (counts, timings, fitted parameters, warnings) and the parameters it runs with."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


@dataclass
class ModelReport:
    """What :func:`rebuild` did.

    Attributes
    ----------
    customers : int
        Rows written to ``customer_model``.
    as_of : date or None
        The day the table describes (None for an empty store).
    bg_params, gg_params : dict or None
        Fitted BG/NBD (``r, alpha, a, b``; alpha in days) and Gamma-Gamma
        (``p, q, v``) parameters, None when not fitted.
    fit_customers : int
        Customers that entered the fits.
    fitted_at : str or None
        When the parameters were fitted (ISO time, JST); older than this build when reused.
    fitted_customers : int
        Customers in the model when the parameters were fitted.
    fit_reused : bool
        True when this build kept the previous fit (see :data:`crm_core.model.predict.REFIT_DAYS`).
    prediction_error : str or None
        Japanese reason why the prediction columns are empty, if they are.
    seconds : dict
        Wall time per step.
    warnings : list of str
        Japanese notes for the marketer.
    touched : int or None
        Customers recomputed from their orders when the build updated only the customers an
        import touched (:func:`crm_core.model.build.rebuild` with ``touched``); None for a
        build from all orders.
    facts : dict or None
        What the stored per-customer aggregates (``customer_model_facts``) describe:
        ``as_of``, ``first_day``, ``complete`` (every order counted) and ``sales`` (a digest of
        the sale windows they were labelled with).  A build for the touched customers only
        reuses them when they still hold.
    """

    customers: int = 0
    as_of: date | None = None
    bg_params: dict[str, float] | None = None
    gg_params: dict[str, float] | None = None
    fit_customers: int = 0
    fitted_at: str | None = None
    fitted_customers: int = 0
    fit_reused: bool = False
    prediction_error: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    touched: int | None = None
    facts: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        out = asdict(self)
        out["as_of"] = self.as_of.isoformat() if self.as_of else None
        return out


class _Timer:
    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = round(self.seconds.get(step, 0.0) + time.perf_counter() - start, 4)


class _Params:
    """Collects bound parameters under generated names (``$p0``, ``$p1`` ...)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return "$" + name
