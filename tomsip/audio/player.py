"""The paced player's bookkeeping, free of any clock or socket.

A transport asks it for frames on its own media clock (`take`), and the session queues reply audio
(`enqueue`) and interrupts it (`flush`). Keeping the queue and the played-time accounting here lets
every transport (SIP, WebSocket, WebRTC) report the same `played_ms`, which barge-in handling and
the speech-to-speech truncate message need.
"""

from __future__ import annotations

from collections import deque

from tomsip.audio.frames import FRAME_BYTES, FRAME_MS


class PlayoutQueue:
    """FIFO of 20 ms frames with counters of what was handed out and what was flushed."""

    def __init__(self) -> None:
        self._frames: deque[bytes] = deque()
        self._partial = b""
        self.frames_out = 0
        self.frames_flushed = 0

    def enqueue(self, pcm: bytes) -> None:
        """Queue PCM16 at the internal rate; a trailing partial frame waits for more or is padded
        by `end_of_stream`."""
        data = self._partial + pcm
        usable = len(data) - len(data) % FRAME_BYTES
        self._partial = data[usable:]
        for i in range(0, usable, FRAME_BYTES):
            self._frames.append(data[i : i + FRAME_BYTES])

    def end_of_stream(self) -> None:
        """Pad and queue a pending partial frame so the tail of a reply is not lost."""
        if self._partial:
            self._frames.append(self._partial + bytes(FRAME_BYTES - len(self._partial)))
            self._partial = b""

    def push_back(self, frames: list[bytes]) -> None:
        """Return frames that were handed out but never sent (a pause took them back from the
        transport's buffer): they play first when playout resumes."""
        self._frames.extendleft(reversed(frames))
        self.frames_out -= len(frames)

    def take(self, max_frames: int) -> list[bytes]:
        """Hand out up to `max_frames` frames for transmission."""
        out: list[bytes] = []
        while self._frames and len(out) < max_frames:
            out.append(self._frames.popleft())
        self.frames_out += len(out)
        return out

    def flush(self) -> int:
        """Drop everything queued; returns the milliseconds dropped."""
        dropped = len(self._frames) + (1 if self._partial else 0)
        self._frames.clear()
        self._partial = b""
        self.frames_flushed += dropped
        return dropped * FRAME_MS

    @property
    def queued_ms(self) -> int:
        return len(self._frames) * FRAME_MS

    @property
    def empty(self) -> bool:
        return not self._frames and not self._partial
