"""CallerSpeech (tomsip/audio/caller_speech.py) and the fading-tail rule it applies."""

from __future__ import annotations

from tests.support.tones import tone_frames
from tomsip.audio.caller_speech import PREROLL_MS, CallerSpeech
from tomsip.audio.frames import FRAME_BYTES
from tomsip.audio.vad import SpeechStart, SpeechTail


def test_the_fading_tail_of_an_utterance_counts_as_silence_but_soft_speech_does_not() -> None:
    tail = SpeechTail(drop_db=30)
    assert not tail.quiet(-18) and not tail.quiet(-35), "a softer word is still speech"
    assert tail.quiet(-50), "30 dB under the loudest frame is only the fading tail"
    tail.reset()
    assert not tail.quiet(-50), "a new utterance starts from its own level"
    assert not SpeechTail(drop_db=0).quiet(-100), "0 switches the rule off"


def test_caller_speech_keeps_the_preroll_and_counts_echo() -> None:
    caller = CallerSpeech(silence_ms=200, onset_ms=40, max_utterance_ms=5000, echo_return_loss_db=12, tail_drop_db=30)
    quiet = tone_frames(-90, 20)
    loud = tone_frames(-20, 30)
    for frame in quiet:
        caller.hear(frame, played_frames=0)
    starts = [e for frame in loud for e in caller.hear(frame, played_frames=0)[1] if isinstance(e, SpeechStart)]
    assert len(starts) == 1
    heard = caller.so_far()
    # the 200 ms window that held the onset (8 quiet frames and the 2 onset frames), then the rest
    assert len(heard) == (PREROLL_MS // 20 + 28) * FRAME_BYTES
    assert heard[:FRAME_BYTES] == quiet[0] and heard[-FRAME_BYTES:] == loud[-1]
    caller.echo.on_play(b"".join(tone_frames(-10, 30)))
    voiced, _ = caller.hear(tone_frames(-30, 1)[0], played_frames=30)
    assert not voiced and caller.echo_suppressed == 1
