"""The live calls view: GET /api/calls (JSON) and GET /calls (a page that polls it every second).

It lists the calls the store knows as active: with Redis that is every node's calls, with the
in-process store this node's. Each row has the state, dialplan, policy, transport, codec, node, age,
turns, barge-ins and the last turn's latency. No phone numbers are kept anywhere to show, and
transcripts are shown only with TOMSIP_CALLS_SHOW_TRANSCRIPTS (and then only for this node's calls,
which are the only ones whose words exist: they are never stored). With TOMSIP_ADMIN_TOKEN set,
both routes need it as a bearer token (or `?token=` for the page's first load).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tomsip.security.admin import admin_allowed
from tomsip.store.base import CallRecord, Store, StoreUnavailable

PAGE = Path(__file__).resolve().parent / "static" / "calls.html"
MAX_ROWS = 1000


def call_row(record: CallRecord, now: float) -> dict[str, object]:
    latency = record.latencies_ms.get("speech_end_to_audio", record.latencies_ms.get("turn"))
    return {
        "call_id": record.call_id,
        "node": record.node,
        "state": record.state,
        "dialplan": record.dialplan,
        "policy": record.policy,
        "transport": record.transport,
        "codec": record.codec,
        "age_s": round(max(0.0, now - record.started_at), 1),
        "turns": record.turns,
        "barge_ins": record.barge_ins,
        "direction": record.direction,
        "answered_by": record.answered_by,
        "last_turn_latency_ms": latency,
    }


@dataclass(frozen=True)
class CallsViewConfig:
    """What the view reads of the settings (built in the composition root)."""

    admin_token: str | None  # None: the view is off (404)
    show_transcripts: bool  # TOMSIP_CALLS_SHOW_TRANSCRIPTS


def calls_routes(
    store: Store, config: CallsViewConfig, local_words: Callable[[], dict[str, dict[str, str]]]
) -> list[web.RouteDef]:
    admin = config.admin_token.encode() if config.admin_token else None

    def allowed(request: web.Request) -> bool:
        return admin_allowed(admin, request.headers, request.query)

    reads = asyncio.Semaphore(16)  # a page refresh must not open a Redis connection per call

    async def one(call_id: str) -> CallRecord | None:
        async with reads:
            return await store.get_call(call_id)

    async def api(request: web.Request) -> web.Response:
        if not allowed(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            ids = (await store.active_call_ids())[:MAX_ROWS]
            records = await asyncio.gather(*(one(i) for i in ids))
        except StoreUnavailable:
            return web.json_response({"error": "store_unavailable"}, status=503)
        now = time.time()
        live = sorted((r for r in records if r is not None), key=lambda r: r.started_at)  # oldest first
        rows = [call_row(r, now) for r in live]
        if config.show_transcripts:
            words = local_words()
            for row in rows:
                row["last_words"] = words.get(str(row["call_id"]), {})
        return web.json_response({"calls": rows, "count": len(rows), "at": now})

    async def page(request: web.Request) -> web.StreamResponse:
        if not allowed(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.FileResponse(
            PAGE,
            headers={
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
            },
        )

    return [web.get("/api/calls", api), web.get("/calls", page)]
