"""The call FSM's vocabulary: the events it is fed (past tense: what happened) and the actions it
returns (imperative: what to do). Plain frozen dataclasses with no behaviour, apart from the machine
itself (tomsip/call/fsm.py) so that each stays small enough to read; fsm.py re-exports them all, and
callers write `fsm.SpeechStarted()` either way."""

from __future__ import annotations

from dataclasses import dataclass

from tomsip.conversation.turns import TurnKind

# ---- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallStarted:
    """The call is answered and media flows."""


@dataclass(frozen=True)
class SpeechStarted:
    """The end-pointer heard the onset of caller speech."""


@dataclass(frozen=True)
class SpeechContinues:
    """The caller has been talking for `speech_ms` so far (sent on voiced frames)."""

    speech_ms: int


@dataclass(frozen=True)
class SpeechGap:
    """The caller has been quiet for `silent_ms` inside an utterance of `speech_ms` so far."""

    silent_ms: int
    speech_ms: int


@dataclass(frozen=True)
class UtteranceEnded:
    """The caller stopped talking after `speech_ms` of speech."""

    speech_ms: int


@dataclass(frozen=True)
class ReplyStarted:
    """The first audio of turn `turn` is being played."""

    turn: int


@dataclass(frozen=True)
class ReplyFinished:
    """All audio of turn `turn` is queued; `end_call` when the brain asked to hang up after it,
    `transfer_to` when it asked to hand the caller to that URI after it."""

    turn: int
    end_call: bool = False
    transfer_to: str = ""


@dataclass(frozen=True)
class BackendBargeIn:
    """A speech-to-speech backend heard the caller start talking (its own VAD) and stopped its reply."""


@dataclass(frozen=True)
class TransferFailed:
    """The far end refused the transfer, or never reported its outcome; in a warm transfer, the agent
    did not answer, was busy, declined or did not accept in time."""


@dataclass(frozen=True)
class TransferConnected:
    """Warm transfer: the caller and the agent are connected (bridged by us, or referred to each other);
    the call now lasts until one of them hangs up."""


@dataclass(frozen=True)
class ReplyFailed:
    """Producing turn `turn` failed (the session logs why)."""

    turn: int


@dataclass(frozen=True)
class PlayoutDone:
    """The last queued frame of turn `turn` went out."""

    turn: int


@dataclass(frozen=True)
class DigitPressed:
    digit: str


@dataclass(frozen=True)
class RatingHeard:
    """The caller's utterance during the rating question, read as a rating (None: not a rating)."""

    value: int | None


@dataclass(frozen=True)
class RatingGiven:
    """A rating that came from outside the audio (a browser's rating event)."""

    value: int
    source: str = "browser"


@dataclass(frozen=True)
class TimerFired:
    name: str


@dataclass(frozen=True)
class RemoteHangup:
    reason: str = "remote"


@dataclass(frozen=True)
class CallerHeld:
    """The far end put the call on hold (a re-INVITE with sendonly or inactive media)."""


@dataclass(frozen=True)
class CallerResumed:
    """The far end took the call off hold."""


@dataclass(frozen=True)
class AnswerDetected:
    """Who answered our outbound call (tomsip/call/answer_watch.py): human, machine or unknown."""

    answer: str


@dataclass(frozen=True)
class VoicemailReady:
    """The machine's greeting is over (after its beep, or a long enough quiet): leave the message."""


@dataclass(frozen=True)
class ConsentHeard:
    """The caller's spoken answer to the recording question: True yes, False no, None unclear."""

    answer: bool | None


@dataclass(frozen=True)
class LocalHangupRequested:
    """Operator or drain deadline: close the call now."""

    reason: str


Event = (
    CallStarted
    | SpeechStarted
    | SpeechContinues
    | SpeechGap
    | UtteranceEnded
    | ReplyStarted
    | ReplyFinished
    | ReplyFailed
    | PlayoutDone
    | DigitPressed
    | TimerFired
    | RemoteHangup
    | LocalHangupRequested
    | TransferFailed
    | TransferConnected
    | BackendBargeIn
    | RatingHeard
    | RatingGiven
    | CallerHeld
    | CallerResumed
    | AnswerDetected
    | VoicemailReady
    | ConsentHeard
)

# ---- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartTurn:
    """Produce and play turn `turn`: a greeting, a reply to an utterance or digit, a goodbye."""

    turn: int
    kind: TurnKind
    speech_ms: int = 0
    digit: str = ""


@dataclass(frozen=True)
class CancelTurn:
    """Stop producing turn `turn` (responder and TTS work in flight)."""

    turn: int


@dataclass(frozen=True)
class FlushPlayout:
    """Stop playout now and drop queued audio."""


@dataclass(frozen=True)
class PausePlayout:
    """Hold playout where it is (tentative barge-in); nothing queued is lost."""


@dataclass(frozen=True)
class ResumePlayout:
    """Continue a paused playout from where it stopped."""


@dataclass(frozen=True)
class StartTimer:
    name: str
    ms: int


@dataclass(frozen=True)
class CancelTimer:
    name: str


@dataclass(frozen=True)
class Hangup:
    """Send BYE (or close the browser session)."""

    reason: str


@dataclass(frozen=True)
class TransferCall:
    """Hand the caller to `target`: blind (SIP REFER; the call ends when the far end takes it), or warm
    (hold the caller, call and brief the agent, then connect them; TransferConnected or TransferFailed
    follows)."""

    target: str
    warm: bool = False


@dataclass(frozen=True)
class TakeMessage:
    """The utterance that just ended is the caller's message (after a warm transfer nobody took)."""


@dataclass(frozen=True)
class CountBargeIn:
    """A barge-in happened (for metrics and the call record)."""


@dataclass(frozen=True)
class HearRating:
    """Transcribe the utterance that just ended and report it back as RatingHeard."""


@dataclass(frozen=True)
class RecordRating:
    """The caller rated the call `value` (1..5) by `source` (dtmf, speech, browser)."""

    value: int
    source: str


@dataclass(frozen=True)
class RatingRejected:
    """Something that was not a rating arrived while one was asked for (counted, then ignored)."""

    source: str


@dataclass(frozen=True)
class HearConsent:
    """Transcribe the utterance that just ended and report it back as ConsentHeard."""


@dataclass(frozen=True)
class StartRecording:
    """The caller consented: record the call from now on (never a byte before)."""


@dataclass(frozen=True)
class RecordingDeclined:
    """The caller declined, or did not agree in time: this call is not recorded."""

    how: str  # dtmf, speech, timeout


@dataclass(frozen=True)
class CallEnded:
    """The call is over; `reason` says why. Always the last action."""

    reason: str


Action = (
    StartTurn
    | CancelTurn
    | FlushPlayout
    | PausePlayout
    | ResumePlayout
    | StartTimer
    | CancelTimer
    | Hangup
    | TransferCall
    | TakeMessage
    | CountBargeIn
    | HearRating
    | RecordRating
    | RatingRejected
    | HearConsent
    | StartRecording
    | RecordingDeclined
    | CallEnded
)
