"""The stage interfaces a conversation brain is made of.

A pipeline turns one turn request (a greeting, a caller utterance, a digit, a silence, a goodbye)
into a stream of reply audio. The classic pipeline is STT -> Responder -> TTS; a speech-to-speech
backend can implement `Pipeline` whole. Every stage is async and cancellable: barge-in cancels the
task that iterates the reply, and that cancellation reaches whatever stage is working.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tomsip.speech.calibration import Calibration

from tomsip.conversation.turns import TurnKind


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float = 1.0


@dataclass(frozen=True)
class TurnRequest:
    """What the caller did that this turn answers. `audio` is the utterance, internal format."""

    turn: int
    kind: TurnKind
    audio: bytes = b""
    speech_ms: int = 0
    digit: str = ""
    transcript: Transcript | None = None  # already recognised
    # recognised during the pause (speculative STT), or still on its way: the brain awaits it
    pending_transcript: Awaitable[Transcript | None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ReplyText:
    """A piece of the responder's reply; `end_call` asks to hang up after it is spoken, `transfer_to`
    to hand the caller to that SIP URI (REFER) after it is spoken."""

    text: str
    end_call: bool = False
    transfer_to: str = ""


@dataclass
class ReplyAudio:
    """A chunk of reply audio (internal format), with what the brain decided so far. `text` is what
    this chunk starts to say (a sentence, or a speech-to-speech backend's transcript so far): the
    transcript events a browser shows live."""

    pcm: bytes
    end_call: bool = False
    transfer_to: str = ""
    text: str = ""


@dataclass
class TurnLatency:
    """Per-stage latencies of one turn in milliseconds (None: stage not used)."""

    stt_ms: float | None = None
    responder_first_ms: float | None = None
    tts_first_ms: float | None = None
    first_audio_ms: float | None = None
    speech_end_to_audio_ms: float | None = None  # caller's last voiced frame -> first reply audio queued
    extra: dict[str, float] = field(default_factory=dict)


RATING_PROMPT = "Before you go: how did I do? Press or say a number from one, poor, to five, excellent."


def rating_prompt(options: Mapping[str, object]) -> str:
    """The end-of-call rating question: the dialplan's `rating_prompt` option, or the default."""
    return str(options.get("rating_prompt") or RATING_PROMPT)


TRANSFER_FAILED = (
    "I'm sorry, nobody could take your call right now. If you would like to leave a message, "
    "please say it now, and I will pass it on."
)
MESSAGE_TAKEN = "Thank you, I will pass your message on."


def briefing(summary: str, options: Mapping[str, object]) -> str:
    """What the agent of a warm transfer hears: the summary, and how to accept when the dialplan asks."""
    digit = str(options.get("agent_accept_digit") or "")
    return f"{summary} Press {digit} to take the call." if digit else f"{summary} Connecting you now."


def consent_prompt(options: Mapping[str, object]) -> str:
    """The recording notice or question (the dialplan's `[recording]`); "" when it does not record."""
    return str(options.get("recording_prompt") or "")


def voicemail_message(options: Mapping[str, object]) -> str:
    """What to leave on an answering machine (an outbound call's dialplan `[outbound]`); "" for none."""
    return str(options.get("voicemail_message") or "")


def call_context(options: Mapping[str, object]) -> dict[str, str]:
    """The outbound call's `context` variables (POST /api/calls), for a responder that can use them."""
    context = options.get("context")
    return {str(k): str(v) for k, v in context.items()} if isinstance(context, dict) else {}


class PipelineError(ValueError):
    """A pipeline cannot be built: unknown name, missing model package, incomplete hosted-API settings,
    or dialplan options it cannot work with. Raised at start-up, never during a call."""


class SpeechStageError(RuntimeError):
    """A stage could not serve this turn (hosted API error or timeout, malformed answer, overload).

    The call goes on: the brain apologises and counts it in api_errors_total. Anything else a stage
    raises is a bug and ends only this call."""

    def __init__(self, backend: str, kind: str, detail: str = "") -> None:
        super().__init__(f"{backend}: {kind}{': ' + detail if detail else ''}")
        self.backend = backend
        self.kind = kind


class SpeechToText(Protocol):
    async def transcribe(self, audio: bytes) -> Transcript: ...


class Conversation(Protocol):
    """One call's responder state (history, slots)."""

    def respond(self, request: TurnRequest, transcript: Transcript | None) -> AsyncIterator[ReplyText]: ...


@runtime_checkable
class KnowsOutcome(Protocol):
    """A conversation that can tell whether the caller got what they called for (the booking
    responder can; a free chat cannot): an optional capability, checked with isinstance."""

    @property
    def task_completed(self) -> bool: ...


class Responder(Protocol):
    def open(self, call_id: str, options: Mapping[str, object]) -> Conversation:
        """A conversation for one call; raises ValueError on bad dialplan options (checked at start-up)."""
        ...

    def fixed_phrases(self, options: Mapping[str, object]) -> list[str]:
        """Everything this responder says word for word on any call with these options (greeting,
        prompts, goodbye): synthesized once per process, when first spoken, then replayed from the
        phrase cache for good."""
        ...


class TextToSpeech(Protocol):
    def synthesize(self, text: str) -> AsyncIterator[bytes]: ...


class RateAdjustable(Protocol):
    """A TTS that can speak faster or slower for one call (a policy's `speaking_rate`)."""

    def at_rate(self, rate: float) -> TextToSpeech: ...


class CallBrain(Protocol):
    """A pipeline bound to one call. `turn` streams reply audio and fills `latency`.

    STT -> Responder -> TTS is one way to be a brain (StagedBrain); a speech-to-speech backend is the
    other (RealtimeBrain): audio in through `hear`, audio and transcript out through `turn`, and the
    backend's own barge-in through `on_barge_in`."""

    def turn(self, request: TurnRequest, latency: TurnLatency) -> AsyncIterator[ReplyAudio]: ...

    async def transcribe(self, audio: bytes) -> Transcript | None:
        """Recognise an utterance ahead of its turn (speculative STT); None if this brain has no STT."""
        ...

    def hear(self, frame: bytes) -> None:
        """Every caller frame as it arrives (a speech-to-speech backend listens all the time)."""
        ...

    def playout_flushed(self, dropped_ms: int) -> None:
        """A barge-in dropped `dropped_ms` of this turn's audio unplayed (what the caller never heard)."""
        ...

    def on_barge_in(self, handler: Callable[[], None]) -> None:
        """Call `handler` when the backend itself hears the caller interrupt."""
        ...

    def task_completed(self) -> bool | None:
        """Did the caller get what they called for (a booking made)? None: this brain cannot tell.
        The learning loop's reward uses it."""
        ...

    async def close(self) -> None: ...


class Pipeline(Protocol):
    """Process-wide factory of per-call brains (models load once, here)."""

    name: str

    def open(self, call_id: str, options: Mapping[str, object]) -> CallBrain: ...

    def check(self, options: Mapping[str, object]) -> None:
        """Raise ValueError if a dialplan's options cannot work with this pipeline (at start-up)."""
        ...

    def prepare(self, options: Mapping[str, object]) -> None:
        """Make ready, blocking, what calls with these options will say word for word (start-up);
        raises PipelineError (UnspeakablePhrase) for words that cannot be spoken."""
        ...

    async def probe(self) -> dict[str, object]:
        """Is the backend usable right now? (GET /healthz/speech_api)"""
        ...

    def calibrate(self, cpu_budget: float) -> Calibration | None:
        """How many conversations this machine can carry on this pipeline (blocking, start-up); None
        when its speech costs this machine next to nothing (tones, a hosted backend)."""
        ...

    def queue_wait_s(self) -> float:
        """How long this pipeline's inference jobs have lately waited for a worker (0 when idle)."""
        ...

    def busy_reason(self) -> str | None:
        """Why no new conversation should start on this pipeline now, however few this node carries
        (its speech workers are down, full or slow: other nodes load them too); None: go ahead."""
        ...

    async def close(self) -> None: ...
