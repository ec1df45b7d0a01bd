"""``python -m crm_core run-all`` (what ``./run.sh`` starts): the console, the worker and the endpoint service.

A small supervisor: each process runs in its own session; when one ends
unexpectedly it is reported on stderr and started again (after 1 s, doubling
up to 30 s while it keeps crashing soon after starting).  Ctrl-C or SIGTERM
stops all three (SIGTERM, then SIGKILL after a grace period).

Chosen over honcho (a Procfile runner) because honcho stops everything when
one process exits, and restarting a crashed process is the point here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from crm_core import deploy

ROOT = Path(__file__).resolve().parents[2]
LABELS = {"console": "コンソール", "worker": "ワーカー", "service": "エンドポイント"}
GRACE = 15.0


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = 0.5
    restart_at: float | None = None
    restarts: int = field(default=0)


def commands(db_path: str | None, console_args: list[str]) -> dict[str, list[str]]:
    host = deploy.bind_address()
    py = sys.executable
    db = ["--db", db_path] if db_path else []
    console = [py, "-m", "streamlit", "run", str(ROOT / "console.py"), "--server.headless", "true"]
    if not any(a.startswith("--server.address") for a in console_args):
        console += ["--server.address", host]
    if not any(a.startswith("--server.port") for a in console_args):
        console += ["--server.port", str(deploy.console_port())]
    return {
        "console": console + console_args,
        "worker": [py, "-m", "crm_core", *db, "worker"],
        "service": [py, "-m", "crm_core", *db, "serve", "--host", host, "--port", str(deploy.service_port())],
    }


def _say(text: str) -> None:
    sys.stderr.write(f"[run-all] {text}\n")
    sys.stderr.flush()


def _start(child: Child, env: dict[str, str]) -> None:
    child.proc = subprocess.Popen(child.argv, cwd=ROOT, env=env, start_new_session=True)
    child.started = time.monotonic()
    child.restart_at = None


def _stop_all(children: list[Child]) -> None:
    for c in children:
        if c.proc and c.proc.poll() is None:
            c.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE
    for c in children:
        if c.proc is None:
            continue
        try:
            c.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()


def run_all(db_path: str | None = None, console_args: list[str] | None = None) -> int:
    env = dict(os.environ)
    if db_path:
        env["CRM_DB"] = db_path
    children = [Child(n, argv) for n, argv in commands(db_path, list(console_args or [])).items()]
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    host = deploy.bind_address()
    for c in children:
        _start(c, env)
    _say(f"コンソール: http://{host}:{deploy.console_port()}  エンドポイント: http://{host}:{deploy.service_port()}  "
         f"（公開URL: {deploy.public_base_url()}）  Ctrl-C で全て停止します。")
    try:
        while not stopping:
            now = time.monotonic()
            for c in children:
                if c.proc is not None and c.restart_at is None:
                    code = c.proc.poll()
                    if code is not None:
                        ran = now - c.started
                        c.backoff = 0.5 if ran > 60 else min(c.backoff * 2, 30.0)
                        c.restart_at = now + (1.0 if ran > 60 else c.backoff)
                        _say(f"「{LABELS[c.name]}」が停止しました（終了コード {code}）。{c.restart_at - now:.0f}秒後に再起動します。")
                elif c.restart_at is not None and now >= c.restart_at:
                    c.restarts += 1
                    _start(c, env)
                    _say(f"「{LABELS[c.name]}」を再起動しました（{c.restarts}回目, pid {c.proc.pid}）。")
            time.sleep(0.2)
    finally:
        _say("停止しています…")
        _stop_all(children)
        _say("全て停止しました。")
    return 0
