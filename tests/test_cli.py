"""The command line, run as a real subprocess against a real DuckDB file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from crm_core.db import Store
from tests import fixtures as fx

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, db: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crm_core", *args, "--db", str(db)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "CRM_NO_SAMPLE": "1"},
    )


def test_import_prints_json_and_is_idempotent(tmp_path):
    db = tmp_path / "crm.duckdb"
    r = fx.rakuten_current(tmp_path / "r.csv")
    s = fx.shopify_orders(tmp_path / "s.csv")
    first = cli("import", str(r), str(s), db=db)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    for key in ("orders_added", "orders_updated", "orders_unchanged", "lines", "customers", "rows_rejected", "errors"):
        assert key in out
    assert (out["orders_added"], out["lines"], out["customers"], out["errors"]) == (5, 7, 4, [])
    second = json.loads(cli("import", str(r), db=db).stdout)
    assert (second["orders_added"], second["orders_updated"], second["orders_unchanged"]) == (0, 0, 3)


def test_failed_import_exits_nonzero_and_leaves_store(tmp_path):
    db = tmp_path / "crm.duckdb"
    cli("import", str(fx.rakuten_current(tmp_path / "r.csv")), db=db)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n", encoding="utf-8")
    res = cli("import", str(fx.shopify_orders(tmp_path / "s.csv")), str(bad), db=db)
    assert res.returncode == 2
    assert "認識できません" in res.stderr
    assert json.loads(res.stdout)["errors"]
    store = Store(db)
    assert store.scalar("SELECT count(*) FROM orders") == 3  # the Shopify file of the failed batch is not in
    store.close()


def test_generic_map_and_saved_mapping(tmp_path):
    db = tmp_path / "crm.duckdb"
    path = fx.write_csv(
        tmp_path / "y.csv",
        ["OrderId", "OrderTime", "TotalPrice", "BillMailAddress"],
        [{"OrderId": "1", "OrderTime": "2025-01-01 10:00:00", "TotalPrice": "1000", "BillMailAddress": "a@example.jp"}],
        "cp932",
    )
    res = cli(
        "import", str(path), "--map", "OrderId=order_id", "--map", "OrderTime=ordered_at",
        "--map", "TotalPrice=total_amount", "--map", "BillMailAddress=email", "--save-mapping", "yahoo", db=db,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["orders_added"] == 1
    again = cli("import", str(path), "--mapping-name", "yahoo", db=db)
    assert json.loads(again.stdout)["orders_unchanged"] == 1


def test_bad_map_argument(tmp_path):
    res = cli("import", str(fx.rakuten_current(tmp_path / "r.csv")), "--map", "nonsense", db=tmp_path / "x.duckdb")
    assert res.returncode == 2
    assert "--map" in res.stderr


def test_profit_and_line_reach_commands(tmp_path):
    """Orders, a Shopify products export with costs and a LINE link file through the command line."""
    from tests import profit_shop as shop

    db = tmp_path / "crm.duckdb"
    orders = fx.write_csv(tmp_path / "o.csv", shop.ORDER_HEADER, shop.order_rows(), "utf-8")
    maps = [a for col, fld in shop.ORDER_MAP.items() for a in ("--map", f"{col}={fld}")]
    assert cli("import", str(orders), "--format", "generic", *maps, db=db).returncode == 0  # its headers look like Rakuten's
    res = cli("import", str(shop.shopify_products(tmp_path / "products_export.csv")), db=db)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["files"][0]["format"] == "shopify_products"
    links = fx.write_csv(tmp_path / "links.csv", ["注文番号", "LINEユーザーID"], [{"注文番号": "O1", "LINEユーザーID": "U_a"}], "utf-8")
    res = cli("import", str(links), "--map", "注文番号=order_id", "--map", "LINEユーザーID=line_user_id", "--kind", "line_links", db=db)
    assert res.returncode == 0, res.stderr
    profit = json.loads(cli("profit", db=db).stdout)
    # Only O3's line (JAN 4901234567894 -> P3, cost 1,500) has a cost: 500 on 2,000 of 13,000.
    assert (profit["gross_profit"], profit["covered_revenue"], profit["line_revenue"]) == (500.0, 2000.0, 13000.0)
    reach = json.loads(cli("line-reach", db=db).stdout)
    assert (reach["customers"], reach["line_customers"]) == (3, 1)
    assert [h["line_customers"] for h in reach["history"]] == [0, 0, 1]
