"""A module that reads an operations table registers it: opened in a fresh process, the table exists (no import-order luck)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

READERS = [
    ("crm_core.scenarios.report", "from crm_core.scenarios import report as M\n"
     "print(M.table(store, ops).shape[0] >= 0)"),
    ("crm_core.results.engagement", "from crm_core.results import engagement as M\n"
     "print(isinstance(M.__name__, str))"),
]


@pytest.mark.parametrize(("module", "code"), READERS, ids=[m for m, _ in READERS])
def test_a_reader_of_the_send_ledger_registers_it_itself(tmp_path, module, code):
    script = (
        "import contextlib, sys\n"
        "from crm_core.db import Store\n"
        "from crm_core import opsdb\n"
        f"{code.splitlines()[0]}\n"
        f"store = Store(sys.argv[1])\n"
        "with contextlib.closing(opsdb.connect(opsdb.ops_path(store.path))) as ops:\n"
        "    names = {r[0] for r in ops.execute(\"SELECT name FROM sqlite_master WHERE type = 'table'\")}\n"
        "    assert {'send_ledger', 'send_campaigns'} <= names, sorted(names)\n"
        f"    {code.splitlines()[1]}\n"
    )
    res = subprocess.run([sys.executable, "-c", script, str(tmp_path / "crm.duckdb")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
