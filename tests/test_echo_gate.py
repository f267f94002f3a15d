"""The Geigel echo gate (tomsip/audio/echo_gate.py): our own voice coming back is not the caller."""

from __future__ import annotations

from tests.support.tones import tone_frames
from tomsip.audio.echo_gate import EchoGate


def test_echo_gate_suppresses_our_attenuated_voice_but_not_a_louder_caller() -> None:
    gate = EchoGate(erl_db=12, tail_ms=400)
    played = tone_frames(-16, 50)
    gate.on_play(b"".join(played))
    echo = tone_frames(-31, 1)[0]  # 15 dB down
    caller = tone_frames(-20, 1)[0]
    assert gate.is_echo(echo, played_frames=10)
    assert not gate.is_echo(caller, played_frames=10)
    assert not gate.is_echo(echo, played_frames=0), "nothing played yet: nothing can echo"


def test_echo_gate_forgets_flushed_audio_and_old_audio() -> None:
    gate = EchoGate(erl_db=12, tail_ms=100)
    gate.on_play(b"".join(tone_frames(-16, 50)))
    gate.on_flush(played_frames=5)  # a barge-in dropped frames 5..49
    echo = tone_frames(-31, 1)[0]
    assert gate.is_echo(echo, played_frames=5)
    assert not gate.is_echo(echo, played_frames=30), "the tail has passed: what is heard now is the caller"


def test_echo_gate_opens_one_tail_after_playout_stops() -> None:
    """Nothing plays any more: each caller frame is 20 ms, so after the 400 ms tail the gate is open."""
    gate = EchoGate(erl_db=12, tail_ms=400)
    frames = tone_frames(-16, 10)
    gate.on_play(b"".join(frames) + frames[0][:100])  # a partial last frame, padded at the end of the reply
    gate.on_end_of_reply()
    echo = tone_frames(-31, 1)[0]
    assert gate.is_echo(echo, played_frames=11)
    verdicts = [gate.is_echo(echo, played_frames=11) for _ in range(25)]
    assert verdicts[0] and not verdicts[-1]
    assert verdicts.index(False) == 19, "open once the newest played frame is a tail (20 frames) old"
