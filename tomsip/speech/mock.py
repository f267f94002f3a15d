"""A deterministic brain for tests and load tests: it answers in tones.

The reply says, in pitch and length, which turn it is and how long the caller spoke, so a test that
only sees the RTP coming back can tell which reply it got (docs: sipp_scenarios/README.md):

| turn                     | tone                                                      |
|--------------------------|-----------------------------------------------------------|
| greeting                 | 440 Hz, 800 ms                                            |
| n-th reply to speech     | 600 + 200*((n-1) % 8) Hz, caller's speech rounded to 100 ms, 300..4000 ms |
| reply to digit d         | 2400 Hz, 100 ms x (position of d in "0123456789*#ABCD" + 1)      |
| digit '#'                | 2600 Hz, 300 ms, then the call closes                     |
| no input (re-prompt)     | 3000 Hz, 300 ms                                           |
| goodbye                  | 350 Hz, 600 ms                                            |
| rating question          | 1800 Hz, 500 ms                                           |

It implements the same stage interfaces as real speech: MockSpeechToText, MockResponder and ToneSpeech
(a TTS for the tiny language "tone <Hz> <ms>") run inside the ordinary StagedPipeline.
The dialplan option `mock_fail_on_reply = n` makes the n-th reply raise, to test that one call's
failure ends only that call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from functools import lru_cache

import numpy as np

from tomsip.audio.frames import SAMPLE_RATE, bytes_to_ms
from tomsip.conversation.turns import TurnKind
from tomsip.speech.staged_brain import StagedPipeline
from tomsip.speech.stages import ReplyText, Transcript, TurnRequest

DIGITS = "0123456789*#ABCD"
GREETING_TONE = (440, 800)
GOODBYE_TONE = (350, 600)
NO_INPUT_TONE = (3000, 300)
RESUMED_TONE = (3500, 300)  # back from hold
RATING_TONE = (1800, 500)
VOICEMAIL_TONE = (1200, 1000)  # the message left on an answering machine
CONSENT_TONE = (2800, 400)  # the recording notice or question
TRANSFER_TONE = (3400, 200)  # "putting you through" (digit 0 with a transfer_uri)
BRIEFING_TONE = (3200, 600)  # to the agent of a warm transfer
TRANSFER_FAILED_TONE = (3800, 500)  # nobody took the transfer: leave a message?
MESSAGE_TAKEN_TONE = (2200, 300)
HANGUP_DIGIT_TONE = (2600, 300)
DIGIT_HZ = 2400
CHUNK_MS = 200


log = logging.getLogger("tomsip.speech.mock")


def reply_tone(reply_number: int, speech_ms: int) -> tuple[int, int]:
    """The tone that answers the `reply_number`-th utterance of `speech_ms` milliseconds."""
    hz = 600 + 200 * ((reply_number - 1) % 8)
    ms = min(4000, max(300, round(speech_ms / 100.0) * 100))
    return hz, ms


def digit_tone(digit: str) -> tuple[int, int]:
    return DIGIT_HZ, 100 * (DIGITS.index(digit) + 1)


class MockSpeechToText:
    async def transcribe(self, audio: bytes) -> Transcript:
        return Transcript(f"{bytes_to_ms(len(audio))} ms of speech")


# Turns whose words do not depend on what the caller said: one tone each.
FIXED_TONES = {
    TurnKind.GREETING: GREETING_TONE,
    TurnKind.GOODBYE: GOODBYE_TONE,
    TurnKind.NO_INPUT: NO_INPUT_TONE,
    TurnKind.RESUMED: RESUMED_TONE,
    TurnKind.RATING: RATING_TONE,
    TurnKind.VOICEMAIL: VOICEMAIL_TONE,
    TurnKind.CONSENT: CONSENT_TONE,
    TurnKind.BRIEFING: BRIEFING_TONE,
    TurnKind.TRANSFER_FAILED: TRANSFER_FAILED_TONE,
    TurnKind.MESSAGE_TAKEN: MESSAGE_TAKEN_TONE,
}


class MockConversation:
    def __init__(self, fail_on_reply: int | None, transfer_uri: str = "") -> None:
        self._replies = 0
        self._fail_on_reply = fail_on_reply
        self._transfer_uri = transfer_uri

    async def respond(self, request: TurnRequest, transcript: Transcript | None) -> AsyncIterator[ReplyText]:
        kind = request.kind
        if kind in FIXED_TONES:
            yield _tone_text(FIXED_TONES[kind])
        elif kind is TurnKind.DIGIT:
            if request.digit == "#":
                yield ReplyText(_tone_text(HANGUP_DIGIT_TONE).text, end_call=True)
            elif request.digit == "0" and self._transfer_uri:  # "a person, please": the dialplan's transfer
                yield ReplyText(_tone_text(TRANSFER_TONE).text, transfer_to=self._transfer_uri)
            elif request.digit in DIGITS:
                yield _tone_text(digit_tone(request.digit))
        else:
            self._replies += 1
            if self._fail_on_reply is not None and self._replies == self._fail_on_reply:
                raise RuntimeError("mock brain failure injected by the dialplan (mock_fail_on_reply)")
            yield _tone_text(reply_tone(self._replies, request.speech_ms))


def _tone_text(tone: tuple[int, int]) -> ReplyText:
    return ReplyText(f"tone {tone[0]} {tone[1]}")


class MockResponder:
    def open(self, call_id: str, options: Mapping[str, object]) -> MockConversation:
        fail = options.get("mock_fail_on_reply")
        return MockConversation(int(fail) if isinstance(fail, int) else None, str(options.get("transfer_uri") or ""))

    def fixed_phrases(self, options: Mapping[str, object]) -> list[str]:
        return []  # tones cost nothing to make


@lru_cache(maxsize=256)
def tone_pcm(hz: int, ms: int, level_dbfs: float = -12.0) -> bytes:
    """A sine tone with 5 ms ramps (no clicks that a VAD could take for speech)."""
    n = SAMPLE_RATE * ms // 1000
    t = np.arange(n) / SAMPLE_RATE
    amplitude = 32767 * 10 ** (level_dbfs / 20)
    wave = amplitude * np.sin(2 * np.pi * hz * t)
    ramp = min(n // 2, SAMPLE_RATE // 200)
    if ramp:
        envelope = np.ones(n)
        envelope[:ramp] = np.linspace(0, 1, ramp)
        envelope[-ramp:] = np.linspace(1, 0, ramp)
        wave *= envelope
    return wave.astype("<i2").tobytes()


class ToneSpeech:
    """TTS for "tone <Hz> <ms>" texts, streamed in 200 ms chunks like a real engine would."""

    def __init__(self) -> None:
        self._rates_ignored: set[float] = set()

    def at_rate(self, rate: float) -> ToneSpeech:
        """A policy's speaking_rate is accepted (so the shipped dialplans run on the mock) but not
        applied: a tone's length is what the tests read back (the caller's speech length), so it stays."""
        if rate not in self._rates_ignored:
            self._rates_ignored.add(rate)
            log.warning("mock pipeline: speaking_rate %.2f ignored; tones keep their lengths", rate)
        return self

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        words = text.split()
        if len(words) != 3 or words[0] != "tone":
            raise ValueError(f"the tone speaker cannot say {text!r}")
        pcm = tone_pcm(int(words[1]), int(words[2]))
        step = SAMPLE_RATE * CHUNK_MS // 1000 * 2
        for i in range(0, len(pcm), step):
            yield pcm[i : i + step]
            await asyncio.sleep(0)


def build_mock_pipeline() -> StagedPipeline:
    return StagedPipeline("mock", MockSpeechToText(), MockResponder(), ToneSpeech())
