"""Saved segments, the editor's tree helpers and the ``segment`` command line."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from crm_core import cli
from crm_core.audience import editor as E
from crm_core.audience import library as L
from crm_core.audience import segments as S
from crm_core.audience.fields import FIELDS, OPERATORS
from crm_core.db import Store
from crm_core.errors import InputError
from tests.segment_shop import fill_store, segment_store

ROOT = Path(__file__).resolve().parents[2]
DORMANT = {"all": [{"field": "recency_days", "op": "gte", "value": 90}]}  # C2 C4 C7
TOKYO = {"all": [{"field": "prefecture", "op": "eq", "value": "東京都"}]}  # C1 C3 C7
T0 = dt.datetime(2026, 11, 1, 9, 0)


@pytest.fixture()
def store():
    s = segment_store()
    yield s
    s.close()


# ---------------------------------------------------------------------------
# Saved segments
# ---------------------------------------------------------------------------


def test_save_list_and_get(store):
    assert L.list_segments(store) == []
    sid = L.save_segment(store, "  休眠90日 ", DORMANT, now=T0)
    [seg] = L.list_segments(store)
    assert seg == {"segment_id": sid, "name": "休眠90日", "rule": DORMANT, "created_at": T0, "updated_at": T0,
                   "customers": 3, "measured_at": T0}
    assert L.get_segment(store, sid) == seg
    # the rule is stored as JSON data, never SQL
    stored = store.scalar("SELECT rule FROM segments WHERE segment_id = ?", [sid])
    assert json.loads(stored) == DORMANT and "SELECT" not in stored


def test_save_validates_rule_and_name(store):
    with pytest.raises(InputError, match="という項目はありません"):
        L.save_segment(store, "x", {"field": "nope", "op": "eq", "value": 1})
    with pytest.raises(InputError, match="セグメント名を入力してください"):
        L.save_segment(store, "  ", DORMANT)
    with pytest.raises(InputError, match="60文字以内"):
        L.save_segment(store, "あ" * 61, DORMANT)
    with pytest.raises(InputError, match="使えない文字"):
        L.save_segment(store, "a\nb", DORMANT)
    L.save_segment(store, "休眠", DORMANT)
    with pytest.raises(InputError, match="すでにあります"):
        L.save_segment(store, "休眠", TOKYO)
    assert len(L.list_segments(store)) == 1


def test_hostile_name_is_stored_verbatim(store):
    name = "'); DROP TABLE segments; --"
    sid = L.save_segment(store, name, DORMANT)
    assert L.get_segment(store, sid)["name"] == name
    assert store.scalar("SELECT count(*) FROM orders") > 0


def test_update_rename_duplicate_delete(store):
    sid = L.save_segment(store, "休眠", DORMANT, now=T0)
    later = T0 + dt.timedelta(days=1)
    assert L.save_segment(store, "東京", TOKYO, segment_id=sid, now=later) == sid
    seg = L.get_segment(store, sid)
    assert (seg["name"], seg["rule"], seg["created_at"], seg["updated_at"]) == ("東京", TOKYO, T0, later)
    L.rename_segment(store, sid, "東京都のお客様")
    assert L.get_segment(store, sid)["name"] == "東京都のお客様"
    copy_id = L.duplicate_segment(store, sid)
    copy2 = L.duplicate_segment(store, sid)
    names = [s["name"] for s in L.list_segments(store)]
    assert names == ["東京都のお客様", "東京都のお客様のコピー", "東京都のお客様のコピー2"]
    assert L.get_segment(store, copy_id)["rule"] == TOKYO
    other = L.save_segment(store, "休眠", DORMANT)
    with pytest.raises(InputError, match="すでにあります"):
        L.rename_segment(store, other, "東京都のお客様")
    L.delete_segment(store, copy2)
    assert [s["segment_id"] for s in L.list_segments(store)] == [other, sid, copy_id]
    assert store.scalar("SELECT count(*) FROM segment_sizes WHERE segment_id = ?", [copy2]) == 0
    with pytest.raises(InputError, match="見つかりません"):
        L.get_segment(store, copy2)


def test_size_history(store):
    sid = L.save_segment(store, "休眠", DORMANT, now=T0)
    assert not L.record_size(store, sid, 3, T0 + dt.timedelta(hours=2))  # same size, same day
    assert L.record_size(store, sid, 5, T0 + dt.timedelta(hours=3))
    assert L.record_size(store, sid, 5, T0 + dt.timedelta(days=1))
    assert L.size_history(store, sid)["customers"].tolist() == [3, 5, 5]
    assert L.get_segment(store, sid)["customers"] == 5
    assert L.measure_all(store, T0 + dt.timedelta(days=2)) == {sid: 3}
    assert L.size_history(store, sid)["customers"].tolist() == [3, 5, 5, 3]


def test_saving_before_the_model_exists_records_no_size():
    s = Store(":memory:")
    sid = L.save_segment(s, "休眠", DORMANT)
    assert L.get_segment(s, sid)["customers"] is None
    assert L.measure_all(s) == {}


# ---------------------------------------------------------------------------
# Editor helpers (pure)
# ---------------------------------------------------------------------------

COND = {"field": "orders", "op": "gte", "value": 2}
TREE = {"all": [COND, {"not": {"any": [{"field": "prefecture", "op": "eq", "value": "東京都"}]}}]}


def test_tree_paths():
    assert E.get(TREE, (1,)) == TREE["all"][1]
    assert E.get(TREE, (1, 0)) == {"field": "prefecture", "op": "eq", "value": "東京都"}
    added = E.append(TREE, (1,), COND)
    assert E.get(added, (1, 1)) == COND and TREE["all"][1]["not"]["any"] == [{"field": "prefecture", "op": "eq", "value": "東京都"}]
    assert E.remove(TREE, (1, 0)) == {"all": [COND, {"not": {"any": []}}]}
    assert E.remove(TREE, ()) == {"all": []}
    assert E.set_negated(TREE, (0,), True)["all"][0] == {"not": COND}
    assert E.set_negated(TREE, (1,), False)["all"][1] == {"any": [{"field": "prefecture", "op": "eq", "value": "東京都"}]}
    assert E.set_mode(TREE, (1,), "all")["all"][1] == {"not": {"all": [{"field": "prefecture", "op": "eq", "value": "東京都"}]}}
    assert E.unwrap({"not": {"not": COND}}) == (COND, False)
    assert E.depth(TREE) == 2
    assert E.as_root(COND) == {"all": [COND]}
    assert E.as_root({"not": COND}) == {"all": [{"not": COND}]}
    assert E.as_root(None) == {"all": []}


@pytest.mark.parametrize("field_key", list(FIELDS))
def test_new_condition_is_valid_or_asks_for_a_value(field_key):
    cond = E.new_condition(field_key, as_of=dt.date(2026, 10, 31), choices=["東京都"])
    problem = S.check(cond)
    assert problem is None or "選んでください" in problem or "入力してください" in problem


def test_change_field_and_op_keep_what_still_fits():
    cond = {"field": "bought_product", "op": "bought", "value": ["P1"], "window": {"days": 30}}
    moved = E.change_field(cond, "bought_category")
    assert moved == {"field": "bought_category", "op": "bought", "value": [], "window": {"days": 30}}
    assert E.change_field(COND, "recency_days") == {"field": "recency_days", "op": "gte", "value": 90}
    assert E.change_op(COND, "lte") == {"field": "orders", "op": "lte", "value": 2}
    assert E.change_op(COND, "between") == {"field": "orders", "op": "between", "value": [2, 4]}
    assert E.change_op(COND, "is_empty") == {"field": "orders", "op": "is_empty"}
    assert E.change_op({"field": "orders", "op": "is_empty"}, "in") == {"field": "orders", "op": "in", "value": [2]}
    tokyo = {"field": "prefecture", "op": "eq", "value": "東京都"}
    assert E.change_op(tokyo, "in") == {"field": "prefecture", "op": "in", "value": ["東京都"]}
    assert E.change_op({"field": "prefecture", "op": "in", "value": ["大阪府", "東京都"]}, "ne")["value"] == "大阪府"


def test_default_values_fit_every_operator():
    for key in FIELDS:
        for op in OPERATORS:
            if op in S.operators_for(key):
                cond = E.new_condition(key, op, as_of=dt.date(2026, 10, 31), choices=["x"])
                problem = S.check(cond)
                assert problem is None or "選んでください" in problem or "入力してください" in problem, (key, op, problem)


# ---------------------------------------------------------------------------
# Command line: segment count / segment export
# ---------------------------------------------------------------------------


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Parse like ``python -m crm_core`` and handle InputError like its main()."""
    import contextlib
    import io

    parser = argparse.ArgumentParser(prog="python -m crm_core")
    parser.add_argument("--db")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.add_segment_commands(sub)
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = args.func(args)
        except InputError as exc:
            sys.stderr.write(f"エラー: {exc.message}\n")
            code = 2
    return code, out.getvalue(), err.getvalue()


