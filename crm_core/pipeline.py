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
    """Rebuild the customer model and recommendations; return Japanese warnings."""
    warnings: list[str] = []
    if store.is_empty():
        return warnings
    try:
        from crm_core import model
    except ImportError:  # the model module is optional while it is being built
        return warnings
    try:
        report = model.rebuild(store)
        warnings.extend(getattr(report, "warnings", []) or [])
    except InputError as exc:
        warnings.append(exc.message)
    try:
        from crm_core import basket
    except ImportError:
        return warnings
    build = getattr(basket, "build_recommendations", None)
    if build is not None:
        build(store)
    return warnings
