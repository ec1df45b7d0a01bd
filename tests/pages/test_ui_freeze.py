"""The console freezes the objects its imports created once per process (the per-run garbage collection skips them)."""

from __future__ import annotations

import gc
from pathlib import Path

from streamlit.testing.v1 import AppTest

from pages import ui

ROOT = Path(__file__).resolve().parents[2]



def test_the_console_freezes_startup_objects_once_per_process(monkeypatch, tmp_path):
    monkeypatch.setenv("CRM_DB", str(tmp_path / "crm.duckdb"))
    monkeypatch.setenv("CRM_NO_SAMPLE", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # the libraries' modules, classes and tables (≈ 130,000 objects)
    kept = [[object()] for _ in range(5_000)]  # objects a later page run creates
    ui.freeze_startup_objects()
    at.run()
    assert gc.get_freeze_count() < frozen + 2_000  # not frozen again (5,000 more): run-time objects stay collectable
    assert kept
