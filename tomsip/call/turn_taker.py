"""The turn taker: what the caller's audio means for the conversation, frame by frame. Pure: no clock,
no asyncio, no I/O, like the FSM it feeds.

It owns CallerSpeech (VAD, echo gate, fading tail, end-pointer); nothing else touches those. Frames and
how much of our reply has played go in, with the FSM's state; what comes out is FSM events (speech
started, continues, paused, the utterance ended) and requests the session serves:
- `Transcribe`: the caller paused; transcribe the utterance so far (speculative STT). Its transcript
  comes back through `transcribed`, and decides how much silence ends the turn
  (tomsip/call/turn_taking.py); the turn then reuses it;
- `DropSpeculation`: the transcription under way is no longer wanted (the caller went on: "stale");
- `Rejoined`: the caller spoke again within REJOIN_MS of the end of the turn we are answering, so they
  had not finished: what they said before is heard again with what follows, as one utterance;
- `EchoSuppressed`: a frame of our own voice coming back was not taken for the caller.

The session tells it what the FSM decided (`take_turn`, `take_answer`) and what the port did with
our reply (`reply_audio`, `reply_ended`, `playout_flushed`), which the echo gate needs.
"""

from __future__ import annotations

from dataclasses import dataclass

from tomsip.audio.caller_speech import CallerSpeech
from tomsip.audio.frames import FRAME_MS
from tomsip.audio.vad import SpeechEnd, SpeechStart, VoiceDuration, VoiceGap
from tomsip.call import fsm
from tomsip.call.dialplan import Route
from tomsip.call.turn_taking import TurnTakingPolicy
from tomsip.conversation.turns import TurnKind

# A caller who speaks again this soon after their turn ended was not done (a pause at a comma taken
# for the end): what they said before is heard again with what follows, as one utterance.
REJOIN_MS = 1000


@dataclass(frozen=True)
class Transcribe:
    """Transcribe `audio` (the utterance so far) ahead of its turn; report it through `transcribed`."""

    audio: bytes


@dataclass(frozen=True)
class DropSpeculation:
    """Cancel the transcription under way; `outcome` is counted when not empty ("stale")."""

    outcome: str = ""


@dataclass(frozen=True)
class Rejoined:
    """A turn ended too soon; the next utterance starts with its audio."""


@dataclass(frozen=True)
class EchoSuppressed:
    """A voiced frame was our own reply coming back."""


Request = Transcribe | DropSpeculation | Rejoined | EchoSuppressed
Heard = fsm.Event | Request


