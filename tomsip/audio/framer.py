"""Cuts a byte stream of arbitrary chunk sizes into fixed frames.

Transports hand over audio in whatever sizes the network gave them (30 ms PCMA packets, 10 ms browser
chunks, resampler bursts); everything behind the AudioPort wants exactly 20 ms.
"""

from __future__ import annotations

from tomsip.audio.frames import FRAME_BYTES


class Framer:
    """Accumulates bytes and yields complete frames of `frame_bytes`, keeping the remainder."""

    def __init__(self, frame_bytes: int = FRAME_BYTES, max_buffered: int = FRAME_BYTES * 50) -> None:
        self.frame_bytes = frame_bytes
        self.max_buffered = max_buffered
        self._buf = bytearray()

    def push(self, data: bytes) -> list[bytes]:
        """Add data and return every complete frame now available, oldest first.

        If more than `max_buffered` piles up (a stalled consumer), the oldest audio is dropped so that
        live audio stays live.
        """
        self._buf += data
        excess = len(self._buf) - self.max_buffered
        if excess > 0:
            excess += (-excess) % self.frame_bytes
            del self._buf[:excess]
        n = len(self._buf) // self.frame_bytes
        if n == 0:
            return []
        cut = n * self.frame_bytes
        chunk = bytes(self._buf[:cut])
        del self._buf[:cut]
        size = self.frame_bytes
        return [chunk[i : i + size] for i in range(0, cut, size)]

    @property
    def buffered(self) -> int:
        """Bytes waiting for a complete frame."""
        return len(self._buf)

    def clear(self) -> None:
        self._buf.clear()
