"""Nothing the marketer reads refers to our internal documents (issue 11, item 15: 「FACTS.md §6」 in 出典)."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest

from crm_core.db import Store
from crm_core.events import calendar as cal

ROOT = Path(__file__).resolve().parents[1]
INTERNAL = ("FACTS.md", "ARCHITECTURE.md", "§")


def _docstring_ids(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
        # attribute docstrings: a bare string right after an assignment
        for field in ("body", "orelse"):
            stmts = getattr(node, field, None)
            if not isinstance(stmts, list):
                continue
            for prev, stmt in zip(stmts, stmts[1:]):
                if isinstance(prev, (ast.Assign, ast.AnnAssign)) and isinstance(stmt, ast.Expr) \
                        and isinstance(stmt.value, ast.Constant):
                    ids.add(id(stmt.value))
    return ids


def _shown_strings(path: Path) -> list[str]:
    """String constants of a module that are not docstrings (the text that can reach a page)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstring_ids(tree)
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


@pytest.mark.parametrize("path", sorted([*ROOT.glob("crm_core/**/*.py"), *ROOT.glob("pages/**/*.py"), ROOT / "app.py"]),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_internal_document_reference_in_strings(path):
    bad = [s for s in _shown_strings(path) if any(word in s for word in INTERNAL)]
    assert not bad, bad


def test_bundled_calendar_names_its_sources_without_internal_references():
    text = cal.BUNDLE_PATH.read_text(encoding="utf-8")
    assert not any(word in text for word in INTERNAL)


def test_event_sources_shown_on_the_page_are_clean_even_for_old_stored_overrides():
    store = Store(":memory:")
    cal._ensure_table(store)  # created before the first own event or correction
    # an override saved by an older version copied the old source text
    store.execute("INSERT INTO calendar_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, FALSE, ?)",
                  ["super_sale-2026-06-04", "super_sale", "楽天スーパーSALE 2026年6月", dt.datetime(2026, 6, 4, 20),
                   dt.datetime(2026, 6, 11, 1, 59, 59), None, "pattern", "自社で修正（元: 予測: 過去の開催パターン (FACTS.md §6)）",
                   "", dt.datetime(2026, 5, 1)])
    events = cal.list_events(store, dt.date(2025, 1, 1), dt.date(2027, 12, 31))
    assert not events.source.str.contains("FACTS|§").any()
    assert "自社で修正（元: 予測: 過去の開催パターン）" in set(events.source)
    from crm_core.planning import calendar_views

    table = calendar_views.events_table(events)
    assert not table["出典"].str.contains("FACTS|§").any()


@pytest.mark.parametrize("path", sorted([*ROOT.glob("pages/**/*.py"), ROOT / "app.py"]), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_locale_dependent_yen_format_in_tables(path):
    """Streamlit's format="yen" shows ￥ in Japanese browsers and ¥ elsewhere: one yen sign (issue 11, item 16)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    yen_formats = [k for k in ast.walk(tree) if isinstance(k, ast.keyword) and k.arg == "format"
                   and isinstance(k.value, ast.Constant) and k.value.value in ("yen", "dollar", "euro")]
    assert not yen_formats
    assert not [s for s in _shown_strings(path) if "￥" in s]


def test_pages_use_no_width_argument_streamlit_has_retired():
    """``use_container_width`` logs a deprecation on every run (「will be removed after 2025-12-31」): ``width`` instead."""
    found = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "pages").rglob("*.py")) + [ROOT / "app.py"]
             if "use_container_width" in p.read_text(encoding="utf-8")]
    assert found == []


@pytest.mark.parametrize("path", sorted(p for p in ROOT.glob("pages/**/*.py") if p.parent.name != "ui"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_draw_tables_through_ui_so_gaps_read_a_dash(path):
    """``st.dataframe``/``st.data_editor`` write a grey 「None」 in an empty cell; ``ui.dataframe``/``ui.data_editor`` write —."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    direct = [n.lineno for n in ast.walk(tree)  # st.dataframe, a column's c1.dataframe, st.sidebar.data_editor …
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("dataframe", "data_editor")
              and not (isinstance(n.func.value, ast.Name) and n.func.value.id == "ui")]
    assert not direct, f"dataframe/data_editor drawn directly on lines {direct}: use ui.dataframe/ui.data_editor"
