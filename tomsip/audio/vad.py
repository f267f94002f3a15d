"""Voice activity per frame (webrtcvad) and the end-pointer that turns it into speech events.

The end-pointer is pure: it is fed one boolean per 20 ms frame and says when speech started (after a
minimum run of voiced frames, so a click is not speech) and when an utterance ended (after a run of
unvoiced frames as long as the silence threshold). The call FSM never sees raw VAD decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

import webrtcvad

from tomsip.audio.frames import FRAME_BYTES, FRAME_MS, SAMPLE_RATE


class VoiceDetector:
    """webrtcvad over internal-format frames; aggressiveness 0 (lenient) to 3 (strict)."""

    def __init__(self, aggressiveness: int = 2) -> None:
        if not 0 <= aggressiveness <= 3:
            raise ValueError("VAD aggressiveness must be 0..3")
        self._vad = webrtcvad.Vad(aggressiveness)

    def is_speech(self, frame: bytes) -> bool:
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"VAD needs {FRAME_BYTES}-byte frames, got {len(frame)}")
        return bool(self._vad.is_speech(frame, SAMPLE_RATE))


class SpeechTail:
    """Says when the fading tail of an utterance is already silence to a listener.

    webrtcvad keeps calling frames voiced for 100-200 ms after a speaker's last audible sound (the
    fading tail of "please" at -50..-57 dBFS), and every one of those milliseconds delays the end of
    the turn. Inside an utterance, a frame more than `drop_db` below the loudest frame so far counts
    as silence for end-pointing. Onset is untouched: this only decides when an utterance has ended.
    """

    def __init__(self, drop_db: float = 30.0) -> None:
        self.drop_db = drop_db
        self._peak = -120.0

    def reset(self) -> None:
        self._peak = -120.0

    def quiet(self, level_dbfs: float) -> bool:
        """Feed every voiced frame of an utterance; True when this one is only its tail."""
        self._peak = max(self._peak, level_dbfs)
        return self.drop_db > 0 and level_dbfs < self._peak - self.drop_db


@dataclass(frozen=True)
class SpeechStart:
    """Voiced frames reached the onset minimum; `onset_frame` is the first voiced frame's index."""

    onset_frame: int


@dataclass(frozen=True)
class SpeechEnd:
    """The caller stopped talking: voiced span length, and the frame index where silence began."""

    speech_ms: int
    end_frame: int


@dataclass(frozen=True)
class VoiceDuration:
    """Emitted on each voiced frame after speech start: how long the caller has been talking."""

    speech_ms: int


@dataclass(frozen=True)
class VoiceGap:
    """Emitted on each unvoiced frame inside an utterance: how long the caller has been quiet, and how
    much voiced span came before (lets a tentative barge-in be withdrawn after a cough)."""

    silent_ms: int
    speech_ms: int


EndPointEvent = SpeechStart | SpeechEnd | VoiceDuration | VoiceGap


class EndPointer:
    """Turns per-frame voiced/unvoiced decisions into speech start, duration and end events."""

    def __init__(self, silence_ms: int = 600, onset_ms: int = 40, max_utterance_ms: int = 30_000) -> None:
        if silence_ms < FRAME_MS or onset_ms < FRAME_MS:
            raise ValueError("silence and onset must be at least one frame")
        self.default_silence_frames = silence_ms // FRAME_MS
        self.silence_frames = self.default_silence_frames
        self.onset_frames = onset_ms // FRAME_MS
        self.max_frames = max_utterance_ms // FRAME_MS
        self.frame_index = 0
        self._in_speech = False
        self._voiced_run = 0
        self._silent_run = 0
        self._start_frame = 0

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def silent_ms(self) -> int:
        """How long the caller has been quiet inside the current utterance."""
        return self._silent_run * FRAME_MS if self._in_speech else 0

    def reset(self) -> None:
        """Forget a half-heard utterance (after the assistant starts a new turn)."""
        self._in_speech = False
        self._voiced_run = 0
        self._silent_run = 0
        self.silence_frames = self.default_silence_frames

    def set_silence_ms(self, ms: int) -> None:
        """The silence that ends the current utterance (the turn-taking policy moves it once it knows
        what was said); back to the default with the next utterance."""
        self.silence_frames = max(1, ms // FRAME_MS)

    def force_end(self) -> SpeechEnd | None:
        """End the current utterance now (the policy decided the caller is done)."""
        if not self._in_speech:
            return None
        last = self.frame_index - 1
        span_frames = last - self._start_frame + 1
        speech_frames = span_frames - self._silent_run
        end = SpeechEnd(speech_frames * FRAME_MS, last - self._silent_run + 1)
        self.reset()
        return end

    def push(self, voiced: bool) -> list[EndPointEvent]:
        index = self.frame_index
        self.frame_index += 1
        events: list[EndPointEvent] = []
        if not self._in_speech:
            if voiced:
                self._voiced_run += 1
                if self._voiced_run >= self.onset_frames:
                    self._in_speech = True
                    self._silent_run = 0
                    self._start_frame = index - self._voiced_run + 1
                    events.append(SpeechStart(self._start_frame))
            else:
                self._voiced_run = 0
            return events
        span_frames = index - self._start_frame + 1
        if voiced:
            self._silent_run = 0
            events.append(VoiceDuration(span_frames * FRAME_MS))
        else:
            self._silent_run += 1
            events.append(VoiceGap(self._silent_run * FRAME_MS, (span_frames - self._silent_run) * FRAME_MS))
        if self._silent_run >= self.silence_frames or span_frames >= self.max_frames:
            speech_frames = span_frames - self._silent_run
            events.append(SpeechEnd(speech_frames * FRAME_MS, index - self._silent_run + 1))
            self.reset()
        return events
