"""Keeps the assistant's own voice, echoed back by the line, from counting as the caller talking.

Phone lines return part of what we send (hybrid echo, a speakerphone): without a gate, the VAD hears
our reply and the call barges in on itself. This is the Geigel double-talk rule on 20 ms levels:
while we play, a voiced caller frame counts as speech only if it is louder than the loudest frame we
played within the echo tail, less the line's echo return loss (ERL). Telephone hybrids typically
return our audio 10-20 dB down (G.168 only guarantees 6 dB), so the dialplan default is 12 dB; a line
known to be worse is given less (`echo_return_loss_db`), at the price below.

A learned echo-path gain would let quieter callers through, but it can also learn itself into
ignoring a caller who talks over us; a fixed rule is predictable. The cost: while we speak, the
caller must be louder at the server than our loudest recent frame less the ERL to barge in.

Pure: fed the audio we queue for playout (framed exactly as the playout queue frames it), the count
of frames really played, and every caller frame. The caller's frames are its clock: each is 20 ms,
so when playout stops the window slides on over silence and the gate opens after the tail.
"""

from __future__ import annotations

from collections import deque
from itertools import islice

from tomsip.audio.frames import FRAME_BYTES, FRAME_MS, frame_levels_dbfs, rms_dbfs

QUIET_DBFS = -50.0  # a played frame under this carries nothing worth echoing


class EchoGate:
    def __init__(self, erl_db: float = 12.0, tail_ms: int = 400) -> None:
        self.erl_db = erl_db
        self._tail = max(1, tail_ms // FRAME_MS)
        self._levels: deque[float] = deque()  # levels of frames queued for playout, not dropped
        self._base = 0  # absolute played-frame index of _levels[0]
        self._partial = b""
        self._last_played = 0
        self._idle_ticks = 0  # caller frames since playout last advanced

    def on_play(self, pcm: bytes) -> None:
        """Reply audio queued for playout, in order."""
        data = self._partial + pcm
        usable = len(data) - len(data) % FRAME_BYTES
        self._partial = data[usable:]
        self._levels.extend(frame_levels_dbfs(data[:usable]))

    def on_end_of_reply(self) -> None:
        """The reply's padded last frame (the playout queue pads it too)."""
        if self._partial:
            self._levels.append(rms_dbfs(self._partial))
            self._partial = b""

    def on_flush(self, played_frames: int) -> None:
        """Queued audio was dropped: only what was really played can echo."""
        self._partial = b""
        keep = max(0, played_frames - self._base)
        while len(self._levels) > keep:
            self._levels.pop()

    def far_level(self, played_frames: int) -> float:
        """The loudest frame played within the echo tail (dBFS), or -120 when nothing was. Called once
        per caller frame: that is what moves the window on while nothing plays."""
        if played_frames != self._last_played:
            self._last_played, self._idle_ticks = played_frames, 0
        else:
            self._idle_ticks += 1
        if self._idle_ticks >= self._tail:
            return -120.0  # nothing played for a whole tail: the common case while the caller talks
        while self._levels and self._base < played_frames - self._tail:  # bounded history
            self._levels.popleft()
            self._base += 1
        end = min(played_frames - self._base, len(self._levels))
        start = max(0, end - self._tail + self._idle_ticks)
        return max(islice(self._levels, start, end), default=-120.0)

    def is_echo(self, frame: bytes, played_frames: int) -> bool:
        """True when a voiced caller frame may be nothing but our own playout coming back."""
        return self.is_echo_of(frame, self.far_level(played_frames))

    def is_echo_of(self, frame: bytes, far_db: float) -> bool:
        """The rule itself, given this tick's `far_level`."""
        return far_db >= QUIET_DBFS and rms_dbfs(frame) < far_db - self.erl_db
