"""What runs after data changes: derived tables rebuilt in order.

The importer calls :func:`after_import`; the command line and the app call
it after changing settings that affect the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from crm_core.db import Store
from crm_core.errors import InputError

log = logging.getLogger(__name__)


def after_import(store: Store, progress: Callable[[float, str], None] | None = None) -> list[str]:
    """Rebuild the customer model, recommendations and saved-segment sizes; return Japanese warnings.

    ``progress(fraction, japanese_message)``, when given, hears the start of
    each step (fractions 0 to 1 of this work); on a shop of millions of
    customers the steps take tens of seconds.
    """
    warnings: list[str] = []
    if store.is_empty():
        return warnings
    from crm_core.model import build as model

    def say(fraction: float, text: str) -> None:
        if progress:
            progress(fraction, text)

    say(0.0, "顧客分析（RFM・ランク・予測）を計算しています…")
    try:
        report = model.rebuild(store)
        warnings.extend(getattr(report, "warnings", []) or [])
    except InputError as exc:
        warnings.append(exc.message)
    from crm_core.analytics import basket
    from crm_core.audience import library as segment_library

    say(0.3, "お客様ごとのおすすめ商品を選んでいます…")
    basket.build_recommendations(store)
    say(0.95, "保存したセグメントの人数を数えています…")
    segment_library.measure_all(store)  # size history of saved segments
    return warnings
