"""What runs after data changes: derived tables rebuilt in order.

The importer calls :func:`after_import`; the command line and the app call
it after changing settings that affect the model.
"""

from __future__ import annotations

import logging

from crm_core.db import Store
from crm_core.errors import InputError

log = logging.getLogger(__name__)


def after_import(store: Store) -> list[str]:
    """Rebuild the customer model, recommendations and saved-segment sizes; return Japanese warnings."""
    warnings: list[str] = []
    if store.is_empty():
        return warnings
    from crm_core import model

    try:
        report = model.rebuild(store)
        warnings.extend(getattr(report, "warnings", []) or [])
    except InputError as exc:
        warnings.append(exc.message)
    from crm_core import basket, segment_library

    basket.build_recommendations(store)
    segment_library.measure_all(store)  # size history of saved segments
    return warnings
