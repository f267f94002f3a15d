"""AudioPort for a browser, whatever carries its audio (WebSocket PCM16 or WebRTC Opus).

RX: the transport hands in PCM16 at the client's rate as it arrives; it is resampled to the internal
rate, cut into 20 ms frames and queued. Each media-clock tick takes one queued frame (catching up by
up to three when a network burst queued more); the paced port inserts silence when none came
(tomsip/audio/paced_port.py). The queue holds at most MAX_RX_FRAMES; a client that sends faster than
real time loses its oldest audio, counted.

TX: one 20 ms frame per tick goes to the transport, at the client's rate. Nothing is sent ahead, so
`played_ms` is what really left, and a flush also tells the client to drop what it has buffered (the
paced port's PlayoutCleared event). Hanging up from our side needs nothing of the transport: the
stream closes the connection when the conversation reports its outcome.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from tomsip.audio.framer import Framer
from tomsip.audio.frames import SAMPLE_RATE
from tomsip.audio.paced_port import Clock, PacedPort
from tomsip.audio.resample import StreamResampler
from tomsip.conversation.events import ConversationEvent
from tomsip.monitor.metrics import Metrics

RX_CATCH_UP = 3
MAX_RX_FRAMES = 250  # 5 s


class BrowserPort(PacedPort):
    def __init__(
        self,
        call_id: str,
        codec: str,
        clock: Clock,
        metrics: Metrics,
        client_rate: int,
        send_audio: Callable[[bytes], None],
        send_event: Callable[[ConversationEvent], None],
        client_channels: int = 1,
    ) -> None:
        super().__init__(call_id, codec, clock, metrics)
        self._metrics = metrics
        self._send_audio = send_audio
        self._send_event = send_event
        self._in = StreamResampler(client_rate, client_channels)
        self._out = StreamResampler(SAMPLE_RATE, 1, client_rate) if client_rate != SAMPLE_RATE else None
        self._framer = Framer()
        self._rx: deque[bytes] = deque()
        self.rx_dropped_frames = 0

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

    # ---- PacedPort ----

    def read_arrived(self) -> list[bytes]:
        n = RX_CATCH_UP if len(self._rx) > 5 else 1
        return [self._rx.popleft() for _ in range(min(n, len(self._rx)))]

    def write_frames(self, frames: list[bytes]) -> int:
        for frame in frames:
            self._send_audio(self._out.convert(frame) if self._out is not None else frame)
        return len(frames)

    def notify(self, event: ConversationEvent) -> None:
        """Conversation events (state, transcripts, clear) for the client's display."""
        if not self._closed:
            self._send_event(event)
