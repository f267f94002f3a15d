"""tomsip/call/answer_watch.py: the detector's verdict and the voicemail cue, as FSM events."""

from __future__ import annotations

import numpy as np

from tests.support.answering import GREETING, beep, espeak, phone_line, silence
from tomsip.audio.frames import FRAME_BYTES, FRAME_MS
from tomsip.audio.vad import VoiceDetector
from tomsip.call import fsm
from tomsip.call.answer_watch import AnswerWatch


def events_of(pcm: bytes, watch: AnswerWatch) -> list[tuple[int, fsm.Event]]:
    """(ms from the answer, event) for every event the watch gives."""
    vad = VoiceDetector(2)
    out: list[tuple[int, fsm.Event]] = []
    for n, i in enumerate(range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)):
        frame = pcm[i : i + FRAME_BYTES]
        out += [((n + 1) * FRAME_MS, e) for e in watch.push(vad.is_speech(frame), frame)]
    return out


def test_a_person_is_announced_once_and_the_watch_is_done() -> None:
    watch = AnswerWatch()
    events = events_of(phone_line([silence(0.4), espeak("Hello?", "en-us"), silence(3)], 1), watch)
    assert [e for _, e in events] == [fsm.AnswerDetected("human")]
    assert watch.done and watch.verdict is not None and watch.verdict.reason == "short_greeting"


def test_a_machine_with_a_beep_is_cued_right_after_the_beep() -> None:
    greeting = espeak(GREETING, "en-gb")
    tone = beep(1000, 0.5)
    pcm = phone_line([silence(0.3), greeting, silence(0.4), tone, silence(2)], 2)
    beep_end_ms = int((0.3 + 0.4) * 1000 + (len(greeting) + len(tone)) / 16)
    events = events_of(pcm, AnswerWatch())
    assert [e for _, e in events] == [fsm.AnswerDetected("machine"), fsm.VoicemailReady()]
    assert events[0][0] <= 3200
    assert beep_end_ms <= events[1][0] <= beep_end_ms + 200, (events, beep_end_ms)


def test_a_machine_without_a_beep_is_cued_after_its_greeting_falls_quiet() -> None:
    greeting = espeak(GREETING, "en-us")
    pcm = phone_line([silence(0.3), greeting, silence(3)], 3)
    end_ms = int(300 + len(greeting) / 16)
    events = events_of(pcm, AnswerWatch())
    assert [e for _, e in events] == [fsm.AnswerDetected("machine"), fsm.VoicemailReady()]
    assert end_ms + 1000 <= events[1][0] <= end_ms + 2200, (events, end_ms)


def test_with_no_message_to_leave_a_machine_is_ready_at_once() -> None:
    pcm = phone_line([silence(0.3), espeak(GREETING, "en-us")], 4)
    events = events_of(pcm, AnswerWatch(leave_message=False))
    assert [e for _, e in events] == [fsm.AnswerDetected("machine"), fsm.VoicemailReady()]
    assert events[0][0] == events[1][0]


def test_silence_is_unknown_after_the_detector_gives_up() -> None:
    events = events_of(np.zeros(16000 * 4, dtype="<i2").tobytes(), AnswerWatch())
    assert events == [(2500, fsm.AnswerDetected("unknown"))]
