"""The paced port (tomsip/audio/paced_port.py) that every transport is built on, over in-memory
transports: one that sends what it is given at once (like the browser port) and one that keeps its
own buffer and sends a frame per tick (like the SIP stack)."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.memory_port import MemoryPort
from tomsip.audio.frames import FRAME_BYTES, SILENCE_FRAME
from tomsip.conversation.events import PlayoutCleared


class Listener:
    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.digits: list[str] = []
        self.hangups: list[str] = []
        self.holds: list[bool] = []

    def on_frame(self, frame: bytes) -> None:
        self.frames.append(frame)

    def on_dtmf(self, digit: str) -> None:
        self.digits.append(digit)

    def on_hangup(self, reason: str) -> None:
        self.hangups.append(reason)

    def on_hold(self, held: bool) -> None:
        self.holds.append(held)


class BufferingPort(MemoryPort):
    """A transport with its own transmit buffer that sends one frame per tick."""

    BUFFERS_TX = True
    TX_LEAD_FRAMES = 3

    def __init__(self) -> None:
        super().__init__()
        self.buffer: list[bytes] = []

    def write_frames(self, frames: list[bytes]) -> int:
        self.buffer += frames
        return len(frames)

    def tx_buffered(self) -> int | None:
        return len(self.buffer)

    def drop_buffered(self) -> int | None:
        unsent, self.buffer = len(self.buffer), []
        return unsent

    async def tick(self, frame: bytes | None = SILENCE_FRAME) -> None:
        await super().tick(frame)
        if self.buffer:
            self.sent.append(self.buffer.pop(0))


def numbered(n: int) -> bytes:
    return b"".join(bytes([i]) * FRAME_BYTES for i in range(1, n + 1))


async def test_silence_is_inserted_after_three_quiet_ticks_and_counted() -> None:
    port, listener = MemoryPort(), Listener()
    port.attach(listener)
    await port.tick(b"\x01" * FRAME_BYTES)
    for _ in range(5):
        await port.tick(None)
    assert listener.frames == [b"\x01" * FRAME_BYTES] + [SILENCE_FRAME] * 3
    assert port.counters.silence == 3


async def test_one_frame_per_tick_and_played_counts_only_what_went_out() -> None:
    port = MemoryPort()
    port.attach(Listener())
    port.play(numbered(5)[:-100])
    port.end_of_reply()  # the partial last frame is padded, not lost
    for _ in range(3):
        await port.tick()
    assert port.played_ms == 60 and port.playing
    for _ in range(3):
        await port.tick()
    assert len(port.sent) == 5 and port.sent[-1].endswith(bytes(100)) and not port.playing


async def test_pause_holds_and_resume_continues_where_it_stopped() -> None:
    port = MemoryPort()
    port.attach(Listener())
    port.play(numbered(6))
    await port.tick()
    port.pause()
    await port.tick()
    await port.tick()
    assert port.sent == [numbered(1)] and port.played_ms == 20
    port.resume()
    for _ in range(5):
        await port.tick()
    assert b"".join(port.sent) == numbered(6)


async def test_flush_drops_everything_queued_and_tells_the_display() -> None:
    port = MemoryPort()
    port.attach(Listener())
    port.play(numbered(10))
    await port.tick()
    assert port.flush() == 180 and not port.playing and port.played_ms == 20
    assert port.events == [PlayoutCleared()]


async def test_a_buffering_transport_keeps_a_short_lead_and_a_pause_takes_it_back() -> None:
    port = BufferingPort()
    port.attach(Listener())
    port.play(numbered(8))
    await port.tick()
    assert len(port.buffer) + len(port.sent) == 3, "three frames handed over, no more"
    await port.tick()
    assert port.played_ms == 20, "what the transport still holds has not been played"
    port.pause()
    assert port.buffer == [] and port.played_ms == len(port.sent) * 20
    await port.tick()
    port.resume()
    for _ in range(12):
        await port.tick()
    assert b"".join(port.sent) == numbered(8), "the frames taken back play first, in order, once"


async def test_a_flush_empties_the_transports_buffer_and_counts_it_as_dropped() -> None:
    port = BufferingPort()
    port.attach(Listener())
    port.play(numbered(8))
    await port.tick()
    await port.tick()
    sent = len(port.sent)
    assert port.flush() == (8 - sent) * 20
    for _ in range(3):
        await port.tick()
    assert len(port.sent) == sent and port.played_ms == sent * 20 and not port.playing


async def test_a_listener_that_attaches_after_the_far_end_left_hears_the_hangup() -> None:
    port, listener = MemoryPort(), Listener()
    port.remote_closed("remote_hangup")
    port.remote_closed("twice")
    port.digit_received("5")
    port.attach(listener)
    await port.tick()
    assert listener.hangups == ["remote_hangup"] and listener.frames == [] and listener.digits == []


async def test_a_media_failure_ends_this_call_once_with_a_hangup() -> None:
    port, listener = MemoryPort(), Listener()
    port.attach(listener)
    port.fail(RuntimeError("decoder broke"))
    await asyncio.sleep(0)
    assert listener.hangups == ["error"] and port.hung_up and port.counters.failures == 1
    await port.tick()
    assert listener.frames == [], "no frames after the failure"


async def test_hangup_reaches_the_transport_once_and_never_raises() -> None:
    class Failing(MemoryPort):
        closes = 0

        async def close_transport(self) -> None:
            self.closes += 1
            raise ConnectionResetError("gone")

    port = Failing()
    port.attach(Listener())
    await port.hangup()
    await port.hangup()
    assert port.closes == 1


@pytest.mark.parametrize("digit", ["1", "#"])
async def test_digits_reach_the_listener(digit: str) -> None:
    port, listener = MemoryPort(), Listener()
    port.attach(listener)
    port.digit_received(digit)
    assert listener.digits == [digit]
