"""A scripted browser-stream client (aiohttp WebSocket) and token helpers, for tests and bench/bridge."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
import jwt

SECRET = "test-secret-for-loopback-only-" + "0123456789abcdef" * 3  # 64+ bytes: fine for HS512 too


def token(call_id: str, secret: str = SECRET, **overrides: object) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "tester",
        "call_id": call_id,
        "iat": now,
        "exp": now + 120,
        "nonce": uuid.uuid4().hex,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, secret, algorithm="HS256")


def new_call_id() -> str:
    return "web-" + uuid.uuid4().hex[:12]


@dataclass
class Received:
    events: list[dict[str, object]] = field(default_factory=list)
    audio: list[bytes] = field(default_factory=list)
    audio_at: list[float] = field(default_factory=list)
    close_code: int | None = None

    def of(self, kind: str) -> list[dict[str, object]]:
        return [e for e in self.events if e.get("type") == kind]

    @property
    def audio_bytes(self) -> int:
        return sum(len(a) for a in self.audio)


async def read_all(ws: aiohttp.ClientWebSocketResponse, into: Received) -> Received:
    """Collect events and audio until the server closes."""
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.BINARY:
            into.audio.append(msg.data)
            into.audio_at.append(time.perf_counter())
        elif msg.type is aiohttp.WSMsgType.TEXT:
            into.events.append(json.loads(msg.data))
    into.close_code = ws.close_code
    return into


async def stream_pcm(ws: aiohttp.ClientWebSocketResponse, pcm: bytes, frame_bytes: int = 640) -> None:
    """Send PCM16 in 20 ms frames at real time (absolute deadlines, no drift)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(0, len(pcm), frame_bytes):
        await ws.send_bytes(pcm[i : i + frame_bytes])
        await asyncio.sleep(max(0.0, start + (i // frame_bytes + 1) * 0.02 - loop.time()))
