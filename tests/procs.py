"""Helpers for tests with real processes: generic order files, CLI runs, a process that holds the store."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERIC_MAP = ["order_id", "ordered_at", "email", "total_amount", "product_id", "quantity", "line_amount"]


def write_orders(path: Path, lines: int, seed: int = 1, customers: int = 50_000) -> int:
    """A generic order CSV of ``lines`` lines (1-3 lines per order); returns the number of orders."""
    r = random.Random(seed)
    orders = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(GENERIC_MAP) + "\n")
        line = 0
        while line < lines:
            orders += 1
            k = min(r.randint(1, 3), lines - line)
            day = f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} 12:00:00"
            c = r.randrange(customers)
            for _ in range(k):
                f.write(f"S{seed}-{orders},{day},c{c}@example.jp,{3000 * k},P{r.randrange(50)},1,3000\n")
            line += k
    return orders


def like_a_terminal() -> None:
    """``preexec_fn`` of a child a test stops with Ctrl-C: SIGINT reaches it as in a terminal, however the test run
    was started (a shell's background job, ``cmd &``, starts with SIGINT ignored, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def env(db: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "CRM_DB": str(db), "CRM_NO_SAMPLE": "1", "PYTHONPATH": str(ROOT), **extra}


def import_cmd(db: Path, csv: Path, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "crm_core", "import", str(csv), "--db", str(db), "--format", "generic"]
    for f in GENERIC_MAP:
        args += ["--map", f"{f}={f}"]
    return args + list(extra)


def start_import(db: Path, csv: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(import_cmd(db, csv, *extra), cwd=ROOT, env=env(db),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


HOLD = """
import sys, time
from crm_core.db import Store
mode = sys.argv[2] if len(sys.argv) > 2 else ""
s = Store(sys.argv[1], snapshot=mode == "snapshot", read_only=True if mode == "read" else None)
s.execute("SELECT 1")
print("held", flush=True)
sys.stdin.readline()
s.close()
print("released", flush=True)
"""


class Holder:
    """A process that holds the store until :meth:`release` (or is killed)."""

    def __init__(self, db: Path, snapshot: bool = False, read: bool = False) -> None:
        """``read``: a reader (the store opened read-only, as read commands open it)."""
        argv = [sys.executable, "-c", HOLD, str(db)] + (["snapshot"] if snapshot else ["read"] if read else [])
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env(db),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "released"
        self.proc.wait(timeout=30)


def wait_until(predicate, timeout: float = 60.0, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(every)


def counts(db: Path) -> tuple[int, int, int]:
    """(orders, order_lines, imports) read in this process (opens and closes the store)."""
    from crm_core.db import Store

    with Store(db) as s:
        return (s.table_count("orders"), s.table_count("order_lines"), s.table_count("imports"))


def sample_files(folder: Path, customers: int = 200) -> dict[str, Path]:
    """The seeded sample shop's export files (Rakuten, Shopify, contacts, products)."""
    from crm_core.sample.generate import generate_sample

    return {k: Path(v) for k, v in generate_sample(folder, customers=customers, seed=7).items()}


def write_shopify(path: Path, template: Path, copies: int, tag: str = "x") -> int:
    """A Shopify order export of ``copies`` renamed copies of ``template``'s orders; returns its line count."""
    lines = template.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(header)
        for k in range(copies):
            for line in body:
                name, rest = line.split(",", 1)
                f.write(f"#{tag}{k}-{name.lstrip('#')},{rest}")
                n += 1
    return n


def stop_with(proc: subprocess.Popen, sig: int, timeout: float = 30) -> str:
    """Send ``sig`` and return the process's output; fail the test if it has not ended within ``timeout`` s."""
    import pytest

    proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the process did not stop on signal {sig}:\n{out}")
    return out
