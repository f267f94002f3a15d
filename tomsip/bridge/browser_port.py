"""AudioPort for a browser, whatever carries its audio (WebSocket PCM16 or WebRTC Opus).

RX: the transport hands in PCM16 at the client's rate as it arrives; it is resampled to the internal
rate, cut into 20 ms frames and queued. The bridge's media clock delivers one queued frame per tick
(catching up by up to three when a network burst queued more), or a silence frame after three quiet
ticks, so end-pointing time moves with the wall clock whatever the network does. The queue holds at
most MAX_RX_FRAMES; a client that sends faster than real time loses its oldest audio, counted.

TX: one 20 ms frame per tick goes to the transport, at the client's rate. Nothing is sent ahead, so
`played_ms` is what really left, and a flush also tells the client to drop what it has buffered.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from tomsip.audio.framer import Framer
from tomsip.audio.frames import FRAME_MS, SAMPLE_RATE, SILENCE_FRAME
from tomsip.audio.player import PlayoutQueue
from tomsip.audio.port import PortListener
from tomsip.audio.resample import StreamResampler
from tomsip.monitor.metrics import Metrics
from tomsip.sip.media_clock import MediaClock

log = logging.getLogger("tomsip.bridge")

RX_QUIET_TICKS = 3
RX_CATCH_UP = 3
MAX_RX_FRAMES = 250  # 5 s


class BrowserPort:
    def __init__(
        self,
        call_id: str,
        codec: str,
        clock: MediaClock,
        metrics: Metrics,
        client_rate: int,
        send_audio: Callable[[bytes], None],
        send_event: Callable[[dict[str, object]], None],
        close: Callable[[str], Awaitable[None]],
        client_channels: int = 1,
    ) -> None:
        self._call_id = call_id
        self._codec = codec
        self._clock = clock
        self._metrics = metrics
        self._send_audio = send_audio
        self._send_event = send_event
        self._close = close
        self._listener: PortListener | None = None
        self._in = StreamResampler(client_rate, client_channels)
        self._out = StreamResampler(SAMPLE_RATE, 1, client_rate) if client_rate != SAMPLE_RATE else None
        self._framer = Framer()
        self._rx: deque[bytes] = deque()
        self._queue = PlayoutQueue()
        self._quiet_ticks = 0
        self._paused = False
        self._closed = False
        self._closed_reason = ""
        self.rx_dropped_frames = 0

    # ---- from the transport ----

    def receive(self, pcm: bytes) -> None:
        """Client audio at its own rate (whole samples)."""
        if self._closed:
            return
        for frame in self._framer.push(self._in.convert(pcm)):
            if len(self._rx) >= MAX_RX_FRAMES:
                self._rx.popleft()
                self.rx_dropped_frames += 1
                self._metrics.bridge_bad_input.labels(kind="audio_overflow").inc()
            self._rx.append(frame)

    def digit(self, digit: str) -> None:
        if self._listener is not None and not self._closed:
            self._listener.on_dtmf(digit)

    def remote_closed(self, reason: str) -> None:
        """The client hung up or went away."""
        if self._closed:
            return
        self._closed = True
        self._closed_reason = reason
        self._clock.remove(self)
        if self._listener is not None:
            self._listener.on_hangup(reason)

    # ---- AudioPort ----

    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def codec(self) -> str:
        return self._codec

    def attach(self, listener: PortListener) -> None:
        self._listener = listener
        if self._closed:  # the client left while the conversation was being set up
            listener.on_hangup(self._closed_reason)
            return
        self._clock.add(self)

    def notify(self, event: dict[str, object]) -> None:
        """Conversation events (state, transcripts) for the client's display."""
        if not self._closed:
            self._send_event(event)

    def play(self, pcm: bytes) -> None:
        self._queue.enqueue(pcm)

    def end_of_reply(self) -> None:
        self._queue.end_of_stream()

    def flush(self) -> int:
        self._paused = False
        dropped = self._queue.flush()
        self.notify({"type": "clear"})
        return dropped

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    @property
    def played_ms(self) -> int:
        return self._queue.frames_out * FRAME_MS

    @property
    def playing(self) -> bool:
        return not self._queue.empty

    async def hangup(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._clock.remove(self)
        await self._close("hangup")

    async def transfer(self, target: str) -> bool:
        return False  # a browser has no SIP leg to hand over

    # ---- the bridge's media clock ----

    def pump(self) -> None:
        if self._closed or self._listener is None:
            return
        frames: list[bytes] = []
        if self._rx:
            n = 1 + (RX_CATCH_UP - 1 if len(self._rx) > 5 else 0)
            frames = [self._rx.popleft() for _ in range(min(n, len(self._rx)))]
            self._quiet_ticks = 0
        else:
            self._quiet_ticks += 1
            if self._quiet_ticks >= RX_QUIET_TICKS:
                frames = [SILENCE_FRAME]
        for frame in frames:
            self._listener.on_frame(frame)
        if not self._paused:
            out = self._queue.take(1)
            if out:
                pcm = self._out.convert(out[0]) if self._out is not None else out[0]
                self._send_audio(pcm)

    def fail(self, exc: BaseException) -> None:
        log.error("browser media failure: %s: %s", type(exc).__name__, exc, extra={"call_id": self._call_id})
        self._metrics.call_failures.labels(stage="media").inc()
        asyncio.get_running_loop().create_task(self.hangup())
        if self._listener is not None:
            self._listener.on_hangup("error")
