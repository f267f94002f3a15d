"""A local server speaking the OpenAI Realtime WebSocket protocol, for tests.

It does what the real one does, in miniature: an energy VAD over the appended audio (speech_started,
speech_stopped and an automatic commit after 300 ms of quiet), canned audio deltas for every
response (a 2 s tone, sent five times faster than real time), cancel and truncate honoured, and an
`error` event for malformed or unknown events. `beta=True` names its events the beta way
(`response.audio.delta`); `vad=False` never reports speech (so only local barge-in can interrupt);
`fail_next` answers the next response.create with an error; `late_deltas` keeps sending that many
deltas of a cancelled response, as a real backend's in-flight messages would.
"""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
from aiohttp import WSMsgType, web

from tests.support.loopback_app import LoopbackApp
from tomsip.audio.g711 import pcm_to_ulaw, ulaw_to_pcm

REPLY_MS = 2000
DELTA_MS = 100


class FakeRealtimeServer(LoopbackApp):
    def __init__(self, beta: bool = False, vad: bool = True, late_deltas: int = 3) -> None:
        super().__init__()
        self.beta = beta
        self.vad = vad
        self.late_deltas = late_deltas
        self.fail_next = False
        self.events: list[dict[str, object]] = []
        self.truncates: list[dict[str, object]] = []
        self.appended_ms = 0
        self.port = 0
        self.session: dict[str, object] = {}
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/realtime", self._session)

    def types(self) -> list[str]:
        return [str(e.get("type")) for e in self.events]

    async def _session(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = _Connection(self, ws)
        await conn.send({"type": "session.created", "session": {}})
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await conn.on_text(message.data)
        conn.stop()
        return ws


class _Connection:
    def __init__(self, server: FakeRealtimeServer, ws: web.WebSocketResponse) -> None:
        self.server = server
        self.ws = ws
        self.ulaw = False
        self.speaking = False
        self.quiet_ms = 0
        self.loud_ms = 0
        self.buffered_ms = 0
        self.responses = 0
        self.streaming: asyncio.Task[None] | None = None
        self.cancelled = False

    async def send(self, event: dict[str, object]) -> None:
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(event))

    def stop(self) -> None:
        if self.streaming is not None:
            self.streaming.cancel()

    async def on_text(self, text: str) -> None:
        try:
            event = json.loads(text)
            kind = event["type"]
        except (json.JSONDecodeError, KeyError, TypeError):
            await self.send({"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_json"}})
            return
        self.server.events.append(event)
        handler = getattr(self, "on_" + kind.replace(".", "_"), None)
        if handler is None:
            await self.send({"type": "error", "error": {"type": "invalid_request_error", "code": "unknown_event"}})
            return
        await handler(event)

    async def on_session_update(self, event: dict[str, object]) -> None:
        session = event["session"]
        self.server.session = session  # type: ignore[assignment]
        fmt = session.get("input_audio_format") or session["audio"]["input"]["format"]["type"]  # type: ignore[index,union-attr]
        self.ulaw = fmt in ("g711_ulaw", "audio/pcmu")
        await self.send({"type": "session.updated", "session": session})

    async def on_input_audio_buffer_append(self, event: dict[str, object]) -> None:
        data = base64.b64decode(str(event["audio"]))
        pcm = ulaw_to_pcm(data) if self.ulaw else data
        rate = 8000 if self.ulaw else 24000
        samples = np.frombuffer(pcm, "<i2").astype(np.float64)
        step = rate // 50
        for i in range(0, len(samples) - step + 1, step):
            await self._vad_frame(float(np.sqrt(np.mean(samples[i : i + step] ** 2))) > 300)
        ms = len(samples) * 1000 // rate
        self.server.appended_ms += ms
        self.buffered_ms += ms

    async def _vad_frame(self, loud: bool) -> None:
        if not self.server.vad:
            return
        if loud:
            self.loud_ms += 20
            self.quiet_ms = 0
            if not self.speaking and self.loud_ms >= 60:
                self.speaking = True
                await self.send({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0})
                if self.streaming is not None and not self.streaming.done():
                    self.cancelled = True  # interrupt_response
        else:
            self.loud_ms = 0
            self.quiet_ms += 20
            if self.speaking and self.quiet_ms >= 300:
                self.speaking = False
                await self.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 0})
                await self.on_input_audio_buffer_commit({})

    async def on_input_audio_buffer_commit(self, event: dict[str, object]) -> None:
        if self.buffered_ms == 0:
            await self.send(
                {"type": "error", "error": {"type": "invalid_request_error", "code": "input_audio_buffer_commit_empty"}}
            )
            return
        self.buffered_ms = 0
        await self.send({"type": "input_audio_buffer.committed", "item_id": f"user_{self.responses}"})

    async def on_conversation_item_create(self, event: dict[str, object]) -> None:
        await self.send({"type": "conversation.item.created", "item": event.get("item")})

    async def on_conversation_item_truncate(self, event: dict[str, object]) -> None:
        self.server.truncates.append(event)
        await self.send({"type": "conversation.item.truncated", "item_id": event["item_id"]})

    async def on_response_cancel(self, event: dict[str, object]) -> None:
        if self.streaming is None or self.streaming.done() or self.cancelled:
            await self.send(
                {"type": "error", "error": {"type": "invalid_request_error", "code": "response_cancel_not_active"}}
            )
        self.cancelled = True

    async def on_response_create(self, event: dict[str, object]) -> None:
        if self.server.fail_next:
            self.server.fail_next = False
            await self.send({"type": "error", "error": {"type": "server_error", "code": "server_error"}})
            return
        self.responses += 1
        rid, item = f"resp_{self.responses}", f"item_{self.responses}"
        self.cancelled = False
        await self.send({"type": "response.created", "response": {"id": rid, "status": "in_progress"}})
        self.streaming = asyncio.get_running_loop().create_task(self._stream(rid, item))

    async def _stream(self, rid: str, item: str) -> None:
        audio_delta = "response.audio.delta" if self.server.beta else "response.output_audio.delta"
        text_delta = "response.audio_transcript.delta" if self.server.beta else "response.output_audio_transcript.delta"
        rate = 8000 if self.ulaw else 24000
        t = np.arange(rate * REPLY_MS // 1000) / rate
        tone = (8000 * np.sin(2 * np.pi * 500 * t)).astype("<i2").tobytes()
        data = pcm_to_ulaw(tone) if self.ulaw else tone
        step = len(data) * DELTA_MS // REPLY_MS
        late = self.server.late_deltas
        await self.send({"type": text_delta, "response_id": rid, "item_id": item, "delta": "A tone for you."})
        for i in range(0, len(data), step):
            if self.cancelled:
                if late <= 0:
                    break
                late -= 1
            chunk = base64.b64encode(data[i : i + step]).decode()
            await self.send(
                {"type": audio_delta, "response_id": rid, "item_id": item, "output_index": 0, "delta": chunk}
            )
            await asyncio.sleep(DELTA_MS / 5000)
        status = "cancelled" if self.cancelled else "completed"
        await self.send({"type": "response.done", "response": {"id": rid, "status": status}})
