"""Segment rules as people type them: comparison symbols, refused operators that list the keys, too-deep rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crm_core.audience import segments as S
from crm_core.errors import InputError
from tests.segment_shop import segment_store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store():
    s = segment_store()
    yield s
    s.close()


@pytest.mark.parametrize(
    ("symbol", "key"),
    [(">=", "gte"), ("≥", "gte"), ("≧", "gte"), ("＞＝", "gte"), ("=", "eq"), ("==", "eq"), ("!=", "ne"), ("≠", "ne"),
     ("<>", "ne"), ("<", "lt"), ("≤", "lte"), ("<=", "lte"), (">", "gt"), (" GTE ", "gte")],
)
def test_symbols_mean_the_operator_keys(store, symbol, key):
    typed = {"all": [{"field": "orders", "op": symbol, "value": 2}]}
    canonical = {"all": [{"field": "orders", "op": key, "value": 2}]}
    assert S.validate(typed) == canonical
    assert S.count(store, typed) == S.count(store, canonical)
    assert S.describe(typed) == S.describe(canonical)


def test_refused_operator_lists_the_accepted_keys_and_symbols():
    with pytest.raises(InputError) as err:
        S.validate({"all": [{"field": "recency_days", "op": "~", "value": 90}]})
    message = err.value.message
    for expected in ("「~」", "gte", "lte", ">=", "≥", "!=", "between", "≧ 以上"):
        assert expected in message


def test_symbol_for_a_field_that_does_not_take_it_is_refused_by_key():
    with pytest.raises(InputError) as err:
        S.validate({"all": [{"field": "prefecture", "op": ">=", "value": "東京都"}]})
    assert "「>=」という条件は使えません" in err.value.message
    assert "eq" in err.value.message and "contains" in err.value.message


def test_deeply_nested_json_is_a_clear_error_not_a_recursion_error():
    deep = '{"not":' * 50_000 + "{}" + "}" * 50_000
    with pytest.raises(InputError, match="入れ子が深すぎます"):
        S.load_rule(deep)


@pytest.mark.slow
def test_cli_deep_rule_file_exits_2_with_japanese(tmp_path):
    rule = tmp_path / "deep.json"
    rule.write_text('{"not":' * 100_000 + "{}" + "}" * 100_000, encoding="utf-8")
    res = subprocess.run(
        [sys.executable, "-m", "crm_core", "segment", "count", "--rule", str(rule), "--db", str(tmp_path / "x.duckdb")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 2
    assert "入れ子が深すぎます" in res.stderr and "8段" in res.stderr
    assert "Traceback" not in res.stderr
    assert json.loads(res.stdout)["errors"]
