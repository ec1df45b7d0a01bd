"""Shared fixtures and markers of the test suite.

- ``store``: an empty in-memory store (modules that need a filled shop override it locally,
  using the builders in ``tests/segment_shop.py``, ``tests/analytics_shop.py`` or
  ``tests/servers/customers.py``);
- every test under ``tests/e2e`` is marked ``e2e`` (a real browser), so
  ``pytest -m "not e2e"`` is the quick loop; AppTest pages, the sample shop and command-line
  tests are marked ``slow`` too, so ``-m "not slow"`` is the quickest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_core.db import Store

E2E_DIR = Path(__file__).resolve().parent / "e2e"
SLOW_MODULES = ("test_page_*.py", "test_sample.py", "test_results_sample.py", "test_cli.py",
                "test_store_processes.py", "test_worker.py", "test_service.py")
"""AppTest pages, the generated sample shop and command-line subprocesses: seconds per test."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        if E2E_DIR in path.parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
        elif any(path.match(pattern) for pattern in SLOW_MODULES):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def store():
    """An empty in-memory store, closed after the test."""
    s = Store(":memory:")
    yield s
    s.close()
