"""POST /api/calls (place a call) and GET /api/calls/{id} (its progress and result), for the operator.

Both need TOMSIP_ADMIN_TOKEN as a bearer token; with no token configured, placing calls is off (403),
since an open dialer is a toll-fraud hole. A malformed request gets 400 naming the field; a request
that cannot be queued now (draining, queue full) gets 503 with Retry-After.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import ValidationError

from tomsip.monitor.metrics import Metrics
from tomsip.outbound.dialer import QueueFull
from tomsip.outbound.request import OutboundCall, OutboundRequest
from tomsip.security.admin import admin_allowed

MAX_BODY = 64 * 1024


class Refused(Exception):
    """The request is well formed but cannot be taken: `status` and an error word for the body."""

    def __init__(self, status: int, error: str, detail: str = "") -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


@dataclass(frozen=True)
class OutboundApi:
    """What the routes need from the composition root."""

    admin_token: str | None
    submit: Callable[[OutboundRequest], OutboundCall]  # raises Refused or QueueFull
    lookup: Callable[[str], Awaitable[dict[str, object] | None]]


def _error(status: int, error: str, **extra: object) -> web.Response:
    headers = {"Retry-After": "5"} if status == 503 else None
    return web.json_response({"error": error, **extra}, status=status, headers=headers)


def outbound_routes(api: OutboundApi, metrics: Metrics) -> list[web.RouteDef]:
    admin = api.admin_token.encode() if api.admin_token else None

    def refused(status: int, error: str, **extra: object) -> web.Response:
        metrics.outbound_refused.labels(reason=error).inc()
        return _error(status, error, **extra)

    async def place(request: web.Request) -> web.Response:
        if admin is None:
            return refused(403, "outbound_disabled", detail="placing calls needs TOMSIP_ADMIN_TOKEN")
        if not admin_allowed(admin, request.headers, {}):
            return refused(401, "unauthorized")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return refused(413, "too_large")
        try:
            raw = await request.content.read(MAX_BODY + 1)
            if len(raw) > MAX_BODY:
                return refused(413, "too_large")
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return refused(400, "invalid_json", detail="the body must be a JSON object")
        if not isinstance(body, dict):
            return refused(400, "invalid_json", detail="the body must be a JSON object")
        try:
            call_request = OutboundRequest.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(body)"
            return refused(400, "invalid", field=where, detail=first["msg"])
        try:
            call = api.submit(call_request)
        except Refused as exc:
            extra = {"field": "dialplan"} if exc.error == "unknown_dialplan" else {}
            return refused(exc.status, exc.error, detail=exc.detail, **extra)
        except QueueFull as exc:
            return refused(503, "queue_full", detail=str(exc))
        return web.json_response(call.view(), status=202)

    async def status(request: web.Request) -> web.Response:
        if admin is None or not admin_allowed(admin, request.headers, {}):
            return _error(401 if admin else 403, "unauthorized" if admin else "outbound_disabled")
        found = await api.lookup(request.match_info["call_id"])
        if found is None:
            return _error(404, "unknown_call")
        return web.json_response(found)

    return [web.post("/api/calls", place), web.get("/api/calls/{call_id}", status)]
