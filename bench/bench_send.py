"""Benchmark live sends: the ledger's overhead against a bare loop of the same requests, and resume after a kill.

1. E-mail: ``--emails`` (100,000) recipients sent through one SMTP
   connection to a local counting SMTP server (aiosmtpd in its own process):
   (a) a bare loop — build each mail (:func:`campaign_message`) and send it,
   nothing recorded; (b) :func:`crm_core.messaging.delivery.deliver` from the
   ledger (intent per chunk, outcome per mail, signed unsubscribe link per
   recipient).  Overhead = (b) / (a) - 1 (target ≤ 20 %).
2. LINE: ``--line`` (100,000) recipients as multicasts of 500 to the LINE
   stand-in (its own process; every request validated against the OpenAPI
   spec): (a) the same multicasts with fresh retry keys in a bare loop,
   (b) ``deliver`` from the ledger (which also checks the month's quota first).
   ``ledger_sql_s`` is the time spent in the operations store's statements.
3. Resume: the real sender (``python -m crm_core campaign send``) on a fresh
   e-mail campaign is killed with SIGKILL after 20 % of it; the restart is
   timed until its first new send and until the end.

Preparation (funnel, freeze into DuckDB, rendering, ledger rows) is timed for
information.  Usage::

    python bench/bench_send.py [--emails 100000] [--line 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crm_core.messaging.channels.email_bulk import SmtpSession, campaign_message, new_message_id  # noqa: E402
from crm_core.messaging.channels.line_bulk import LineBulk, aggregation_unit, new_retry_key  # noqa: E402
from crm_core.messaging.delivery import UNSUBSCRIBE_SENTINEL, deliver  # noqa: E402
from crm_core.messaging.templates import Rendered  # noqa: E402
from crm_core.messaging.unsubscribe import Unsubscribe  # noqa: E402
from crm_core.results import live  # noqa: E402
from tests.live_support import EMAIL_RULE, LINE_RULE, NOON, PUBLIC, SECRET, TEMPLATE, make_store  # noqa: E402

TOKEN = "bench-token"  # noqa: S105 - the local stand-in's token
FROM = "shop@natural.example.jp"


class TimedConnection:
    """The ops connection with the time spent in its ``execute`` / ``executemany`` calls summed (the ledger's own cost)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self._con = con
        self.seconds = 0.0

    def execute(self, *args):
        t = time.perf_counter()
        try:
            return self._con.execute(*args)
        finally:
            self.seconds += time.perf_counter() - t

    def executemany(self, *args):
        t = time.perf_counter()
        try:
            return self._con.executemany(*args)
        finally:
            self.seconds += time.perf_counter() - t

    def __getattr__(self, name):
        return getattr(self._con, name)


def _sink(port: int, ready) -> None:
    """A counting SMTP server (no parsing, nothing kept)."""
    from aiosmtpd.controller import Controller

    class Count:
        n = 0

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            Count.n += 1
            return "250 OK"

    c = Controller(Count(), hostname="127.0.0.1", port=port)
    c.start()
    ready.set()
    asyncio.run(asyncio.sleep(10**6))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _campaign(store, ops, channel: str, quiet: str = "off") -> int:
    out = live.create(store, ops, name=f"bench {channel}", channel=channel, rule=LINE_RULE if channel == "line" else EMAIL_RULE,
                      template=TEMPLATE, actor="bench", holdout=0.0, quiet_hours=quiet, frequency_cap=0, now=NOON, send_at=NOON)
    cid = out["campaign_id"]
    ops.execute("UPDATE send_campaigns SET status = 'approved', approved_by = 'bench' WHERE campaign_id = ?", [cid])
    return cid


def bench_email(store, ops, port: int, rounds: int = 5) -> dict:
    """Bare loop and ledger interleaved in ``rounds`` (the machine is shared: alternating evens out the load)."""
    cid = _campaign(store, ops, "email")
    t = time.perf_counter()
    live.prepare(store, ops, cid, from_addr=FROM, now=NOON)
    prep = time.perf_counter() - t
    rows = ops.execute("SELECT customer_id, address FROM send_ledger WHERE campaign_id = ? AND state = 'queued' ORDER BY seq",
                       [cid]).fetchall()
    content = json.loads(zlib.decompress(ops.execute("SELECT body FROM send_contents WHERE campaign_id = ?", [cid]).fetchone()[0]))
    unsub = Unsubscribe(SECRET, PUBLIC)
    from_name = json.loads(ops.execute("SELECT sender FROM send_campaigns WHERE campaign_id = ?", [cid]).fetchone()[0])["from_name"]
    bare = ledger = 0.0
    timed = TimedConnection(ops)
    step = -(-len(rows) // rounds)
    with SmtpSession("127.0.0.1", port, starttls=False) as smtp:
        for k in range(rounds):
            t = time.perf_counter()
            for customer_id, address in rows[k * step:(k + 1) * step]:  # the same recipients, the same mails, nothing recorded
                url = unsub.url(cid, customer_id)
                r = Rendered(template_key=TEMPLATE, channel="email", subject=content["subject"], preheader=content["preheader"],
                             text=content["text"].replace(UNSUBSCRIBE_SENTINEL, url), html=content["html"].replace(UNSUBSCRIBE_SENTINEL, url))
                msg = campaign_message(address, r, from_addr=FROM, from_name=from_name, unsubscribe_url=url, message_id=new_message_id(FROM))
                assert smtp.send(msg, FROM, address).ok
            bare += time.perf_counter() - t
            t = time.perf_counter()
            outcome = deliver(timed, cid, smtp=smtp, unsubscribe=unsub, clock=lambda: NOON, max_messages=step)
            ledger += time.perf_counter() - t
    assert outcome.status == "done" and outcome.counts["sent"] == len(rows), outcome
    return {"recipients": len(rows), "rounds": rounds, "prepare_s": round(prep, 1), "bare_s": round(bare, 1), "ledger_s": round(ledger, 1),
            "bare_per_s": round(len(rows) / bare), "ledger_per_s": round(len(rows) / ledger), "overhead": round(ledger / bare - 1, 3),
            "ledger_sql_s": round(timed.seconds, 2), "ledger_sql_share": round(timed.seconds / ledger, 3)}


def bench_line(store, ops, url: str) -> dict:
    cid = _campaign(store, ops, "line")
    t = time.perf_counter()
    live.prepare(store, ops, cid, now=NOON)
    prep = time.perf_counter() - t
    batches = [(b[0], json.loads(zlib.decompress(ops.execute("SELECT body FROM send_contents WHERE content_id = ?", [b[1]]).fetchone()[0])))
               for b in ops.execute("SELECT batch_id, content_id FROM send_batches WHERE campaign_id = ? ORDER BY batch_id", [cid]).fetchall()]
    members = {bid: [r[0] for r in ops.execute("SELECT address FROM send_ledger WHERE batch_id = ? ORDER BY seq", [bid])] for bid, _ in batches}
    api = LineBulk(TOKEN, url)
    api.open()
    t = time.perf_counter()
    for bid, messages in batches:
        assert api.multicast(members[bid], messages, retry_key=new_retry_key(), aggregation_unit=aggregation_unit(cid)).ok
    bare = time.perf_counter() - t
    timed = TimedConnection(ops)
    t = time.perf_counter()
    outcome = deliver(timed, cid, line=api, clock=lambda: NOON)
    ledger = time.perf_counter() - t
    n = sum(len(m) for m in members.values())
    assert outcome.status == "done" and outcome.counts["sent"] == n, outcome
    return {"recipients": n, "requests": len(batches), "prepare_s": round(prep, 1), "bare_s": round(bare, 2), "ledger_s": round(ledger, 2),
            "overhead": round(ledger / bare - 1, 3), "ledger_sql_s": round(timed.seconds, 2),
            "note": "ledger_s includes the quota check (2 GET requests) the bare loop does not make"}


def bench_resume(store, ops, db: Path, port: int) -> dict:
    cid = _campaign(store, ops, "email")
    live.prepare(store, ops, cid, from_addr=FROM, now=NOON)
    n = ops.execute("SELECT count(*) FROM send_ledger WHERE campaign_id = ? AND state = 'queued'", [cid]).fetchone()[0]
    store.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_FROM": FROM,
           "SMTP_STARTTLS": "false", "CRM_UNSUBSCRIBE_SECRET": SECRET, "CRM_PUBLIC_URL": PUBLIC}
    cmd = [sys.executable, "-m", "crm_core", "campaign", "send", "--campaign", str(cid), "--db", str(db)]
    con = sqlite3.connect(str(db.with_name("crm.ops.sqlite")), timeout=30)

    def sent() -> int:
        return con.execute("SELECT count(*) FROM send_ledger WHERE campaign_id = ? AND state = 'sent'", [cid]).fetchone()[0]

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while sent() < n * 0.2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    at_kill = sent()
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while sent() <= at_kill and proc.poll() is None:
        time.sleep(0.005)
    first = time.perf_counter() - t
    proc.wait()
    total = time.perf_counter() - t
    return {"recipients": n, "sent_at_kill": at_kill, "restart_to_first_send_s": round(first, 2), "restart_to_done_s": round(total, 1),
            "sent_after": sent()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=100_000)
    parser.add_argument("--line", type=int, default=100_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_send_"))
    db = tmp / "crm.duckdb"
    t = time.perf_counter()
    store = make_store(db, line_users=args.line, emails=args.emails)
    ops = live.open_ops(store)
    print(json.dumps({"setup_s": round(time.perf_counter() - t, 1), "dir": str(tmp)}))  # noqa: T201
    port = _free_port()
    ready = mp.Event()
    sink = mp.Process(target=_sink, args=(port, ready), daemon=True)
    sink.start()
    ready.wait(30)
    line_port = _free_port()
    mock = subprocess.Popen([sys.executable, "-m", "tests.servers.line_mock", "--port", str(line_port), "--token", TOKEN],
                            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    mock.stdout.readline()
    try:
        print(json.dumps({"email": bench_email(store, ops, port)}))  # noqa: T201
        print(json.dumps({"line": bench_line(store, ops, f"http://127.0.0.1:{line_port}")}))  # noqa: T201
        print(json.dumps({"resume": bench_resume(store, ops, db, port)}))  # noqa: T201
    finally:
        mock.send_signal(signal.SIGTERM)
        sink.terminate()


if __name__ == "__main__":
    main()
