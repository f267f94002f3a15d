"""One call's recording: a two-channel PCM16 WAV at the internal rate, the caller on channel 1 and the
assistant on channel 2, written as the call goes.

It is a tap on the call's paced port (tomsip/audio/paced_port.py): each media tick hands it the
frames heard from the caller and the frames sent to them. Every heard frame is one 20 ms step of the
recording; what we sent is laid beside it in order (silence when we said nothing), so the channels
stay in step with the call's own clock. The file is opened only when the caller has consented, and
its header is completed when the recording stops; a write that fails stops the recording, never the
call.
"""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path
from typing import BinaryIO

import numpy as np

from tomsip.audio.frames import FRAME_BYTES, SAMPLE_RATE, SILENCE_FRAME
from tomsip.audio.wav import wav_header

log = logging.getLogger("tomsip.recording")

FLUSH_FRAMES = 50  # write to the file once a second
MAX_AHEAD_FRAMES = 50  # sent audio more than 1 s ahead of what was heard is dropped (never grows)


class CallRecording:
    def __init__(self, path: Path, call_id: str) -> None:
        self.path = path
        self._log = logging.LoggerAdapter(log, {"call_id": call_id})
        self._file: BinaryIO | None = None
        self._sent: deque[bytes] = deque()
        self._pending: list[bytes] = []
        self._data_bytes = 0
        self.failed = False

    def open(self) -> None:
        """Create the file (raises OSError: the caller decides what that means for the call)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("xb")
        self._file.write(wav_header(SAMPLE_RATE, None, channels=2))

    @property
    def seconds(self) -> float:
        return self._data_bytes / (4 * SAMPLE_RATE)

    def tick(self, heard: list[bytes], sent: list[bytes]) -> None:
        """One media tick of the call: frames from the caller, frames to the caller."""
        if self._file is None:
            return
        self._sent.extend(sent)
        while len(self._sent) > MAX_AHEAD_FRAMES:
            self._sent.popleft()
        for frame in heard:
            ours = self._sent.popleft() if self._sent else SILENCE_FRAME
            self._pending.append(interleave(frame, ours))
        if len(self._pending) >= FLUSH_FRAMES:
            self._write()

    def _write(self) -> None:
        if self._file is None or not self._pending:
            return
        chunk = b"".join(self._pending)
        self._pending.clear()
        try:
            self._file.write(chunk)
            self._data_bytes += len(chunk)
        except OSError as exc:
            self._stop_on(exc)

    def _stop_on(self, exc: OSError) -> None:
        self.failed = True
        self._log.warning("recording stopped: %s", type(exc).__name__)
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass

    def close(self) -> None:
        """Write what is left and complete the header with the real sizes."""
        self._write()
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.seek(0)
            file.write(wav_header(SAMPLE_RATE, self._data_bytes, channels=2))
            file.close()
        except OSError as exc:
            self._stop_on(exc)


def interleave(left: bytes, right: bytes) -> bytes:
    """Two 20 ms mono frames as one stereo frame (a short frame is padded with silence)."""
    a = np.frombuffer(left[:FRAME_BYTES].ljust(FRAME_BYTES, b"\0"), dtype="<i2")
    b = np.frombuffer(right[:FRAME_BYTES].ljust(FRAME_BYTES, b"\0"), dtype="<i2")
    return np.column_stack((a, b)).astype("<i2").tobytes()
