"""The turn-taking policy (tomsip/call/turn_taking.py): how complete what the caller said is, and
how much silence that earns; with the end-pointer's moving silence it relies on."""

from __future__ import annotations

import pytest

from tomsip.audio.vad import EndPointer, SpeechEnd
from tomsip.call.turn_taking import Completeness, TurnTakingPolicy, completeness


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("I'd like Tuesday at ten.", Completeness.COMPLETE),
        ("Can I speak to someone?", Completeness.COMPLETE),
        ("I would like to book for", Completeness.INCOMPLETE),
        ("Tuesday and...", Completeness.INCOMPLETE),
        ("Um, so.", Completeness.INCOMPLETE),
        ("My number is 0 7 7", Completeness.DIGITS),
        ("it's four four seven, one two", Completeness.DIGITS),
        ("", Completeness.EMPTY),
        ("hello", Completeness.INCOMPLETE),
        ("Hello.", Completeness.INCOMPLETE),
        ("Yes, please.", Completeness.SHORT_ANSWER),
        ("No thanks.", Completeness.SHORT_ANSWER),
        ("Um.", Completeness.INCOMPLETE),
        ("Hi there.", Completeness.INCOMPLETE),
        ("Tuesday at ten.", Completeness.COMPLETE),
    ],
)
def test_completeness(text: str, verdict: Completeness) -> None:
    assert completeness(text) is verdict


def test_policy_maps_verdicts_to_silences() -> None:
    policy = TurnTakingPolicy(silence_ms=600, speculate_after_ms=160, complete_silence_ms=200, digits_silence_ms=1500)
    assert policy.silence_for("Book me in on Monday.") == 200
    assert policy.silence_for("the number is 1 2 3 4") == 1500
    assert policy.silence_for("on Monday and") == 600
    assert policy.silence_for("Yes.") == 450
    assert policy.pending_silence_ms == 1500


def test_endpointer_silence_moves_for_one_utterance_and_force_end_reports_the_speech() -> None:
    ep = EndPointer(silence_ms=200, onset_ms=40)
    for _ in range(10):
        ep.push(True)
    ep.set_silence_ms(1000)
    events = [e for _ in range(20) for e in ep.push(False)]
    assert not any(isinstance(e, SpeechEnd) for e in events), "the longer silence holds the utterance open"
    assert ep.silent_ms == 400
    end = ep.force_end()
    assert end is not None and end.speech_ms == 200 and not ep.in_speech
    for _ in range(10):
        ep.push(True)
    events = [e for _ in range(10) for e in ep.push(False)]
    assert any(isinstance(e, SpeechEnd) for e in events), "the next utterance is back to the default"
    assert ep.force_end() is None
