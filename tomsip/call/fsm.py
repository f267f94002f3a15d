"""The call state machine: events in, actions out, no I/O and no clock.

Built the way the `websockets` protocol core is: the CallSession feeds it what happened (speech
started, the utterance ended, reply audio began, playout finished, a digit, a hang-up, a timer fired)
and carries out the actions it returns. Timers are actions too (StartTimer / CancelTimer), so the
machine is tested by feeding events in order, without sleeping.

Interruption taxonomy (what a barge-in cancels), decided here and nowhere else:
- the onset of caller speech while we speak: pause playout at once (tentative barge-in), so that
  the assistant stops talking within a frame or two of the caller starting;
- if that speech lasts `barge_in_min_ms`: flush playout and cancel the reply (barge-in confirmed);
- if it dies away first (`resume_after_ms` of quiet: a cough, "mhm"): resume where playout paused;
- the same while we are still thinking: cancel the pending reply, listen on;
- a DTMF digit while we speak: flush and cancel, then answer the digit;
The closing goodbye is not interruptible: the caller cannot talk the call into staying open past its
end.

End-of-call rating (when the dialplan asks for it): a call that the assistant ends as completed first
asks for a 1-5 rating (RATING state). A keypad digit 1-5, a spoken "one".."five" (the session
transcribes the utterance and reports RatingHeard) or a rating from the browser answers it; the
goodbye follows the answer or the timeout. A rating given earlier in the call is not asked for again.

Before the first words: a call we placed starts in DETECTING (nothing is said until AnswerDetected;
a machine gets the voicemail message once VoicemailReady), and a dialplan that records starts in
CONSENT (StartRecording only after a yes, or after announce's window passes without a no). A warm
transfer keeps the caller in CLOSING, on hold, until TransferConnected or TransferFailed (then the
offer to take a message).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from tomsip.call.fsm_vocabulary import (
    Action,
    AnswerDetected,
    BackendBargeIn,
    CallEnded,
    CallerHeld,
    CallerResumed,
    CallStarted,
    CancelTimer,
    CancelTurn,
    ConsentHeard,
    CountBargeIn,
    DigitPressed,
    Event,
    FlushPlayout,
    Hangup,
    HearConsent,
    HearRating,
    LocalHangupRequested,
    PausePlayout,
    PlayoutDone,
    RatingGiven,
    RatingHeard,
    RatingRejected,
    RecordingDeclined,
    RecordRating,
    RemoteHangup,
    ReplyFailed,
    ReplyFinished,
    ReplyStarted,
    ResumePlayout,
    SpeechContinues,
    SpeechGap,
    SpeechStarted,
    StartRecording,
    StartTimer,
    StartTurn,
    TakeMessage,
    TimerFired,
    TransferCall,
    TransferConnected,
    TransferFailed,
    UtteranceEnded,
    VoicemailReady,
)
from tomsip.conversation import rating as rating_scale
from tomsip.conversation.turns import TurnKind

__all__ = [
    "CLOSING_TIMER",
    "CONSENT_TIMER",
    "MAX_DURATION_TIMER",
    "NO_INPUT_TIMER",
    "RATING_TIMER",
    "Action",
    "AnswerDetected",
    "BackendBargeIn",
    "CallEnded",
    "CallFsm",
    "CallStarted",
    "CallerHeld",
    "CallerResumed",
    "CancelTimer",
    "CancelTurn",
    "ConsentHeard",
    "CountBargeIn",
    "DigitPressed",
    "Event",
    "FlushPlayout",
    "FsmConfig",
    "Hangup",
    "HearConsent",
    "HearRating",
    "LocalHangupRequested",
    "PausePlayout",
    "PlayoutDone",
    "RatingGiven",
    "RatingHeard",
    "RatingRejected",
    "RecordRating",
    "RecordingDeclined",
    "RemoteHangup",
    "ReplyFailed",
    "ReplyFinished",
    "ReplyStarted",
    "ResumePlayout",
    "SpeechContinues",
    "SpeechGap",
    "SpeechStarted",
    "StartRecording",
    "StartTimer",
    "StartTurn",
    "State",
    "TakeMessage",
    "TimerFired",
    "TransferCall",
    "TransferConnected",
    "TransferFailed",
    "TurnKind",
    "UtteranceEnded",
    "VoicemailReady",
]


class State(enum.Enum):
    DETECTING = "detecting"  # an outbound call is answered: who is it, a person or a machine?
    CONSENT = "consent"  # the recording notice or question is said and answered before the greeting
    GREETING = "greeting"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"
    RATING = "rating"
    CLOSING = "closing"
    ENDED = "ended"


MAX_DURATION_TIMER = "max_duration"
NO_INPUT_TIMER = "no_input"
CLOSING_TIMER = "closing_guard"
RATING_TIMER = "rating"
CONSENT_TIMER = "consent"


@dataclass(frozen=True)
class FsmConfig:
    barge_in_min_ms: int = 200
    barge_in_enabled: bool = True
    resume_after_ms: int = 160
    max_call_ms: int = 600_000
    no_input_ms: int = 10_000
    max_no_input_prompts: int = 2
    closing_guard_ms: int = 8_000
    transfer_guard_ms: int = 40_000
    warm_transfer: bool = False
    warm_transfer_guard_ms: int = 120_000  # the agent's ring time, the briefing and the acceptance
    take_message: bool = True  # after a warm transfer nobody took
    ask_rating: bool = False
    rating_timeout_ms: int = 6_000
    detect_answer: bool = False  # an outbound call: listen for who answered before the greeting
    leave_voicemail: bool = False  # on a machine, speak the voicemail message (else hang up at once)
    voicemail_guard_ms: int = 60_000
    recording: str = "off"  # off; announce (recorded unless the caller declines); ask (only after a yes)
    consent_wait_ms: int = 2_000  # after the notice or question: announce's window to decline, ask's to answer
    accept_digit: str = "1"
    decline_digit: str = "2"


@dataclass
class CallFsm:
    """One call's conversation state. `handle` returns the actions to carry out, in order."""

    config: FsmConfig = field(default_factory=FsmConfig)
    state: State = State.GREETING
    turn: int = 0
    barge_ins: int = 0
    end_reason: str = ""
    _reply_done: bool = False
    _end_after_reply: bool = False
    _transfer_after_reply: str = ""
    _transferring: bool = False
    _no_input_prompts: int = 0
    _started: bool = False
    _paused: bool = False
    rating: int | None = None
    rating_source: str = ""
    hung_up_while_speaking: bool = False
    _hearing_rating: bool = False
    held: bool = False  # the caller holds the call: nothing is said to the line, nothing heard is a turn
    _resume_kind: TurnKind = TurnKind.RESUMED
    _hearing_consent: bool = False
    _connected: bool = False  # a warm transfer connected the caller to the agent
    _message_next: bool = False  # the next utterance is a message for the people the transfer missed
    _close_after: str = ""  # close the call (this reason) once the current turn has played

    def handle(self, event: Event) -> list[Action]:
        if self.state is State.ENDED:
            return []
        if isinstance(event, RemoteHangup):
            self.hung_up_while_speaking = self.state in (State.SPEAKING, State.GREETING)
            handed_over = self._transferring and (self._connected or not self.config.warm_transfer)
            return self._end("transferred" if handed_over else event.reason, send_bye=False)
        if isinstance(event, LocalHangupRequested):
            return self._end(event.reason, send_bye=True)
        if self.held and not isinstance(event, (CallerResumed, TimerFired)):
            return []  # music on hold is not speech, and the cancelled turn's late news changes nothing
        handler = getattr(self, "_on_" + type(event).__name__, None)
        return handler(event) if handler else []

    # ---- helpers ----

    def _new_turn(self, kind: TurnKind, speech_ms: int = 0, digit: str = "") -> list[Action]:
        self.turn += 1
        self._reply_done = False
        self._end_after_reply = False
        self._transfer_after_reply = ""
        return [StartTurn(self.turn, kind, speech_ms, digit)]

    def _interrupt(self) -> list[Action]:
        """Cancel the current turn; flush if its audio may be playing."""
        self._paused = False
        actions: list[Action] = []
        if self.state in (State.SPEAKING, State.GREETING, State.RATING, State.CONSENT):
            actions.append(FlushPlayout())
        actions.append(CancelTurn(self.turn))
        return actions

    def _end(self, reason: str, send_bye: bool) -> list[Action]:
        actions: list[Action] = []
        if self.state in (State.THINKING, State.SPEAKING, State.GREETING, State.CLOSING, State.RATING, State.CONSENT):
            actions += self._interrupt()
        actions += [
            CancelTimer(MAX_DURATION_TIMER),
            CancelTimer(NO_INPUT_TIMER),
            CancelTimer(CLOSING_TIMER),
            CancelTimer(RATING_TIMER),
            CancelTimer(CONSENT_TIMER),
        ]
        if send_bye:
            actions.append(Hangup(reason))
        self.state = State.ENDED
        self.end_reason = reason
        actions.append(CallEnded(reason))
        return actions

    def _close(self, reason: str) -> list[Action]:
        """Say goodbye, then hang up when it has played (or when the guard timer fires)."""
        actions: list[Action] = []
        if self.state in (State.THINKING, State.SPEAKING, State.GREETING, State.RATING, State.CONSENT):
            actions += self._interrupt()
        self.end_reason = reason
        self.state = State.CLOSING
        actions += [
            CancelTimer(NO_INPUT_TIMER),
            CancelTimer(RATING_TIMER),
            StartTimer(CLOSING_TIMER, self.config.closing_guard_ms),
        ]
        actions += self._new_turn(TurnKind.GOODBYE)
        return actions

    def _ask_rating_or_close(self, reason: str) -> list[Action]:
        """A completed call asks for its rating first, unless the caller already gave one."""
        if not self.config.ask_rating or self.rating is not None:
            return self._close(reason)
        self.end_reason = reason
        self.state = State.RATING
        return [CancelTimer(NO_INPUT_TIMER), *self._new_turn(TurnKind.RATING)]

    def _rated(self, value: int, source: str) -> list[Action]:
        self.rating, self.rating_source = value, source
        actions: list[Action] = [RecordRating(value, source)]
        if self.state is State.RATING:
            actions += self._close(self.end_reason or "completed")
        return actions

    def _listen(self) -> list[Action]:
        self.state = State.LISTENING
        return [StartTimer(NO_INPUT_TIMER, self.config.no_input_ms)]

    # ---- event handlers ----

    def _on_CallStarted(self, _: CallStarted) -> list[Action]:
        if self._started:
            return []
        self._started = True
        timer = StartTimer(MAX_DURATION_TIMER, self.config.max_call_ms)
        if self.config.detect_answer:  # nothing is said until we know who listens
            self.state = State.DETECTING
            return [timer]
        return [timer, *self._open()]

    def _open(self) -> list[Action]:
        """The conversation's first words: the recording notice or question where the dialplan
        records, else the greeting."""
        if self.config.recording == "off":
            return self._greet()
        self.state = State.CONSENT
        return self._new_turn(TurnKind.CONSENT)

    def _greet(self) -> list[Action]:
        self.state = State.GREETING
        return self._new_turn(TurnKind.GREETING)

    def _consented(self, agreed: bool, how: str) -> list[Action]:
        """Consent settled: recording starts only on agreement; the greeting follows either way."""
        actions = self._interrupt()  # the notice may still be playing (a digit pressed over it)
        actions.append(CancelTimer(CONSENT_TIMER))
        actions.append(StartRecording() if agreed else RecordingDeclined(how))
        self._hearing_consent = False
        return actions + self._greet()

    def _on_AnswerDetected(self, event: AnswerDetected) -> list[Action]:
        """A person (or nobody we can tell from one) is greeted at once; for a machine the session
        listens on for the end of its greeting and reports VoicemailReady."""
        if self.state is not State.DETECTING or event.answer == "machine":
            return []
        return self._open()

    def _on_VoicemailReady(self, _: VoicemailReady) -> list[Action]:
        if self.state is not State.DETECTING:
            return []
        if not self.config.leave_voicemail:
            return self._end("voicemail", send_bye=True)
        self.state = State.CLOSING  # the message is not interruptible, and the call ends after it
        self.end_reason = "voicemail"
        return [StartTimer(CLOSING_TIMER, self.config.voicemail_guard_ms), *self._new_turn(TurnKind.VOICEMAIL)]

    def _on_ConsentHeard(self, event: ConsentHeard) -> list[Action]:
        if self.state is not State.CONSENT:
            return []
        self._hearing_consent = False
        if self.config.recording == "announce":  # only an objection stops it
            return self._consented(event.answer is not False, "speech")
        return self._consented(event.answer is True, "speech")

    def _on_SpeechStarted(self, _: SpeechStarted) -> list[Action]:
        if self.state is State.LISTENING:
            return [CancelTimer(NO_INPUT_TIMER)]
        if self.config.barge_in_enabled and self.state in (State.SPEAKING, State.GREETING) and not self._paused:
            self._paused = True
            return [PausePlayout()]
        return []

    def _on_SpeechGap(self, event: SpeechGap) -> list[Action]:
        if (
            self._paused
            and event.silent_ms >= self.config.resume_after_ms
            and self.state in (State.SPEAKING, State.GREETING)
        ):
            self._paused = False
            return [ResumePlayout()]
        return []

    def _on_SpeechContinues(self, event: SpeechContinues) -> list[Action]:
        if not self.config.barge_in_enabled or event.speech_ms < self.config.barge_in_min_ms:
            return []
        return self._confirm_barge_in()

    def _on_BackendBargeIn(self, _: BackendBargeIn) -> list[Action]:
        # The backend has already stopped its reply whatever our settings say: stop playing it too.
        return self._confirm_barge_in()

    def _confirm_barge_in(self) -> list[Action]:
        if self.state in (State.SPEAKING, State.GREETING, State.THINKING):
            actions = self._interrupt()
            if self.state is not State.THINKING:
                self.barge_ins += 1
                actions.append(CountBargeIn())
            self.state = State.LISTENING
            return [*actions, CancelTimer(NO_INPUT_TIMER)]
        return []

    def _on_UtteranceEnded(self, event: UtteranceEnded) -> list[Action]:
        if self.state is State.CONSENT:
            if self._hearing_consent:
                return []
            self._hearing_consent = True
            return [HearConsent()]
        if self.state is State.RATING:
            if self._hearing_rating:
                return []
            self._hearing_rating = True
            return [HearRating()]
        if self._paused and self.state in (State.SPEAKING, State.GREETING):
            self._paused = False
            return [ResumePlayout()]
        if self.state is State.LISTENING and self._message_next:
            self._message_next = False
            self._close_after = "message_taken"
            self.state = State.THINKING
            return [CancelTimer(NO_INPUT_TIMER), TakeMessage(), *self._new_turn(TurnKind.MESSAGE_TAKEN)]
        if self.state is State.LISTENING:
            self._no_input_prompts = 0
            self.state = State.THINKING
            return [CancelTimer(NO_INPUT_TIMER), *self._new_turn(TurnKind.UTTERANCE, event.speech_ms)]
        return []  # speech too short to barge in while we talk, or while closing: not a turn

    def _on_ReplyStarted(self, event: ReplyStarted) -> list[Action]:
        if event.turn == self.turn and self.state is State.THINKING:
            self.state = State.SPEAKING
        return []

    def _on_ReplyFinished(self, event: ReplyFinished) -> list[Action]:
        if event.turn != self.turn:
            return []
        self._reply_done = True
        self._end_after_reply = event.end_call
        self._transfer_after_reply = event.transfer_to
        return []

    def _on_ReplyFailed(self, event: ReplyFailed) -> list[Action]:
        if event.turn != self.turn:
            return []
        if self.state is State.CONSENT:  # could not ask: no consent, so no recording
            return self._consented(False, "error")
        if self.state is State.RATING:  # could not ask: go without a rating
            return self._close(self.end_reason or "completed")
        if self.state is State.CLOSING:
            return self._end(self.end_reason or "error", send_bye=True)
        return self._end("error", send_bye=True)

    def _on_PlayoutDone(self, event: PlayoutDone) -> list[Action]:
        if event.turn != self.turn or not self._reply_done:
            return []
        return self._after_playout()

    def _after_playout(self) -> list[Action]:
        self._reply_done = False
        resume: list[Action] = [ResumePlayout()] if self._paused else []
        self._paused = False
        if self.state is State.CLOSING:
            return resume + self._end(self.end_reason, send_bye=True)
        if self.state is State.RATING:  # the question has been asked: now the caller has time to answer
            return [*resume, StartTimer(RATING_TIMER, self.config.rating_timeout_ms)]
        if self.state is State.CONSENT:
            return [*resume, StartTimer(CONSENT_TIMER, self.config.consent_wait_ms)]
        if self._transfer_after_reply:
            return resume + self._transfer(self._transfer_after_reply)
        if self._close_after:
            reason, self._close_after = self._close_after, ""
            return resume + self._ask_rating_or_close(reason)
        if self._end_after_reply:
            return resume + self._ask_rating_or_close("completed")
        return resume + self._listen()

    def _transfer(self, target: str) -> list[Action]:
        """Hand over: the call stays up (CLOSING: the caller can no longer start turns) until the far
        end takes the transfer and the stack ends our leg, or the guard timer runs out."""
        self._transferring = True
        self.state = State.CLOSING
        self.end_reason = "transferred"
        warm = self.config.warm_transfer
        guard = self.config.warm_transfer_guard_ms if warm else self.config.transfer_guard_ms
        return [
            CancelTimer(NO_INPUT_TIMER),
            StartTimer(CLOSING_TIMER, guard),
            TransferCall(target, warm),
        ]

    def _on_TransferConnected(self, _: TransferConnected) -> list[Action]:
        if not self._transferring or self.state is not State.CLOSING:
            return []
        self._connected = True
        return [CancelTimer(CLOSING_TIMER)]  # connected: the call lasts as long as the two talk

    def _on_TransferFailed(self, _: TransferFailed) -> list[Action]:
        if not self._transferring or self.state is not State.CLOSING:
            return []
        self._transferring = False
        self.state = State.LISTENING  # _close interrupts nothing from here
        if self.config.warm_transfer and self.config.take_message:
            self._message_next = True
            self.state = State.THINKING
            return [CancelTimer(CLOSING_TIMER), *self._new_turn(TurnKind.TRANSFER_FAILED)]
        return self._close("transfer_failed")

    def _on_RatingHeard(self, event: RatingHeard) -> list[Action]:
        self._hearing_rating = False
        if self.state is not State.RATING:
            return []
        if event.value is None or str(event.value) not in rating_scale.DIGITS:
            return [RatingRejected("speech")]
        return self._rated(event.value, "speech")

    def _on_RatingGiven(self, event: RatingGiven) -> list[Action]:
        if self.state is State.CLOSING or str(event.value) not in rating_scale.DIGITS:
            return [RatingRejected(event.source)]
        return self._rated(event.value, event.source)

    def _on_DigitPressed(self, event: DigitPressed) -> list[Action]:
        if self.state is State.CONSENT:
            if event.digit in (self.config.accept_digit, self.config.decline_digit):
                return self._consented(event.digit == self.config.accept_digit, "dtmf")
            return []
        if self.state is State.RATING:
            if event.digit not in rating_scale.DIGITS:
                return [RatingRejected("dtmf")]
            return self._rated(int(event.digit), "dtmf")
        if self.state in (State.CLOSING, State.DETECTING):
            return []
        actions: list[Action] = []
        if self.state in (State.SPEAKING, State.GREETING, State.THINKING):
            actions += self._interrupt()
        self.state = State.THINKING
        return [*actions, CancelTimer(NO_INPUT_TIMER), *self._new_turn(TurnKind.DIGIT, digit=event.digit)]

    def _on_CallerHeld(self, _: CallerHeld) -> list[Action]:
        """Stop talking to a held line: the turn in progress is cancelled (it is said again, or the
        caller welcomed back, on resume), and no silence counts against the caller while held."""
        if self.held or self.state is State.DETECTING:
            return []
        if self.state is State.CLOSING:  # the goodbye (or a transfer) was under way: nothing is left to say
            return [] if self._transferring else self._end(self.end_reason or "completed", send_bye=True)
        actions: list[Action] = []
        if self.state in (State.THINKING, State.SPEAKING, State.GREETING, State.RATING, State.CONSENT):
            actions += self._interrupt()
        self._resume_kind = {
            State.GREETING: TurnKind.GREETING,
            State.RATING: TurnKind.RATING,
            State.CONSENT: TurnKind.CONSENT,
        }.get(self.state, TurnKind.RESUMED)
        self.held = True
        self._hearing_rating = self._hearing_consent = False
        if self.state not in (State.RATING, State.CONSENT):
            self.state = State.LISTENING
        return [*actions, CancelTimer(NO_INPUT_TIMER), CancelTimer(RATING_TIMER)]

    def _on_CallerResumed(self, _: CallerResumed) -> list[Action]:
        """Back from hold: the greeting or the rating question again, or a welcome back that picks up
        the conversation where it was."""
        if not self.held:
            return []
        self.held = False
        self._no_input_prompts = 0
        kind = self._resume_kind
        states = {TurnKind.GREETING: State.GREETING, TurnKind.RATING: State.RATING, TurnKind.CONSENT: State.CONSENT}
        self.state = states.get(kind, State.THINKING)
        return self._new_turn(kind)

    def _on_TimerFired(self, event: TimerFired) -> list[Action]:
        if self.held:  # only the call's own length still counts; it ends a held call without a word
            return self._end("max_duration", send_bye=True) if event.name == MAX_DURATION_TIMER else []
        if event.name == MAX_DURATION_TIMER:
            if self.state is State.CLOSING:
                return []
            return self._close("max_duration")
        if event.name == RATING_TIMER and self.state is State.RATING:
            return self._close(self.end_reason or "completed")
        if event.name == CONSENT_TIMER and self.state is State.CONSENT:  # silence: announce yes, ask no
            return self._consented(self.config.recording == "announce", "timeout")
        if event.name == CLOSING_TIMER and self.state is State.CLOSING:
            return self._end("transfer_timeout" if self._transferring else self.end_reason, send_bye=True)
        if event.name == NO_INPUT_TIMER and self.state is State.LISTENING:
            if self._no_input_prompts >= self.config.max_no_input_prompts:
                return self._close("no_input")
            self._no_input_prompts += 1
            self.state = State.THINKING
            return self._new_turn(TurnKind.NO_INPUT)
        return []
