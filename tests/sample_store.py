"""The sample shop as a DuckDB file, generated once per test session and copied for each test.

Loading the sample shop (generator + real importer + its past campaigns) takes a
few seconds; tests that need a realistic store copy the finished file instead
of loading it again.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from crm_core.db import Store

_CACHE: dict[int, Path] = {}


def sample_db(dest: Path, customers: int = 600) -> Path:
    """Copy a sample-shop store file (``customers`` customers) to ``dest`` and return it."""
    if customers not in _CACHE:
        from crm_core.sample.load import load_sample

        folder = Path(tempfile.mkdtemp(prefix="crm-sample-db-"))
        path = folder / "sample.duckdb"
        store = Store(path)
        load_sample(store, customers=customers)
        store.execute("CHECKPOINT")
        store.close()
        _CACHE[customers] = path
    shutil.copyfile(_CACHE[customers], dest)
    return dest