class TurnTaker:
    @classmethod
    def for_route(cls, route: Route, vad_aggressiveness: int = 2) -> TurnTaker:
        s = route.plan.settings
        caller = CallerSpeech(
            silence_ms=s.silence_ms,
            onset_ms=s.onset_ms,
            max_utterance_ms=s.max_utterance_ms,
            echo_return_loss_db=s.echo_return_loss_db,
            tail_drop_db=s.tail_drop_db,
            vad_aggressiveness=vad_aggressiveness,
        )
        return cls(caller, route.turn_taking)

    def __init__(self, caller: CallerSpeech, policy: TurnTakingPolicy) -> None:
        self._caller = caller
        self._policy = policy
        self._speculating = False  # a Transcribe is out and not yet dropped or handed to a turn
        self._answered = b""  # the utterance the current turn answers
        self._answered_end_frame = 0
        self.voiced = False  # whether the last frame heard was the caller's voice

    @property
    def speculating(self) -> bool:
        return self._speculating

    def hear(self, frame: bytes, played_frames: int, state: fsm.State) -> list[Heard]:
        """One caller frame, with `played_frames` of our reply played so far and the FSM's state."""
        suppressed = self._caller.echo_suppressed
        self.voiced, events = self._caller.hear(frame, played_frames)
        out: list[Heard] = []
        if self._caller.echo_suppressed != suppressed:
            out.append(EchoSuppressed())
        for event in events:
            if isinstance(event, SpeechStart):
                out += self._rejoin_if_too_soon(state)
                out += self._drop("")
                out.append(fsm.SpeechStarted())
            elif isinstance(event, VoiceDuration):
                if self._speculating:  # the caller went on: what was transcribed is stale
                    out += self._drop("stale")
                    self._caller.endpointer.set_silence_ms(self._policy.silence_ms)
                out.append(fsm.SpeechContinues(event.speech_ms))
            elif isinstance(event, VoiceGap):
                if event.silent_ms == self._policy.speculate_after_ms:
                    out += self._speculate(state)
                out.append(fsm.SpeechGap(event.silent_ms, event.speech_ms))
            elif isinstance(event, SpeechEnd):
                out += self._end_utterance(event, state)
        return out

    def transcribed(self, text: str | None, state: fsm.State) -> list[Heard]:
        """The speculative transcript arrived (None: it failed). While the caller is still silent it
        decides how much silence ends the turn, which may be now; once the utterance has ended, the
        turn itself awaits the transcript and nothing happens here."""
        endpointer = self._caller.endpointer
        if not endpointer.in_speech:
            return []
        need = self._policy.silence_for(text) if text is not None else self._policy.silence_ms
        if endpointer.silent_ms < need:
            endpointer.set_silence_ms(need)
            return []
        end = self._caller.force_end()
        return self._end_utterance(end, state) if end is not None else []

    def take_turn(self, kind: TurnKind) -> tuple[bytes, bool]:
        """The FSM started a turn of `kind`: the utterance it answers (empty unless the caller spoke),
        and whether the turn takes over the speculative transcription (otherwise it is to be dropped)."""
        audio = self._caller.take_utterance()
        if kind is TurnKind.UTTERANCE:
            self._answered, self._answered_end_frame = audio, self._caller.endpointer.frame_index
            reuse, self._speculating = self._speculating, False
            return audio, reuse
        self._answered = b""
        self._speculating = False
        return b"", False

    def take_answer(self) -> bytes:
        """The utterance that answered a question outside the conversation: the rating, the recording
        consent, or the message left after a failed transfer."""
        return self._caller.take_utterance()

    # ---- our reply, for the echo gate ----

    def reply_audio(self, pcm: bytes) -> None:
        self._caller.echo.on_play(pcm)

    def reply_ended(self) -> None:
        self._caller.echo.on_end_of_reply()

    def playout_flushed(self, played_frames: int) -> None:
        self._caller.echo.on_flush(played_frames)

    # ---- inside ----

    def _speculate(self, state: fsm.State) -> list[Heard]:
        """The caller paused: transcribe what they said so far while we wait to see if they go on."""
        if not self._policy.speculative or state is not fsm.State.LISTENING:
            return []
        out = self._drop("stale")
        self._caller.endpointer.set_silence_ms(self._policy.pending_silence_ms)
        self._speculating = True
        out.append(Transcribe(self._caller.so_far()))
        return out

    def _rejoin_if_too_soon(self, state: fsm.State) -> list[Heard]:
        """Speech again while we answer an utterance that ended under REJOIN_MS ago: if it becomes a
        barge-in, the next turn hears the earlier words too (a cough that never confirms is dropped
        with its utterance as before)."""
        if not self._answered or state not in (fsm.State.THINKING, fsm.State.SPEAKING):
            return []
        if (self._caller.endpointer.frame_index - self._answered_end_frame) * FRAME_MS > REJOIN_MS:
            return []
        self._caller.continues(self._answered)
        return [Rejoined()]

    def _end_utterance(self, event: SpeechEnd, state: fsm.State) -> list[Heard]:
        out: list[Heard] = [fsm.UtteranceEnded(event.speech_ms)]
        if state is not fsm.State.LISTENING:
            out += self._drop("")  # not a turn (a cough while we spoke): nobody needs the transcript
        return out

    def _drop(self, outcome: str) -> list[Heard]:
        if not self._speculating:
            return []
        self._speculating = False
        return [DropSpeculation(outcome)]
