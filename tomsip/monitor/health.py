"""HTTP routes for liveness, readiness and Prometheus scraping, served by the app's aiohttp server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from tomsip.monitor.metrics import Metrics

ReadinessCheck = Callable[[], Awaitable[dict[str, object]]]


def health_routes(
    metrics: Metrics, readiness: ReadinessCheck, speech_probe: ReadinessCheck | None = None
) -> list[web.RouteDef]:
    async def health(_: web.Request) -> web.Response:
        """Liveness: the event loop answers."""
        return web.json_response({"status": "ok"})

    async def healthz(_: web.Request) -> web.Response:
        """Readiness: may this node take new calls? 503 while draining or when a dependency is down."""
        report = await readiness()
        status = 200 if report.get("ready") else 503
        return web.json_response(report, status=status)

    async def metrics_route(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def speech_api(_: web.Request) -> web.Response:
        """Probes the configured speech backend (a hosted API answers, or the local models are loaded)."""
        report = await speech_probe() if speech_probe else {"ok": True}
        return web.json_response(report, status=200 if report.get("ok") else 503)

    return [
        web.get("/health", health),
        web.get("/healthz", healthz),
        web.get("/healthz/speech_api", speech_api),
        web.get("/metrics", metrics_route),
    ]
