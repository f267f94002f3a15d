"""What the caller is doing, frame by frame: VAD, the echo gate, the fading-tail rule and the
end-pointer together, with the audio of the utterance being spoken.

Pure and clock-free like its parts: the turn taker (tomsip/call/turn_taker.py), its only user, feeds
every caller frame with how much of our own audio has played, and gets end-pointer events back. This
decides what was heard; the turn taker decides what that means for the conversation.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from tomsip.audio.echo_gate import EchoGate
from tomsip.audio.frames import FRAME_MS, rms_dbfs
from tomsip.audio.vad import EndPointer, EndPointEvent, SpeechEnd, SpeechStart, SpeechTail, VoiceDetector

PREROLL_MS = 200  # kept before the onset, so the utterance does not start mid-word


class VoiceActivityDetector(Protocol):
    """Is this 20 ms internal-format frame speech? (webrtcvad's VoiceDetector, or another model.)"""

    def is_speech(self, frame: bytes) -> bool: ...


class CallerSpeech:
    def __init__(
        self,
        *,
        silence_ms: int,
        onset_ms: int,
        max_utterance_ms: int,
        echo_return_loss_db: float,
        tail_drop_db: float,
        vad_aggressiveness: int = 2,
        vad: VoiceActivityDetector | None = None,
    ) -> None:
        self._vad = vad or VoiceDetector(vad_aggressiveness)
        self.endpointer = EndPointer(silence_ms, onset_ms, max_utterance_ms)
        self.echo = EchoGate(echo_return_loss_db)
        self._tail = SpeechTail(tail_drop_db)
        self._preroll: deque[bytes] = deque(maxlen=PREROLL_MS // FRAME_MS)
        self._utterance: list[bytes] = []
        self.echo_suppressed = 0

    @property
    def in_speech(self) -> bool:
        return self.endpointer.in_speech

    def hear(self, frame: bytes, played_frames: int) -> tuple[bool, list[EndPointEvent]]:
        """One caller frame; `played_frames` of our own audio have gone out so far. Returns whether it
        counted as the caller's voice, and the end-pointer's events."""
        voiced = self._vad.is_speech(frame)
        far_db = self.echo.far_level(played_frames)  # every frame: it is the gate's clock
        if voiced and self.echo.is_echo_of(frame, far_db):
            voiced = False
            self.echo_suppressed += 1
        if voiced and self.endpointer.in_speech and self._tail.quiet(rms_dbfs(frame)):
            voiced = False
        if self.endpointer.in_speech:
            self._utterance.append(frame)
        else:
            self._preroll.append(frame)
        events = self.endpointer.push(voiced)
        if events and isinstance(events[0], SpeechStart):
            self._tail.reset()
            self._utterance = list(self._preroll)
            self._preroll.clear()
        return voiced, events

    def so_far(self) -> bytes:
        """The utterance being spoken, as heard until now."""
        return b"".join(self._utterance)

    def continues(self, earlier: bytes) -> None:
        """The utterance now starting goes on from `earlier` (a turn ended too soon): hear both as one."""
        self._utterance.insert(0, earlier)

    def take_utterance(self) -> bytes:
        """The finished utterance's audio; the buffer starts afresh."""
        audio, self._utterance = b"".join(self._utterance), []
        return audio

    def force_end(self) -> SpeechEnd | None:
        return self.endpointer.force_end()
