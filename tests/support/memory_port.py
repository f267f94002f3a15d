"""An in-memory transport on the product's paced port, for driving a CallSession frame by frame.

Only the transport's two methods are the test's: frames go in through `tick` (one tick of the media
clock) and what the paced port writes lands in `sent`. Pacing, pause, flush, silence insertion and the
played count are the real ones (tomsip/audio/paced_port.py).
"""

from __future__ import annotations

import asyncio

from tomsip.audio.frames import SILENCE_FRAME
from tomsip.audio.paced_port import PacedPort
from tomsip.conversation.events import ConversationEvent


class NoClock:
    """The test is the clock: `tick` pumps the port itself."""

    def add(self, member: PacedPort) -> None:
        pass

    def remove(self, member: PacedPort) -> None:
        pass


class Counters:
    def __init__(self) -> None:
        self.silence = 0
        self.failures = 0

    def silence_inserted(self) -> None:
        self.silence += 1

    def media_failed(self) -> None:
        self.failures += 1


class MemoryPort(PacedPort):
    def __init__(self, call_id: str = "memory-1", codec: str = "pcm16") -> None:
        self.counters = Counters()
        super().__init__(call_id, codec, NoClock(), self.counters)
        self.inbox: list[bytes] = []
        self.sent: list[bytes] = []
        self.events: list[ConversationEvent] = []
        self.flushes = 0
        self.pauses = 0
        self.hung_up = False
        self.transfers: list[str] = []
        self.accept_transfer = False

    @property
    def listener(self) -> object:
        return self._listener

    def read_arrived(self) -> list[bytes]:
        frames, self.inbox = self.inbox, []
        return frames

    def write_frames(self, frames: list[bytes]) -> int:
        self.sent.extend(frames)
        return len(frames)

    def notify(self, event: ConversationEvent) -> None:
        self.events.append(event)

    def flush(self) -> int:
        self.flushes += 1
        return super().flush()

    def pause(self) -> None:
        self.pauses += 1
        super().pause()

    async def close_transport(self) -> None:
        self.hung_up = True

    async def transfer(self, target: str) -> bool:
        self.transfers.append(target)
        return self.accept_transfer

    async def tick(self, frame: bytes | None = SILENCE_FRAME) -> None:
        """One 20 ms tick: `frame` arrives (None: nothing did), the port pumps, the loop turns once."""
        if frame is not None:
            self.inbox.append(frame)
        self.pump()
        await asyncio.sleep(0)