@pytest.fixture()
def db_file(tmp_path):
    path = tmp_path / "crm.duckdb"
    s = Store(path)
    fill_store(s)
    s.close()
    return path


def test_cli_count(db_file, tmp_path):
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps({"all": [{"field": "recency_days", "op": "gte", "value": 90},
                                        {"field": "orders", "op": "gte", "value": 2}]}), encoding="utf-8")
    code, out, _ = run_cli(["segment", "count", "--rule", str(rule), "--db", str(db_file)])
    assert code == 0
    assert json.loads(out) == {"count": 3, "description": "最終購入から90日以上 かつ 購入回数2回以上"}


def test_cli_count_accepts_a_saved_segment_file(db_file, tmp_path):
    rule = tmp_path / "saved.json"
    rule.write_text(json.dumps({"name": "東京", "rule": TOKYO}, ensure_ascii=False), encoding="utf-8")
    code, out, _ = run_cli(["segment", "count", "--rule", str(rule), "--db", str(db_file)])
    assert (code, json.loads(out)["count"]) == (0, 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"all": [{"field": "password", "op": "eq", "value": 1}]}', "「password」という項目はありません"),
        ('{"all": [{"field": "orders", "op": "gte", "value": "2; DROP TABLE orders"}]}', "整数を入力してください"),
        ("{not json", "JSONとして読めません"),
        (None, "見つかりません"),
    ],
    ids=["unknown-field", "hostile-value", "bad-json", "missing-file"],
)
def test_cli_bad_rules_exit_2_with_the_reason(db_file, tmp_path, content, message):
    rule = tmp_path / "rule.json"
    if content is not None:
        rule.write_text(content, encoding="utf-8")
    code, out, err = run_cli(["segment", "count", "--rule", str(rule), "--db", str(db_file)])
    assert code == 2 and out == ""
    assert message in err
    s = Store(db_file)
    assert s.scalar("SELECT count(*) FROM orders") == 14
    s.close()


