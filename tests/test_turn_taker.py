"""The turn taker (tomsip/call/turn_taker.py), fed frame by frame as test_fsm.py feeds events: no
clock, no loop. Tones stand in for a voice and a level threshold for the VAD (webrtcvad adapts to a
steady tone and stops calling it speech); the echo gate, fading-tail rule and end-pointer are the
real ones."""

from __future__ import annotations

from tests.support.tones import tone_frames
from tomsip.audio.caller_speech import CallerSpeech
from tomsip.audio.frames import rms_dbfs
from tomsip.call import fsm
from tomsip.call.turn_taker import REJOIN_MS, DropSpeculation, EchoSuppressed, Heard, Rejoined, Transcribe, TurnTaker
from tomsip.call.turn_taking import TurnTakingPolicy
from tomsip.conversation.turns import TurnKind

LISTENING, THINKING, SPEAKING = fsm.State.LISTENING, fsm.State.THINKING, fsm.State.SPEAKING
VOICE = tone_frames(-20, 25)  # 500 ms
QUIET = tone_frames(-90, 1)[0]


class LevelVad:
    def is_speech(self, frame: bytes) -> bool:
        return rms_dbfs(frame) > -50


def taker(speculate_after_ms: int = 160) -> TurnTaker:
    caller = CallerSpeech(
        silence_ms=600, onset_ms=40, max_utterance_ms=10_000, echo_return_loss_db=12, tail_drop_db=30, vad=LevelVad()
    )
    return TurnTaker(caller, TurnTakingPolicy(speculate_after_ms=speculate_after_ms))


def feed(t: TurnTaker, frames: list[bytes], state: fsm.State = LISTENING, played: int = 0) -> list[Heard]:
    return [item for frame in frames for item in t.hear(frame, played, state)]


def of(kind: type, heard: list[Heard]) -> list[Heard]:
    return [h for h in heard if isinstance(h, kind)]


def test_a_pause_asks_for_a_transcript_of_the_utterance_so_far() -> None:
    t = taker()
    heard = feed(t, VOICE)
    assert len(of(fsm.SpeechStarted, heard)) == 1 and not of(Transcribe, heard)
    heard = feed(t, [QUIET] * 8)  # 160 ms of silence
    [request] = of(Transcribe, heard)
    assert isinstance(request, Transcribe) and len(request.audio) >= len(b"".join(VOICE)) - 640
    assert t.speculating and not of(fsm.UtteranceEnded, heard)


def test_a_complete_sentence_ends_the_turn_as_soon_as_its_transcript_arrives() -> None:
    t = taker()
    feed(t, VOICE + [QUIET] * 10)  # 200 ms: the complete-sentence silence has passed
    heard = t.transcribed("I'd like Tuesday at ten.", LISTENING)
    assert len(of(fsm.UtteranceEnded, heard)) == 1 and not of(DropSpeculation, heard)
    audio, reuse = t.take_turn(TurnKind.UTTERANCE)
    assert reuse and len(audio) >= len(b"".join(VOICE)) and not t.speculating


def test_an_unfinished_sentence_waits_for_the_dialplans_silence() -> None:
    t = taker()
    feed(t, VOICE + [QUIET] * 10)
    assert t.transcribed("I would like to book for", LISTENING) == []
    heard = feed(t, [QUIET] * 19)
    assert not of(fsm.UtteranceEnded, heard), "600 ms of silence in all, not yet"
    assert of(fsm.UtteranceEnded, feed(t, [QUIET] * 2))


def test_the_caller_going_on_makes_the_transcript_stale() -> None:
    t = taker()
    feed(t, VOICE + [QUIET] * 8)
    heard = feed(t, tone_frames(-20, 10))
    assert of(DropSpeculation, heard) == [DropSpeculation("stale")] and not t.speculating
    assert of(fsm.SpeechContinues, heard)


def test_no_speculation_while_the_assistant_speaks_or_when_turned_off() -> None:
    t = taker()
    assert not of(Transcribe, feed(t, VOICE + [QUIET] * 10, state=SPEAKING))
    off = taker(speculate_after_ms=0)
    assert not of(Transcribe, feed(off, VOICE + [QUIET] * 10))


def test_an_utterance_that_is_not_a_turn_drops_its_speculation() -> None:
    t = taker()
    feed(t, VOICE + [QUIET] * 8)  # speculating, heard while listening
    heard = feed(t, [QUIET] * 80, state=SPEAKING)  # by its end the assistant had started a reply
    assert of(fsm.UtteranceEnded, heard) and of(DropSpeculation, heard) == [DropSpeculation("")]


def test_speech_right_after_a_turn_ended_rejoins_the_words_before() -> None:
    t = taker(speculate_after_ms=0)
    first = tone_frames(-20, 20)
    feed(t, first + [QUIET] * 40)
    answered, _ = t.take_turn(TurnKind.UTTERANCE)
    heard = feed(t, tone_frames(-20, 5), state=THINKING)
    assert of(Rejoined, heard) and of(fsm.SpeechStarted, heard)
    feed(t, tone_frames(-20, 10) + [QUIET] * 40, state=LISTENING)
    audio, _ = t.take_turn(TurnKind.UTTERANCE)
    assert audio.startswith(answered), "the next turn hears what was said before, then the rest"


def test_speech_long_after_the_turn_ended_is_a_new_utterance() -> None:
    t = taker(speculate_after_ms=0)
    feed(t, tone_frames(-20, 20) + [QUIET] * 40)
    t.take_turn(TurnKind.UTTERANCE)
    feed(t, [QUIET] * (REJOIN_MS // 20 + 5), state=SPEAKING)
    assert not of(Rejoined, feed(t, tone_frames(-20, 5), state=SPEAKING))


def test_a_turn_of_another_kind_discards_the_audio_and_the_speculation() -> None:
    t = taker()
    feed(t, VOICE + [QUIET] * 8)
    assert t.take_turn(TurnKind.DIGIT) == (b"", False) and not t.speculating


def test_our_own_voice_coming_back_is_not_the_caller() -> None:
    t = taker()
    t.reply_audio(b"".join(tone_frames(-10, 40)))
    heard = feed(t, tone_frames(-30, 10), played=20)
    assert len(of(EchoSuppressed, heard)) == 10 and not of(fsm.SpeechStarted, heard)
    t.playout_flushed(played_frames=20)
    t.reply_ended()
    assert of(fsm.SpeechStarted, feed(t, tone_frames(-20, 10), played=20)), "a louder caller is heard"
