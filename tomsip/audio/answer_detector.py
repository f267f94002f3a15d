"""Who answered an outbound call: a person or an answering machine, from the first seconds of audio.

No model is needed for the common cases. A person picks up and says something short ("Hello?",
"Hi, this is Anna") and then waits for the caller. A machine plays a greeting read in one go, with
only the short pauses between its sentences, and often ends it with a beep. So the first *greeting
run* (speech from its onset until a pause of `end_silence_ms`) decides:

- it ends before `machine_speech_ms`: HUMAN, as soon as the pause is long enough (a person who goes
  on talking after that pause is still a person);
- it is still going at `machine_speech_ms`: MACHINE;
- a steady tone (a beep: one frequency, 400-2,500 Hz, at least `beep_ms`) at any time: MACHINE;
- nobody speaks for `silence_ms`: UNKNOWN (treated as a person: some wait for the caller to talk).

The detector is pure: it is fed one VAD decision and one 20 ms frame (internal format) at a time,
from the answer on, and returns its verdict once. `VoicemailCue` then says when to leave a message:
after the beep, or once the greeting has been quiet for a while.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from tomsip.audio.frames import FRAME_MS, SAMPLE_RATE

BEEP_LOW_HZ, BEEP_HIGH_HZ = 400.0, 2500.0
BEEP_PURITY = 0.7  # share of a frame's energy within two FFT bins of its peak (a vowel spreads over harmonics)
BEEP_MIN_DBFS = -35.0
BEEP_DRIFT_HZ = 60.0  # a beep holds its pitch; speech does not


class Answer(enum.Enum):
    HUMAN = "human"
    MACHINE = "machine"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Verdict:
    answer: Answer
    at_ms: int  # from the answer
    reason: str  # short_greeting, long_greeting, beep, silence


@dataclass(frozen=True)
class DetectorConfig:
    silence_ms: int = 2500
    end_silence_ms: int = 700
    machine_speech_ms: int = 3000
    beep_ms: int = 240  # answering-machine beeps last 0.25-1 s; a sung vowel rarely holds one pitch this long
    min_speech_ms: int = 120  # less voice than this before a pause is a click or line noise, not a greeting


def tone_hz(frame: bytes) -> float | None:
    """The frame's pitch if it is one steady tone in the beep band, loud enough; else None."""
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    if len(samples) == 0:
        return None
    rms = float(np.sqrt(np.mean(samples**2)))
    if rms <= 0 or 20 * np.log10(rms / 32768) < BEEP_MIN_DBFS:
        return None
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    peak = int(np.argmax(spectrum))
    hz = peak * SAMPLE_RATE / len(samples)
    if not BEEP_LOW_HZ <= hz <= BEEP_HIGH_HZ:
        return None
    near = float(spectrum[max(0, peak - 2) : peak + 3].sum())
    return hz if near / float(spectrum.sum()) >= BEEP_PURITY else None


class BeepTracker:
    """A tone held for `beep_ms` at one pitch; `ended` once such a tone has stopped."""

    def __init__(self, beep_ms: int) -> None:
        self._need = max(1, beep_ms // FRAME_MS)
        self._run = 0
        self._hz = 0.0
        self.heard = False
        self.ended = False

    def push(self, frame: bytes) -> None:
        hz = tone_hz(frame)
        if hz is not None and (self._run == 0 or abs(hz - self._hz) <= BEEP_DRIFT_HZ):
            self._run += 1
            self._hz = hz
            if self._run >= self._need:
                self.heard = True
            return
        if self.heard:
            self.ended = True
        self._run = 0


class AnswerDetector:
    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        self._ms = 0
        self._onset_ms: int | None = None
        self._last_voiced_ms = 0
        self._voiced_ms = 0
        self._beep = BeepTracker(self.config.beep_ms)
        self.verdict: Verdict | None = None

    def push(self, voiced: bool, frame: bytes) -> Verdict | None:
        """Feed the next 20 ms; returns the verdict once, when it is reached."""
        if self.verdict is not None:
            return None
        self._ms += FRAME_MS
        self._beep.push(frame)
        if self._beep.heard:
            return self._decide(Answer.MACHINE, "beep")
        if voiced:
            if self._onset_ms is None:
                self._onset_ms = self._ms - FRAME_MS
            self._last_voiced_ms = self._ms
            self._voiced_ms += FRAME_MS
        if self._onset_ms is not None and self._ms - self._last_voiced_ms >= self.config.end_silence_ms:
            if self._voiced_ms >= self.config.min_speech_ms:
                return self._decide(Answer.HUMAN, "short_greeting")
            self._onset_ms, self._voiced_ms = None, 0  # a click: still waiting for a greeting
        if self._onset_ms is None:
            return self._decide(Answer.UNKNOWN, "silence") if self._ms >= self.config.silence_ms else None
        if self._last_voiced_ms - self._onset_ms >= self.config.machine_speech_ms:
            return self._decide(Answer.MACHINE, "long_greeting")
        return None

    def _decide(self, answer: Answer, reason: str) -> Verdict:
        self.verdict = Verdict(answer, self._ms, reason)
        return self.verdict


class VoicemailCue:
    """After a MACHINE verdict: when to start speaking the message. Right after a beep ends; without
    a beep, once the greeting has been quiet for `quiet_ms`; in any case by `max_wait_ms`."""

    def __init__(self, quiet_ms: int = 1500, max_wait_ms: int = 20_000, beep_ms: int = 240) -> None:
        self._quiet_need = quiet_ms
        self._max_wait = max_wait_ms
        self._quiet = 0
        self._ms = 0
        self._beep = BeepTracker(beep_ms)
        self.ready = False

    def push(self, voiced: bool, frame: bytes) -> bool:
        """Feed the next 20 ms; True once it is time to leave the message."""
        if self.ready:
            return True
        self._ms += FRAME_MS
        self._beep.push(frame)
        beeping = self._beep.heard and not self._beep.ended
        self._quiet = 0 if voiced or beeping else self._quiet + FRAME_MS
        self.ready = (
            (self._beep.ended and self._quiet >= 2 * FRAME_MS)
            or (not self._beep.heard and self._quiet >= self._quiet_need)
            or self._ms >= self._max_wait
        )
        return self.ready
