"""A local OpenAI-compatible chat-completions server that streams server-sent events, for tests.

What it answers depends on the last user message, so one server covers every case:
"error" -> HTTP 500, "slow" -> no bytes for 3 s, "garbage" -> a malformed event, "bye" -> a reply
that ends the call, "human" -> a reply that asks for a transfer; anything else -> three sentences,
the second only after `pause_s`, so a test can see the first sentence arrive before the stream ends.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import ClientConnectionResetError, web

from tests.support.loopback_app import LoopbackApp


class FakeChatServer(LoopbackApp):
    def __init__(self, pause_s: float = 0.3) -> None:
        super().__init__()
        self.pause_s = pause_s
        self.requests: list[dict[str, object]] = []
        self.auth: list[str | None] = []
        self.disconnected = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "fake-model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.auth.append(request.headers.get("Authorization"))
        last = body["messages"][-1]["content"].lower()
        if "error" in last:
            return web.Response(status=500, text="upstream exploded")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            if "slow" in last:
                await asyncio.sleep(3)
            elif "garbage" in last:
                await resp.write(b"data: {this is not json\n\n")
            else:
                for piece in self._script(last):
                    if piece is None:
                        await asyncio.sleep(self.pause_s)
                        continue
                    chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                    await resp.write(b": keep-alive\n\ndata: " + json.dumps(chunk).encode() + b"\n\n")
                await resp.write(b"data: [DONE]\n\n")
        except (ConnectionError, ClientConnectionResetError, asyncio.CancelledError):
            self.disconnected += 1
            raise
        return resp

    @staticmethod
    def _script(last: str) -> list[str | None]:
        if "bye" in last:
            return ["Goodbye ", "then. ", "[hangup]"]
        if "human" in last:
            return ["Sure, ", "putting you through. [trans", "fer]"]
        return ["Sure", ". Tues", "day at ten ", "works. ", None, "Shall I ", "book it?"]
