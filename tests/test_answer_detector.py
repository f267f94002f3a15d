"""tomsip/audio/answer_detector.py: a person or an answering machine, from the first seconds.

The clips are tests/support/answering.py's: espeak-ng voices through an 8 kHz u-law leg with a
noise floor. bench/amd runs the same set with piper's voice added and prints the accuracy table.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.answering import Clip, beep, labelled_clips, phone_line, silence
from tomsip.audio.answer_detector import Answer, AnswerDetector, Verdict, VoicemailCue, tone_hz
from tomsip.audio.frames import FRAME_MS, SAMPLE_RATE
from tomsip.audio.vad import VoiceDetector


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    return labelled_clips()


def verdict_of(clip: Clip) -> Verdict:
    vad, detector = VoiceDetector(2), AnswerDetector()
    for frame in clip.frames():
        verdict = detector.push(vad.is_speech(frame), frame)
        if verdict is not None:
            return verdict
    raise AssertionError(f"no verdict for {clip.name}")


def test_the_labelled_set_has_twenty_clips_and_several_voices(clips: list[Clip]) -> None:
    assert len(clips) >= 20
    assert {c.label for c in clips} == {"human", "machine", "unknown"}
    assert len({c.name.split(":")[0] for c in clips if c.label == "human"}) >= 5


@pytest.mark.parametrize("kind", ["short", "talks on", "voicemail + beep", "voicemail, no beep", "silent line"])
def test_every_kind_of_answer_is_told_apart_in_every_voice(clips: list[Clip], kind: str) -> None:
    chosen = [c for c in clips if kind in c.name]
    assert chosen
    for clip in chosen:
        verdict = verdict_of(clip)
        assert verdict.answer.value == clip.label, (clip.name, verdict)
        assert verdict.at_ms <= 4000, f"{clip.name}: decided at {verdict.at_ms} ms"


def test_a_person_is_known_once_their_short_greeting_is_over(clips: list[Clip]) -> None:
    """The greeting to a person waits only for the pause after their "Hello?" (700 ms)."""
    for clip in (c for c in clips if "short" in c.name):
        verdict = verdict_of(clip)
        assert verdict.reason == "short_greeting" and verdict.at_ms <= 2700, (clip.name, verdict)


def test_a_beep_alone_is_a_machine_and_a_click_is_not_a_greeting() -> None:
    detector = AnswerDetector()
    frames = Clip("beep", "machine", phone_line([silence(0.4), beep(1400, 0.6)], 1)).frames()
    verdicts = [v for f in frames if (v := detector.push(False, f)) is not None]
    assert verdicts and verdicts[0].answer is Answer.MACHINE and verdicts[0].reason == "beep"
    assert 400 + 240 <= verdicts[0].at_ms <= 400 + 400
    click = AnswerDetector()
    pattern = [True, True] + [False] * 200
    results = [click.push(voiced, bytes(640)) for voiced in pattern]
    final = next(v for v in results if v is not None)
    assert final.answer is Answer.UNKNOWN and final.at_ms == 2500


def test_speech_is_not_a_tone_and_a_tone_has_its_pitch() -> None:
    t = np.arange(SAMPLE_RATE * FRAME_MS // 1000) / SAMPLE_RATE
    pure = (np.sin(2 * np.pi * 1000 * t) * 8000).astype("<i2").tobytes()
    assert tone_hz(pure) == pytest.approx(1000, abs=60)
    assert tone_hz(bytes(640)) is None
    vowel = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 12))
    assert tone_hz((vowel * 3000).astype("<i2").tobytes()) is None


@pytest.mark.parametrize(("with_beep", "earliest_s", "latest_s"), [(True, 0.0, 0.3), (False, 1.4, 1.8)])
def test_the_message_starts_after_the_beep_or_once_the_greeting_is_over(
    clips: list[Clip], with_beep: bool, earliest_s: float, latest_s: float
) -> None:
    clip = next(c for c in clips if c.name.startswith("en-us:") and ("+ beep" in c.name) == with_beep)
    vad, cue = VoiceDetector(2), VoicemailCue()
    frames = clip.frames()
    voiced = [vad.is_speech(f) for f in frames]
    last_sound = max(i for i, (v, f) in enumerate(zip(voiced, frames, strict=True)) if v or tone_hz(f))
    ready_at = next(i for i, (v, f) in enumerate(zip(voiced, frames, strict=True)) if cue.push(v, f))
    after_s = (ready_at - last_sound) * FRAME_MS / 1000
    assert earliest_s <= after_s <= latest_s, f"{clip.name}: ready {after_s:.2f} s after the last sound"
