"""The endpoint service and run-all as real processes: health, nothing else exposed, localhost by default, restart, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import uvicorn
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from crm_core import deploy
from crm_core.service import app as service
from tests.procs import ROOT, env, wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - localhost
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def up(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:
        return False


def other_address() -> str | None:
    """A non-loopback address of this machine, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent for UDP connect
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except OSError:
        return True


def test_public_url_comes_from_env_then_secrets_then_setting(tmp_path, monkeypatch):
    from crm_core.db import Store

    monkeypatch.delenv("CRM_PUBLIC_URL", raising=False)
    monkeypatch.setenv("CRM_SECRETS_TOML", str(tmp_path / "secrets.toml"))
    monkeypatch.setenv("CRM_SERVICE_PORT", "8602")
    with Store(":memory:") as store:
        assert deploy.public_base_url(store) == "http://127.0.0.1:8602"
        store.set_setting("public_base_url", "https://setting.example.jp/")
        assert deploy.public_url("/unsubscribe/abc", store) == "https://setting.example.jp/unsubscribe/abc"
        (tmp_path / "secrets.toml").write_text('CRM_PUBLIC_URL = "https://secrets.example.jp"\n', encoding="utf-8")
        assert deploy.public_base_url(store) == "https://secrets.example.jp"
        monkeypatch.setenv("CRM_PUBLIC_URL", "https://crm.example.jp/")
        assert deploy.public_base_url(store) == "https://crm.example.jp"


def test_the_app_serves_health_and_the_packages_routes_only(tmp_path):
    config = service.ServiceConfig(str(tmp_path / "crm.duckdb"), tmp_path / "crm.ops.sqlite", "https://crm.example.jp")

    async def hello(request):
        return PlainTextResponse(request.app.state.config.public_url("/unsubscribe/t1"))

    app = service.create_app(config, extra_routes=[Route(service.UNSUBSCRIBE_PATH + "/{token}", hello)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: up(base + "/healthz"), timeout=30)
        status, body = get(base + "/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok", "ops_store": True}
        assert get(base + "/unsubscribe/t1") == (200, "https://crm.example.jp/unsubscribe/t1")
        for path in ("/", "/_stcore/health", "/media/x.csv", "/admin", "/pages/data/import_data.py", "/healthz/x"):
            assert get(base + path)[0] == 404, path
        req = urllib.request.Request(base + "/healthz", data=b"", method="POST")  # noqa: S310 - localhost
        try:
            urllib.request.urlopen(req, timeout=5)  # noqa: S310 - localhost
            raise AssertionError("POST /healthz was accepted")
        except urllib.error.HTTPError as exc:
            assert exc.code == 405
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_serve_answers_health_on_localhost_only_by_default(tmp_path):
    db = tmp_path / "crm.duckdb"
    port = free_port()
    extra = {k: "" for k in ("CRM_BIND",)}
    proc = subprocess.Popen([sys.executable, "-m", "crm_core", "serve", "--db", str(db), "--port", str(port)],
                            cwd=ROOT, env=env(db, **extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: up(f"http://127.0.0.1:{port}/healthz"), timeout=60, every=0.2)
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert get(f"http://127.0.0.1:{port}/")[0] == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:  # noqa: S310 - localhost
            assert resp.headers.get("server") is None  # no software banner
        addr = other_address()
        if addr:
            assert refused(addr, port)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM (exit status -15)
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_run_all_starts_three_processes_restarts_a_crashed_one_and_ctrl_c_stops_all(tmp_path):
    db = tmp_path / "crm.duckdb"
    cport, sport = free_port(), free_port()
    log = open(tmp_path / "run-all.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "crm_core", "--db", str(db), "run-all"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env=env(db, CRM_CONSOLE_PORT=str(cport), CRM_SERVICE_PORT=str(sport), CRM_BIND="", CRM_INBOX=str(tmp_path / "inbox")),
    )
    try:
        wait_until(lambda: up(f"http://127.0.0.1:{cport}/_stcore/health") and up(f"http://127.0.0.1:{sport}/healthz"),
                   timeout=120, every=0.5)
        kids = {next(n for n in ("streamlit", " worker", " serve") if n in _cmdline(p)).strip(): p for p in _children(proc.pid)}
        assert set(kids) == {"streamlit", "worker", "serve"}
        addr = other_address()
        if addr:  # closed by default: neither listens beyond this machine
            assert refused(addr, cport) and refused(addr, sport)
        os.kill(kids["worker"], signal.SIGKILL)
        wait_until(lambda: "「ワーカー」を再起動しました" in (tmp_path / "run-all.log").read_text(), timeout=30)
        text = (tmp_path / "run-all.log").read_text()
        assert "「ワーカー」が停止しました（終了コード -9）" in text
        new_worker = [p for p in _children(proc.pid) if " worker" in _cmdline(p)]
        assert len(new_worker) == 1 and new_worker[0] != kids["worker"]
        everyone = list(kids.values()) + new_worker
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=60)
        log.close()
    assert proc.returncode == 0
    time.sleep(0.5)
    assert not any(_alive(p) for p in everyone)
    assert "全て停止しました" in (tmp_path / "run-all.log").read_text()


def test_backup_copies_the_store_and_the_operations_file(tmp_path):
    import duckdb

    from crm_core import jobs, opsdb
    from tests.procs import counts, import_cmd, write_orders

    db = tmp_path / "crm.duckdb"
    csv = tmp_path / "o.csv"
    n = write_orders(csv, 1_000)
    assert subprocess.run(import_cmd(db, csv), cwd=ROOT, env=env(db), capture_output=True, timeout=120).returncode == 0
    jobs.enqueue(opsdb.ops_path(db), "inbox_import", {"name": "x.csv"})
    done = subprocess.run([sys.executable, "-m", "crm_core", "backup", "--db", str(db), "--out", str(tmp_path / "bk")],
                          cwd=ROOT, env=env(db), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    copy = duckdb.connect(out["store"], read_only=True)
    assert copy.execute("SELECT count(*) FROM orders").fetchone()[0] == n == counts(db)[0]
    copy.close()
    assert [j["args"]["name"] for j in jobs.pending(out["ops"])] == ["x.csv"]
