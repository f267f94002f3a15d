"""One paced AudioPort for every transport: what a SIP call, a browser WebSocket, a WebRTC peer (and
an outbound leg, or another SIP engine) have in common, so that they cannot drift apart.

The base owns the parts every transport needs and that the session relies on behaving the same:
- RX: on each media-clock tick it asks the transport what arrived (`read_arrived`) and hands the
  frames to the listener; after RX_QUIET_TICKS ticks with nothing, it inserts one silence frame per
  tick (counted), so end-pointing time moves with the wall clock whatever the network does;
- TX: the playout queue, pause / resume / flush, and the honest `played_ms`. A transport that buffers
  frames of its own (the SIP stack keeps a short lead) says so with `BUFFERS_TX` and reports how much
  of that buffer is still unsent; the base keeps at most TX_LEAD_FRAMES there, takes them back on a
  pause and drops them on a flush, so playout stops within one frame of the request;
- the listener hand-off (`attach`, which tells a listener that arrives late that the far end already
  left), digits, the far end leaving (`remote_closed`), our side hanging up (`hangup`, once), and
  `fail`: a transport error ends this call (counted, logged, hung up) and never the clock.

A transport implements two methods, `read_arrived` and `write_frames` (the way aiortc's codec base is
two methods), plus the optional hooks below where it has more to say.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import deque
from typing import Protocol

from tomsip.audio.frames import FRAME_MS, SILENCE_FRAME
from tomsip.audio.player import PlayoutQueue
from tomsip.audio.port import AudioPort, MediaTap, PortListener
from tomsip.conversation.events import ConversationEvent, PlayoutCleared

log = logging.getLogger("tomsip.media")

RX_QUIET_TICKS = 3


class Clock(Protocol):
    """The media clock that pumps this port every 20 ms (tomsip/audio/media_clock.py)."""

    def add(self, member: PacedPort) -> None: ...

    def remove(self, member: PacedPort) -> None: ...


class MediaCounters(Protocol):
    """What a port counts (the Prometheus metrics in production)."""

    def silence_inserted(self) -> None: ...

    def media_failed(self) -> None: ...


class PacedPort(ABC):
    BUFFERS_TX = False  # True: written frames wait in the transport's own buffer until it sends them
    TX_LEAD_FRAMES = 1  # frames handed to the transport per tick (or kept in its buffer, if it has one)

    def __init__(self, call_id: str, codec: str, clock: Clock, counters: MediaCounters) -> None:
        self._call_id = call_id
        self._codec = codec
        self._clock = clock
        self._counters = counters
        self._listener: PortListener | None = None
        self._queue = PlayoutQueue()
        self._quiet_ticks = 0
        self._paused = False
        self._closed = False  # the far end left (or media failed): no more frames, the listener was told
        self._closed_reason = ""
        self._hung_up = False  # our side ended it
        self._in_flight = 0  # frames in the transport's buffer, not yet sent
        self._dropped_in_flight = 0  # frames a flush took out of that buffer unsent
        self._recent: deque[bytes] = deque(maxlen=self.TX_LEAD_FRAMES + 2)  # frames possibly still there
        self._tap: MediaTap | None = None
        self.log = logging.LoggerAdapter(log, {"call_id": call_id})

    # ---- what a transport implements ----

    @abstractmethod
    def read_arrived(self) -> list[bytes]:
        """The 20 ms internal-format frames that arrived since the last tick (often none or one)."""

    @abstractmethod
    def write_frames(self, frames: list[bytes]) -> int:
        """Send these frames (internal format) in order; returns how many the transport took."""

    def tx_buffered(self) -> int | None:
        """BUFFERS_TX only: how many written frames are still unsent; None when it cannot send now
        (media on hold, renegotiating): the queue then waits."""
        return 0

    def drop_buffered(self) -> int | None:
        """BUFFERS_TX only: discard the unsent frames; returns how many there were (None: unknown)."""
        return 0

    async def close_transport(self) -> None:
        """Our side ends the conversation (SIP: BYE). Called at most once."""
        return None

    async def transfer(self, target: str) -> bool:
        """Hand the far end to `target`; False where the transport cannot (a browser)."""
        return False

    async def attended_transfer(self, other: AudioPort) -> bool:
        """Hand the far end to `other`'s far end; False where the transport cannot."""
        return False

    def notify(self, event: ConversationEvent) -> None:
        """A conversation event for a transport with a display; nothing for one without."""
        return None

    # ---- what the transport calls ----

    def digit_received(self, digit: str) -> None:
        if self._listener is not None and not self._closed:
            self._listener.on_dtmf(digit)

    def hold_changed(self, held: bool) -> None:
        """The far end put the call on hold, or took it off."""
        if self._listener is not None and not self._closed:
            self._listener.on_hold(held)

    def remote_closed(self, reason: str) -> None:
        """The far end hung up or went away."""
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
        if self._closed:  # the far end left while the conversation was being set up
            listener.on_hangup(self._closed_reason)
            return
        self._clock.add(self)

    def play(self, pcm: bytes) -> None:
        self._queue.enqueue(pcm)

    def end_of_reply(self) -> None:
        self._queue.end_of_stream()

    def flush(self) -> int:
        self._paused = False
        dropped = self._queue.flush()
        unsent = self._take_back()
        self._dropped_in_flight += len(unsent)
        self.notify(PlayoutCleared())
        return dropped + len(unsent) * FRAME_MS

    def pause(self) -> None:
        if self._paused:
            return
        self._paused = True
        self._queue.push_back(self._take_back())

    def resume(self) -> None:
        self._paused = False

    def set_tap(self, tap: MediaTap | None) -> None:
        self._tap = tap

    @property
    def played_ms(self) -> int:
        return (self._queue.frames_out - self._dropped_in_flight - self._in_flight) * FRAME_MS

    @property
    def playing(self) -> bool:
        return not self._queue.empty or self._in_flight > 0

    async def hangup(self) -> None:
        """Our side ends it; a transport that fails to say so is logged, never raised: the call is over."""
        self._clock.remove(self)
        if self._hung_up:
            return
        self._hung_up = True
        try:
            await self.close_transport()
        except Exception as exc:  # noqa: BLE001 - the far end may be gone already
            self.log.warning("hang-up failed (%s); the call is considered ended", type(exc).__name__)

    # ---- the media clock ----

    def pump(self) -> None:
        listener = self._listener
        if self._closed or listener is None:
            return
        frames = self.read_arrived()
        if frames:
            self._quiet_ticks = 0
        else:
            self._quiet_ticks += 1
            if self._quiet_ticks >= RX_QUIET_TICKS:
                frames = [SILENCE_FRAME]
                self._counters.silence_inserted()
        for frame in frames:
            listener.on_frame(frame)
        sent: list[bytes] = []
        if not self._paused and (not self._queue.empty or self._in_flight):
            sent = self._pump_tx()
        if self._tap is not None:
            self._tap.tick(frames, sent)

    def fail(self, exc: BaseException) -> None:
        """The clock caught `exc` from this port: this call ends, with BYE where there is a far end."""
        self.log.error("media failure: %s: %s", type(exc).__name__, exc)
        self._counters.media_failed()
        asyncio.get_running_loop().create_task(self.hangup())
        self.remote_closed("error")

    def _pump_tx(self) -> list[bytes]:
        """Hand the transport what it has room for; returns the frames it took."""
        buffered = 0
        if self.BUFFERS_TX:
            reported = self.tx_buffered()
            if reported is None:
                return []
            buffered = reported
            self._in_flight = min(self._in_flight, buffered)  # the rest went out since the last tick
        want = self.TX_LEAD_FRAMES - buffered
        if want <= 0:
            return []
        frames = self._queue.take(want)
        if not frames:
            return []
        taken = self.write_frames(frames)
        if taken < len(frames):
            self._queue.push_back(frames[taken:])  # the transport was full: they go next tick
        if self.BUFFERS_TX:
            self._recent.extend(frames[:taken])
            self._in_flight += taken
        return frames[:taken]

    def _take_back(self) -> list[bytes]:
        """Empty the transport's buffer; returns the frames it had not sent, oldest first."""
        if not self._in_flight:
            return []
        reported = self.drop_buffered()
        unsent = min(self._in_flight if reported is None else reported, self._in_flight, len(self._recent))
        frames = list(self._recent)[len(self._recent) - unsent :] if unsent else []
        self._in_flight = 0
        self._recent.clear()
        return frames
