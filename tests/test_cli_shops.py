"""``--shop NAME`` on the command line: one store per shop, nothing shared; users per shop."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests import fixtures as fx

ROOT = Path(__file__).resolve().parents[1]


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crm_core", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "CRM_NO_SAMPLE": "1", "HOME": str(tmp_path),
             "CRM_SHOPS_DIR": str(tmp_path / "shops"), "CRM_DB": str(tmp_path / "default.duckdb")},
    )


def test_import_into_one_shop_leaves_the_others_empty(tmp_path):
    r = fx.rakuten_current(tmp_path / "r.csv")
    done = cli(tmp_path, "import", str(r), "--shop", "rakuten-main")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["orders_added"] == 3
    assert (tmp_path / "shops" / "rakuten-main" / "crm.duckdb").exists()
    other = cli(tmp_path, "customers", "--out", str(tmp_path / "o.csv"), "--shop", "shopify")
    assert other.returncode == 0, other.stderr
    assert len((tmp_path / "o.csv").read_text(encoding="utf-8-sig").splitlines()) == 1  # header only
    top = cli(tmp_path, "--shop", "rakuten-main", "customers", "--out", str(tmp_path / "m.csv"))
    assert top.returncode == 0, top.stderr
    assert len((tmp_path / "m.csv").read_text(encoding="utf-8-sig").splitlines()) > 1
    assert not (tmp_path / "default.duckdb").exists()


def test_shop_and_db_together_and_bad_names_are_refused_in_japanese(tmp_path):
    both = cli(tmp_path, "customers", "--out", "x.csv", "--shop", "a", "--db", str(tmp_path / "x.duckdb"))
    assert both.returncode == 2 and "--shop" in both.stderr
    bad = cli(tmp_path, "customers", "--out", "x.csv", "--shop", "../etc")
    assert bad.returncode == 2 and "ショップ名" in bad.stderr


def test_users_are_per_shop_and_named_in_the_audit_log(tmp_path):
    added = cli(tmp_path, "users", "add", "Tanaka@Example.jp", "担当", "--name", "田中", "--shop", "a")
    assert added.returncode == 0, added.stderr
    [row] = json.loads(added.stdout)
    assert (row["email"], row["name"], row["role"]) == ("tanaka@example.jp", "田中", "担当")
    assert row["added_by"].startswith("cli:")
    assert json.loads(cli(tmp_path, "users", "list", "--shop", "b").stdout) == []
    bad = cli(tmp_path, "users", "add", "not-an-address", "閲覧", "--shop", "a")
    assert bad.returncode == 2 and "メールアドレス" in bad.stderr
