"""The operator's one HTTP port: /metrics for Prometheus, /healthz and /readyz for the kubelet.

A standby replica is alive and ready too (it is ready to take over); `kvha_leader` tells which
replica acts. The leader is ready only once its caches are synced: until then it judges nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kvha.metrics import REGISTRY


async def start_http(
    *, host: str, port: int, healthy: Callable[[], bool], ready: Callable[[], bool] | None = None
) -> web.AppRunner:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok") if healthy() else web.Response(status=503, text="unhealthy")

    async def readiness(_: web.Request) -> web.Response:
        if ready is None or ready():
            return web.Response(text="ok")
        return web.Response(status=503, text="caches not synced")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", readiness)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
