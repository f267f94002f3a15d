"""The pure pieces of turn-taking and echo handling: completeness rules, the end-pointer's moving
silence, the Geigel echo gate, sentence cutting, and the bounded inference pool."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from tomsip.audio.echo_gate import EchoGate
from tomsip.audio.frames import FRAME_BYTES, FRAME_SAMPLES
from tomsip.audio.vad import EndPointer, SpeechEnd, SpeechStart, SpeechTail
from tomsip.call.turn_taking import Completeness, TurnTakingPolicy, completeness
from tomsip.speech.inference import InferenceOverloaded, InferencePool
from tomsip.speech.sentences import SentenceCutter, split_sentences


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


def _tone_frames(level_dbfs: float, n: int) -> list[bytes]:
    t = np.arange(FRAME_SAMPLES * n) / 16000
    amplitude = 32768 * 10 ** (level_dbfs / 20) * np.sqrt(2)
    pcm = (amplitude * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


def test_echo_gate_suppresses_our_attenuated_voice_but_not_a_louder_caller() -> None:
    gate = EchoGate(erl_db=12, tail_ms=400)
    played = _tone_frames(-16, 50)
    gate.on_play(b"".join(played))
    echo = _tone_frames(-31, 1)[0]  # 15 dB down
    caller = _tone_frames(-20, 1)[0]
    assert gate.is_echo(echo, played_frames=10)
    assert not gate.is_echo(caller, played_frames=10)
    assert not gate.is_echo(echo, played_frames=0), "nothing played yet: nothing can echo"


def test_echo_gate_forgets_flushed_audio_and_old_audio() -> None:
    gate = EchoGate(erl_db=12, tail_ms=100)
    gate.on_play(b"".join(_tone_frames(-16, 50)))
    gate.on_flush(played_frames=5)  # a barge-in dropped frames 5..49
    echo = _tone_frames(-31, 1)[0]
    assert gate.is_echo(echo, played_frames=5)
    assert not gate.is_echo(echo, played_frames=30), "the tail has passed: what is heard now is the caller"


def test_sentence_cutter_streams_sentences_and_keeps_abbreviations_and_decimals() -> None:
    cutter = SentenceCutter()
    assert [cutter.push(t) for t in ["Su", "re. Which", " day", "? "]] == [[], ["Sure."], [], ["Which day?"]]
    assert split_sentences("Okay, at 10.30. Dr. Smith is in! Shall I book it? yes") == [
        "Okay, at 10.30.",
        "Dr. Smith is in!",
        "Shall I book it?",
        "yes",
    ]


async def test_inference_pool_refuses_past_its_queue_and_counts_nothing_lost() -> None:
    pool = InferencePool("test", workers=1, max_pending=1)
    release = threading.Event()
    first = asyncio.ensure_future(pool.run(lambda: release.wait(5) and 1))
    second = asyncio.ensure_future(pool.run(lambda: 2))
    await asyncio.sleep(0.05)
    with pytest.raises(InferenceOverloaded):
        await pool.run(lambda: 3)
    release.set()
    assert await first == 1 and await second == 2
    assert pool.in_flight == 0
    pool.close()


def test_echo_gate_opens_one_tail_after_playout_stops() -> None:
    """Nothing plays any more: each caller frame is 20 ms, so after the 400 ms tail the gate is open."""
    gate = EchoGate(erl_db=12, tail_ms=400)
    frames = _tone_frames(-16, 10)
    gate.on_play(b"".join(frames) + frames[0][:100])  # a partial last frame, padded at the end of the reply
    gate.on_end_of_reply()
    echo = _tone_frames(-31, 1)[0]
    assert gate.is_echo(echo, played_frames=11)
    verdicts = [gate.is_echo(echo, played_frames=11) for _ in range(25)]
    assert verdicts[0] and not verdicts[-1]
    assert verdicts.index(False) == 19, "open once the newest played frame is a tail (20 frames) old"


def test_the_fading_tail_of_an_utterance_counts_as_silence_but_soft_speech_does_not() -> None:
    tail = SpeechTail(drop_db=30)
    assert not tail.quiet(-18) and not tail.quiet(-35), "a softer word is still speech"
    assert tail.quiet(-50), "30 dB under the loudest frame is only the fading tail"
    tail.reset()
    assert not tail.quiet(-50), "a new utterance starts from its own level"
    assert not SpeechTail(drop_db=0).quiet(-100), "0 switches the rule off"


def test_caller_speech_keeps_the_preroll_and_counts_echo() -> None:
    from tomsip.audio.caller_speech import PREROLL_MS, CallerSpeech

    caller = CallerSpeech(silence_ms=200, onset_ms=40, max_utterance_ms=5000, echo_return_loss_db=12, tail_drop_db=30)
    quiet = _tone_frames(-90, 20)
    loud = _tone_frames(-20, 30)
    for frame in quiet:
        caller.hear(frame, played_frames=0)
    starts = [e for frame in loud for e in caller.hear(frame, played_frames=0)[1] if isinstance(e, SpeechStart)]
    assert len(starts) == 1
    heard = caller.so_far()
    # the 200 ms window that held the onset (8 quiet frames and the 2 onset frames), then the rest
    assert len(heard) == (PREROLL_MS // 20 + 28) * FRAME_BYTES
    assert heard[:FRAME_BYTES] == quiet[0] and heard[-FRAME_BYTES:] == loud[-1]
    caller.echo.on_play(b"".join(_tone_frames(-10, 30)))
    voiced, _ = caller.hear(_tone_frames(-30, 1)[0], played_frames=30)
    assert not voiced and caller.echo_suppressed == 1