def test_cli_export(db_file, tmp_path):
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps({"field": "orders", "op": "gte", "value": 3}), encoding="utf-8")
    out_csv, ids = tmp_path / "seg.csv", tmp_path / "line.txt"
    code, out, _ = run_cli(["segment", "export", "--rule", str(rule), "--out", str(out_csv), "--encoding", "cp932",
                            "--line-ids", str(ids), "--db", str(db_file)])
    assert code == 0
    report = json.loads(out)
    assert (report["rows"], report["line_ids"], report["encoding"]) == (4, 4, "cp932")
    text = out_csv.read_bytes().decode("cp932")
    assert text.splitlines()[0].startswith("顧客ID,氏名")
    assert "'=HYPERLINK" in text
    assert ids.read_text(encoding="utf-8") == "U1\nU4\nU6\nU8\n"


def test_cli_export_default_encoding_is_utf8_bom(db_file, tmp_path):
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps(TOKYO, ensure_ascii=False), encoding="utf-8")
    out_csv = tmp_path / "seg.csv"
    code, out, _ = run_cli(["segment", "export", "--rule", str(rule), "--out", str(out_csv), "--db", str(db_file)])
    assert code == 0 and json.loads(out)["rows"] == 3
    assert out_csv.read_bytes().startswith(b"\xef\xbb\xbf")


def _segment_registered() -> bool:
    from crm_core.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return "segment" in commands.choices


@pytest.mark.skipif(not _segment_registered(), reason="crm_core.cli does not register the segment commands yet")
def test_python_m_crm_core_segment(db_file, tmp_path):
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps(DORMANT), encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "CRM_NO_SAMPLE": "1"}
    ok = subprocess.run([sys.executable, "-m", "crm_core", "segment", "count", "--rule", str(rule), "--db", str(db_file)],
                        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["count"] == 3
    rule.write_text('{"field": "nope", "op": "eq", "value": 1}', encoding="utf-8")
    bad = subprocess.run([sys.executable, "-m", "crm_core", "segment", "count", "--rule", str(rule), "--db", str(db_file)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode == 2
    assert "「nope」という項目はありません" in bad.stderr
