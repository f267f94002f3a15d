"""WebSocket /ws/stream/{call_id}: a browser (or any client) converses over one WebSocket.

After the gate (tomsip/bridge/gate.py) the connection upgrades; the client's first event is `start`
(its sample rate), then binary frames carry PCM16 audio both ways and JSON events carry control
(tomsip/bridge/events.py). The conversation is an ordinary CallSession on a BrowserPort.

Abuse handling: every message, pings included, spends a token from the connection's bucket
(TOMSIP_WS_RATE, burst TOMSIP_WS_BURST), and an empty bucket closes with 1013 (try again later). A
message that is not a valid event, or audio that is not whole samples, gets an `error` event and the
connection goes on; after MAX_STRIKES of them it closes with 1008. A connection that has not sent
`start` (or `rtc_offer`) within TOMSIP_WS_START_TIMEOUT_S closes with 1008. aiohttp itself closes a
message larger than TOMSIP_WS_MAX_MESSAGE with 1009 (one of exactly that size is taken) and invalid
UTF-8 with 1007. Nothing a client sends can raise out of here or touch another session.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ValidationError

from tomsip.audio.media_clock import MediaClock
from tomsip.bridge import events
from tomsip.bridge.browser_port import BrowserPort
from tomsip.bridge.gate import BrowserGate
from tomsip.bridge.rtc import RTC_RATE, BadOffer, RtcMedia
from tomsip.conversation.events import ConversationEvent, PlayoutCleared
from tomsip.monitor.metrics import Metrics
from tomsip.security.token_bucket import TokenBucket
from tomsip.security.tokens import Claims

log = logging.getLogger("tomsip.bridge")

MAX_STRIKES = 10
MAX_OUTBOX = 500  # 10 s of audio frames; a client that stops reading is closed
CLOSE_RATE_LIMITED = 1013
CLOSE_POLICY = 1008
CLOSE_NO_ROUTE = 4404
CLOSE_MEDIA_FAILED = 4408


@dataclass(frozen=True)
class StreamLimits:
    """What a stream reads of the settings (built in the composition root)."""

    message_rate: float  # messages a second per connection (TOMSIP_WS_RATE)
    message_burst: float
    max_message: int  # bytes (TOMSIP_WS_MAX_MESSAGE)
    start_timeout_s: float = 10.0  # TOMSIP_WS_START_TIMEOUT_S


class HostBusy(RuntimeError):
    """The conversation's pipeline filled up between the door (503) and the start event: the socket
    closes with 1013 (try again later)."""


RTC_CONNECT_TIMEOUT_S = 15.0


class ConversationHost(Protocol):
    """What the bridge needs from the composition root."""

    def converse(self, port: BrowserPort, to: str, transport: str) -> Awaitable[str]:
        """Run the conversation on `port` until it ends; raises LookupError when `to` has no route,
        HostBusy when there is no room for it now."""
        ...

    async def feedback(self, call_id: str, rating: object, source: str = "browser") -> str | None: ...

    def barge_in(self, call_id: str) -> None: ...


class StreamConnection:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        call_id: str,
        claims: Claims,
        host: ConversationHost,
        clock: MediaClock,
        limits: StreamLimits,
        metrics: Metrics,
    ) -> None:
        self.ws = ws
        self.call_id = call_id
        self.claims = claims
        self.host = host
        self.clock = clock
        self.limits = limits
        self.metrics = metrics
        self.port: BrowserPort | None = None
        self.rtc: RtcMedia | None = None
        self._rtc_timer: asyncio.TimerHandle | None = None
        self.conversation: asyncio.Task[str] | None = None
        self._outbox: deque[str | bytes] = deque()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._strikes = 0
        self._closing: tuple[int, str] | None = None
        self.log = logging.LoggerAdapter(log, {"call_id": call_id})

    # ---- outgoing ----

    def send_event(self, event: BaseModel) -> None:
        self._push(event.model_dump_json())

    def send_audio(self, pcm: bytes) -> None:
        self._push(pcm)

    def _push(self, item: str | bytes) -> None:
        if self._closing is not None:
            return
        if len(self._outbox) >= MAX_OUTBOX:
            self._close_soon(CLOSE_POLICY, "client is not reading")
            return
        self._outbox.append(item)
        self._wake.set()

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._outbox:
                    item = self._outbox.popleft()
                    if isinstance(item, bytes):
                        await self.ws.send_bytes(item)
                    else:
                        await self.ws.send_str(item)
                if self._closing is not None:
                    code, reason = self._closing
                    await self.ws.close(code=code, message=reason.encode())
                    return
        except (ConnectionError, RuntimeError):
            return  # the client went away; the read loop sees it too

    def _close_soon(self, code: int, reason: str) -> None:
        if self._closing is None:
            self._closing = (code, reason)
            self._wake.set()

    def _conversation_done(self, task: asyncio.Task[str]) -> None:
        """Whoever ended it, the client learns the outcome, then the connection closes normally."""
        if task.cancelled():
            self._close_soon(1011, "conversation cancelled")
            return
        exc = task.exception()
        if isinstance(exc, LookupError):
            self._close_soon(CLOSE_NO_ROUTE, "no dialplan for this number")
        elif isinstance(exc, HostBusy):
            self._close_soon(CLOSE_RATE_LIMITED, "busy: try again later")
        elif exc is not None:
            self.log.error("conversation failed: %s", type(exc).__name__, exc_info=exc)
            self._close_soon(1011, "internal error")
        else:
            self.send_event(events.Ended(reason=task.result()))
            self._close_soon(1000, "conversation ended")

    def _error(self, code: str, message: str, strike: bool = True) -> None:
        self.metrics.bridge_bad_input.labels(kind=code).inc()
        self.send_event(events.Error(code=code, message=message))
        if strike:
            self._strikes += 1
            if self._strikes >= MAX_STRIKES:
                self.log.info("closing: repeated bad input")
                self._close_soon(CLOSE_POLICY, "repeated bad input")

    # ---- incoming ----

    async def run(self) -> None:
        self._writer = asyncio.create_task(self._write_loop())
        bucket = TokenBucket(self.limits.message_rate, self.limits.message_burst, time.monotonic())
        start_deadline = asyncio.get_running_loop().time() + self.limits.start_timeout_s
        try:
            while self._closing is None:
                timeout = None if self.port else max(0.0, start_deadline - asyncio.get_running_loop().time())
                try:
                    msg = await self.ws.receive(timeout=timeout)
                except TimeoutError:
                    self._close_soon(CLOSE_POLICY, "no start event")
                    break
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                if not bucket.allow(time.monotonic()):
                    self.metrics.rate_limit_hits.labels(scope="message").inc()
                    self.log.info("closing: message rate limit")
                    self._close_soon(CLOSE_RATE_LIMITED, "rate limit exceeded")
                    break
                if msg.type is WSMsgType.PING:  # answered here, so that pings pay like any message
                    await self.ws.pong(msg.data)
                elif msg.type is WSMsgType.BINARY:
                    self._on_audio(msg.data)
                elif msg.type is WSMsgType.TEXT:
                    await self._on_text(msg.data)
        except Exception:
            self.log.exception("browser stream failed")
            self._close_soon(1011, "internal error")
        finally:
            await self._finish()

    def _on_audio(self, data: bytes) -> None:
        if self.rtc is not None:
            self._error("bad_audio", "audio goes over WebRTC on this connection")
        elif self.port is None:
            self._error("not_started", "send a start event before audio")
        elif len(data) % 2:
            self._error("bad_audio", "audio must be whole PCM16 samples")
        else:
            self.port.receive(data)

    async def _on_text(self, text: str) -> None:
        try:
            event = events.client_events.validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            self._error("bad_event", f"{where}: {first['msg']}"[:200])
            return
        if isinstance(event, events.Start | events.RtcOffer):
            if self.port is not None or self.rtc is not None:
                self._error("already_started", "start or rtc_offer was already sent")
            elif isinstance(event, events.Start):
                self._start(event)
            else:
                await self._start_rtc(event)
            return
        if self.port is None:
            self._error("not_started", "send a start event first")
            return
        if isinstance(event, events.Dtmf):
            self.port.digit_received(event.digit)
        elif isinstance(event, events.BargeIn):
            self.host.barge_in(self.call_id)
        elif isinstance(event, events.Feedback):
            refused = await self.host.feedback(self.call_id, event.rating, "browser")
            if refused:
                self._error("feedback_refused", refused, strike=False)
        elif isinstance(event, events.Stop):
            self.port.remote_closed("remote_hangup")

    def _start(self, start: events.Start) -> None:
        self.port = BrowserPort(
            self.call_id,
            f"pcm16/{start.sample_rate}",
            self.clock,
            self.metrics,
            start.sample_rate,
            self.send_audio,
            self.send_event,
        )
        self.send_event(events.Ready(call_id=self.call_id, sample_rate=start.sample_rate))
        self.conversation = asyncio.ensure_future(self.host.converse(self.port, self.claims.to, "websocket"))
        self.conversation.add_done_callback(self._conversation_done)

    async def _start_rtc(self, offer: events.RtcOffer) -> None:
        self.rtc = RtcMedia(self._on_rtc_state)
        try:
            answer = await self.rtc.answer(offer.sdp)
        except BadOffer as exc:
            rtc, self.rtc = self.rtc, None
            await rtc.close()
            self._error("bad_sdp", str(exc))
            return
        self.port = BrowserPort(
            self.call_id,
            "opus",
            self.clock,
            self.metrics,
            RTC_RATE,
            self.rtc.track.push,
            self._send_event_rtc,
            client_channels=2,  # aiortc decodes Opus to 48 kHz stereo
        )
        self.rtc.on_audio(self.port.receive)
        self.send_event(events.RtcAnswer(sdp=answer))
        loop = asyncio.get_running_loop()
        self._rtc_timer = loop.call_later(RTC_CONNECT_TIMEOUT_S, self._on_rtc_state, "timeout")

    def _send_event_rtc(self, event: ConversationEvent) -> None:
        if isinstance(event, PlayoutCleared) and self.rtc is not None:
            self.rtc.track.clear()  # what the browser has already received plays out; 20 ms at most
        self.send_event(event)

    def _on_rtc_state(self, state: str) -> None:
        """The conversation starts when media is up, so the greeting is not spoken into the void."""
        if state == "connected" and self.conversation is None and self.port is not None:
            if self._rtc_timer is not None:
                self._rtc_timer.cancel()
            self.send_event(events.Ready(call_id=self.call_id, sample_rate=RTC_RATE))
            self.conversation = asyncio.ensure_future(self.host.converse(self.port, self.claims.to, "webrtc"))
            self.conversation.add_done_callback(self._conversation_done)
        elif state in ("failed", "timeout") and self.conversation is None:
            self.log.info("webrtc media did not connect (%s)", state)
            self._close_soon(CLOSE_MEDIA_FAILED, "media connection failed")
        elif state in ("failed", "closed") and self.port is not None:
            self.port.remote_closed("remote_hangup")

    async def _finish(self) -> None:
        if self.port is not None:
            self.port.remote_closed("remote_hangup")
        if self.conversation is not None:
            await asyncio.wait([self.conversation], timeout=10)  # its done-callback says goodbye
        self._close_soon(1000, "conversation ended")
        if self._writer is not None:
            try:
                await asyncio.wait_for(self._writer, 5)
            except (TimeoutError, asyncio.CancelledError):
                self._writer.cancel()
        if not self.ws.closed:
            await self.ws.close()
        if self._rtc_timer is not None:
            self._rtc_timer.cancel()
        if self.rtc is not None:
            await self.rtc.close()


def stream_route(
    gate: BrowserGate, host: ConversationHost, clock: MediaClock, limits: StreamLimits, metrics: Metrics
) -> web.RouteDef:
    async def handle(request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        claims = await gate.admit(request, call_id)
        try:
            # aiohttp refuses a message of exactly max_msg_size; the setting names the largest one taken.
            ws = web.WebSocketResponse(
                max_msg_size=limits.max_message + 1, heartbeat=20, autoping=False, protocols=("tomsip",)
            )
            await ws.prepare(request)
            metrics.websocket_connections.labels(outcome="accepted").inc()
            await StreamConnection(ws, call_id, claims, host, clock, limits, metrics).run()
            return ws
        finally:
            gate.release(call_id)

    return web.get("/ws/stream/{call_id}", handle)
