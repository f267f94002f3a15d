"""The softphone page at `/` (plain HTML, CSS and JavaScript in tomsip/bridge/static: no build step).

The page holds no secret: it asks for a conversation id and a token the operator's backend (or
`tomsip token`) issued, and everything it does goes through the authenticated WebSocket."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the page's URL may carry a token
    "Cache-Control": "no-store",
}


def page_routes() -> list[web.AbstractRouteDef]:
    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers=HEADERS)

    return [web.get("/", index), web.static("/static", STATIC, append_version=False)]
