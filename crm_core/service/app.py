"""The endpoint service: ``python -m crm_core serve`` (Starlette, run by uvicorn).

Only what must be reachable from outside is served here, never the console:

* ``GET /healthz`` — liveness for the supervisor, a load balancer or monitoring;
* the LINE webhook (``POST /line/webhook``) and the one-click unsubscribe
  link (``/unsubscribe/...``), whose handlers live with the live-send code in
  :mod:`crm_core.messaging` and are added in :func:`package_routes`.

Everything else answers 404.  Handlers find the configuration (store paths,
public base URL) in ``request.app.state.config`` (:class:`ServiceConfig`);
they should write what they receive to the operations store
(:mod:`crm_core.opsdb`, e.g. a webhook-events table) and leave heavy work to
the worker (:func:`crm_core.jobs.enqueue`), so a request never waits for the
DuckDB store's turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from crm_core import deploy, opsdb

WEBHOOK_PATH = "/line/webhook"
UNSUBSCRIBE_PATH = "/unsubscribe"


@dataclass(frozen=True)
class ServiceConfig:
    db_path: str
    ops_path: Path
    public_base_url: str

    def public_url(self, path: str) -> str:
        return self.public_base_url + "/" + path.lstrip("/")


def package_routes(config: ServiceConfig) -> list[BaseRoute]:
    """The routes the packages contribute: the LINE webhook and the one-click unsubscribe link.

    The webhook answers only when the LINE channel secret is set (it checks
    every request's signature with it); unsubscribe links are signed with
    ``CRM_UNSUBSCRIBE_SECRET`` and point at the public base URL.
    """
    from crm_core.deploy import secret
    from crm_core.messaging import endpoints
    from crm_core.messaging.unsubscribe import Unsubscribe

    signing = str(secret("CRM_UNSUBSCRIBE_SECRET", "") or "")
    unsubscribe = Unsubscribe(signing, config.public_base_url) if len(signing) >= 16 else None
    return list(endpoints.routes(config.ops_path, channel_secret=str(secret("LINE_CHANNEL_SECRET", "") or ""),
                                 unsubscribe=unsubscribe))


async def healthz(request: Request) -> JSONResponse:
    config: ServiceConfig = request.app.state.config
    try:
        with closing(opsdb.connect(config.ops_path, timeout_ms=2000)) as con:
            con.execute("SELECT 1").fetchone()
    except Exception:  # noqa: BLE001 - health is a yes/no answer
        return JSONResponse({"status": "error", "ops_store": False}, status_code=503)
    return JSONResponse({"status": "ok", "ops_store": True})


def create_app(config: ServiceConfig, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The ASGI app: ``/healthz``, the packages' routes and ``extra_routes``; nothing else."""
    opsdb.connect(config.ops_path).close()  # create and migrate before the first request
    app = Starlette(routes=[Route("/healthz", healthz, methods=["GET"]), *extra_routes, *package_routes(config)])  # extra first: they may stand in
    app.state.config = config
    return app


def config_for(db_path: str | Path) -> ServiceConfig:
    return ServiceConfig(str(db_path), opsdb.ops_path(db_path), deploy.public_base_url())


def main(db_path: str | Path, *, host: str | None = None, port: int | None = None) -> int:
    """``python -m crm_core serve``: run the endpoint service until Ctrl-C or SIGTERM."""
    import os

    import uvicorn

    app = create_app(config_for(db_path))
    uvicorn.run(
        app,
        host=host or deploy.bind_address(),
        port=port or deploy.service_port(),
        server_header=False,
        # behind a reverse proxy on this machine, trust its X-Forwarded-* headers
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("CRM_FORWARDED_ALLOW_IPS", "127.0.0.1"),
        log_level="info",
    )
    return 0
