"""STT -> Responder -> TTS as one streaming call brain, with per-stage latency accounting.

Text streams from the responder piece by piece and each piece is spoken as soon as it arrives, so the
first sentence plays while the responder is still writing. Cancelling the iterating task (barge-in)
cancels whichever stage is awaiting.

A stage that cannot serve a turn (a hosted API error or timeout, an overloaded inference queue)
raises SpeechStageError: the caller hears a short apology, the error is counted, and the call goes on.
The apology and the filler come from the phrase cache: being busy must never need more inference, so
neither can fail or wait. A turn whose first audio is late (a busy queue, a slow hosted model) plays
the filler once ("One moment, please.") and then its reply; one still without audio at the deadline
is given up with the apology, and the caller can speak again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import cast

from tomsip.conversation.turns import TurnKind
from tomsip.monitor.metrics import Metrics
from tomsip.speech.calibration import Calibration
from tomsip.speech.phrase_cache import CachedSpeech
from tomsip.speech.stages import (
    Conversation,
    KnowsOutcome,
    RateAdjustable,
    ReplyAudio,
    ReplyText,
    Responder,
    SpeechStageError,
    SpeechToText,
    TextToSpeech,
    Transcript,
    TurnLatency,
    TurnRequest,
    consent_prompt,
    rating_prompt,
)

log = logging.getLogger("tomsip.speech")

APOLOGY = "Sorry, I had a problem there. Could you say that again?"
FILLER = "One moment, please."


class StagedBrain:
    def __init__(
        self,
        stt: SpeechToText,
        conversation: Conversation,
        tts: TextToSpeech,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.perf_counter,
        filler_after_s: float = 0.0,
        deadline_s: float = 0.0,
    ) -> None:
        self._stt = stt
        self._conversation = conversation
        self._tts = tts
        self._metrics = metrics
        self._clock = clock
        self._filler_after_s = filler_after_s
        self._deadline_s = deadline_s  # 0: a late reply is waited for however long it takes

    @property
    def conversation(self) -> Conversation:
        return self._conversation

    async def transcribe(self, audio: bytes) -> Transcript | None:
        try:
            return await self._stt.transcribe(audio)
        except SpeechStageError as exc:
            self._count(exc)
            return None

    async def turn(self, request: TurnRequest, latency: TurnLatency) -> AsyncIterator[ReplyAudio]:
        replies = self._reply(request, latency)
        if not self._filler_after_s and not self._deadline_s:
            async for chunk in replies:
                yield chunk
            return
        first = asyncio.ensure_future(_next_or_none(replies))
        try:
            done: set[asyncio.Future[ReplyAudio | None]] = set()
            if self._filler_after_s:
                done, _ = await asyncio.wait({first}, timeout=self._filler_after_s)
                if not done:
                    for chunk in self._filler():
                        yield chunk
            if not done:
                late_s = max(0.0, self._deadline_s - self._filler_after_s) if self._deadline_s else None
                done, _ = await asyncio.wait({first}, timeout=late_s)
            if not done:  # the queue stayed full: give this turn up, say sorry, listen again
                await _abandon(first, replies)
                self._count(SpeechStageError("reply", "timeout", f"no audio in {self._deadline_s:g} s"))
                log.warning("reply too late, apologising")
                async for chunk in self._apology():
                    yield chunk
                return
            head = first.result()
        except BaseException:  # cancelled (barge-in, hang-up): stop the reply being made too
            await _abandon(first, replies)
            raise
        if head is None:
            return
        yield head
        async for chunk in replies:
            yield chunk

    def _filler(self) -> list[ReplyAudio]:
        """The filler from the phrase cache, counted; nothing where there is no cache."""
        pcm = self._cached(FILLER)
        if not pcm:
            return []
        if self._metrics is not None:
            self._metrics.fillers.inc()
        return [ReplyAudio(chunk, text=FILLER if i == 0 else "") for i, chunk in enumerate(pcm)]

    async def _reply(self, request: TurnRequest, latency: TurnLatency) -> AsyncGenerator[ReplyAudio, None]:
        start = self._clock()
        spoke = False
        try:
            transcript = request.transcript
            if transcript is None and request.pending_transcript is not None:
                transcript = await request.pending_transcript
                latency.stt_ms = (self._clock() - start) * 1000  # what the turn still waited for it
            if transcript is None and request.kind is TurnKind.UTTERANCE and request.audio:
                transcript = await self._stt.transcribe(request.audio)
                latency.stt_ms = (self._clock() - start) * 1000
            responder_start = self._clock()
            async for piece in self._conversation.respond(request, transcript):
                if latency.responder_first_ms is None:
                    latency.responder_first_ms = (self._clock() - responder_start) * 1000
                async for chunk in self._speak(piece, latency, start):
                    spoke = True
                    yield chunk
        except SpeechStageError as exc:
            self._count(exc)
            log.warning("speech stage failed, apologising: %s", exc)
            async for chunk in self._apology(show_text=not spoke):
                yield chunk

    def _cached(self, text: str) -> list[bytes] | None:
        """Fixed words from the phrase cache, or None where there is no cache or they are not in it."""
        return self._tts.cached(text) if isinstance(self._tts, CachedSpeech) else None

    async def _apology(self, show_text: bool = True) -> AsyncIterator[ReplyAudio]:
        """From the phrase cache (made at start-up), so it never waits for the queue it apologises for.
        A TTS without a cache (tests, tones) is asked, and if it cannot serve either, the caller hears
        silence and the call goes on."""
        text = APOLOGY if show_text else ""
        cached = self._cached(APOLOGY)
        if cached is not None or isinstance(self._tts, CachedSpeech):
            for i, pcm in enumerate(cached or []):  # none: a route start-up did not prepare; silence
                yield ReplyAudio(pcm, text=text if i == 0 else "")
            return
        try:
            async for pcm in self._tts.synthesize(APOLOGY):
                yield ReplyAudio(pcm, text=text)
                text = ""
        except SpeechStageError as exc:
            self._count(exc)

    async def _speak(self, piece: ReplyText, latency: TurnLatency, start: float) -> AsyncIterator[ReplyAudio]:
        spoke = False
        tts_start = self._clock()
        async for pcm in self._tts.synthesize(piece.text):
            if latency.tts_first_ms is None:
                latency.tts_first_ms = (self._clock() - tts_start) * 1000
                latency.first_audio_ms = (self._clock() - start) * 1000
            yield ReplyAudio(pcm, piece.end_call, piece.transfer_to, "" if spoke else piece.text)
            spoke = True
        if (piece.end_call or piece.transfer_to) and not spoke:
            yield ReplyAudio(b"", piece.end_call, piece.transfer_to)

    def hear(self, frame: bytes) -> None:
        return None  # the staged pipeline hears utterances whole, from the session's end-pointer

    def playout_flushed(self, dropped_ms: int) -> None:
        return None

    def on_barge_in(self, handler: Callable[[], None]) -> None:
        return None  # barge-in is decided locally

    def task_completed(self) -> bool | None:
        conversation = self._conversation
        return conversation.task_completed if isinstance(conversation, KnowsOutcome) else None

    def _count(self, exc: SpeechStageError) -> None:
        if self._metrics is not None:
            self._metrics.api_errors.labels(backend=exc.backend, kind=exc.kind).inc()

    async def close(self) -> None:
        return None


class StagedPipeline:
    """Process-wide STT, responder and TTS (models load once, in the constructor's caller); one
    StagedBrain per call."""

    def __init__(
        self,
        name: str,
        stt: SpeechToText,
        responder: Responder,
        tts: TextToSpeech,
        metrics: Metrics | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
        probe: Callable[[], Awaitable[dict[str, object]]] | None = None,
        filler_after_ms: int = 0,
        deadline_ms: int = 0,
        calibrator: Callable[[float], Calibration | None] | None = None,
        queue_wait_s: Callable[[], float] | None = None,
        busy_reason: Callable[[], str | None] | None = None,
    ) -> None:
        self.name = name
        self._calibrator = calibrator
        self._queue_wait_s = queue_wait_s
        self._busy_reason = busy_reason
        self._stt = stt
        self._responder = responder
        self._tts = tts
        self._metrics = metrics
        self._on_close = on_close
        self._probe = probe
        self._filler_after_s = filler_after_ms / 1000
        self._deadline_s = deadline_ms / 1000

    def open(self, call_id: str, options: Mapping[str, object]) -> StagedBrain:
        return StagedBrain(
            self._stt,
            self._responder.open(call_id, options),
            self._tts_for(options),
            self._metrics,
            filler_after_s=self._filler_after_s,
            deadline_s=self._deadline_s,
        )

    def _tts_for(self, options: Mapping[str, object]) -> TextToSpeech:
        """The shared TTS, or a view of it at the policy's speaking rate."""
        rate = options.get("speaking_rate")
        if rate is None or rate == 1.0:
            return self._tts
        if not isinstance(rate, (int, float)) or not 0.5 <= rate <= 2.0:
            raise ValueError(f"speaking_rate must be a number from 0.5 to 2.0, got {rate!r}")
        if not hasattr(self._tts, "at_rate"):
            raise ValueError(f"speaking_rate: the {self.name} pipeline's TTS cannot change its rate")
        return cast(RateAdjustable, self._tts).at_rate(float(rate))

    def check(self, options: Mapping[str, object]) -> None:
        self._responder.open("start-up-check", options)
        self._tts_for(options)

    def prepare(self, options: Mapping[str, object]) -> None:
        """The apology, the filler and the dialplan's own words (greeting, rating question) are made
        now, so a bad one stops start-up and being busy never waits for them; the responder's other
        fixed phrases are kept for good when first spoken."""
        tts = self._tts_for(options)
        if not isinstance(tts, CachedSpeech):
            return
        for phrase in self._responder.fixed_phrases(options):
            tts.mark_fixed(phrase)
        words = (str(options.get("greeting") or ""), rating_prompt(options), consent_prompt(options))
        for phrase in (APOLOGY, FILLER, *words):
            if phrase:
                tts.pin(phrase)

    def calibrate(self, cpu_budget: float) -> Calibration | None:
        """Local models are timed; stages that cost this machine nothing (tones, hosted) are not."""
        return self._calibrator(cpu_budget) if self._calibrator is not None else None

    def queue_wait_s(self) -> float:
        return self._queue_wait_s() if self._queue_wait_s is not None else 0.0

    def busy_reason(self) -> str | None:
        return self._busy_reason() if self._busy_reason is not None else None

    async def probe(self) -> dict[str, object]:
        """Local stages are loaded and in memory; a hosted stage is asked."""
        if self._probe is None:
            return {"pipeline": self.name, "ok": True, "backend": "local"}
        return {"pipeline": self.name, **await self._probe()}

    async def close(self) -> None:
        if self._on_close is not None:
            await self._on_close()


async def _abandon(first: asyncio.Future[ReplyAudio | None], replies: AsyncGenerator[ReplyAudio, None]) -> None:
    """Stop a reply that is still being made (its first chunk pending), and whatever stage it waits on."""
    first.cancel()
    with contextlib.suppress(BaseException):
        await first
    await replies.aclose()


async def _next_or_none(replies: AsyncIterator[ReplyAudio]) -> ReplyAudio | None:
    """The first chunk of a reply, or None if it has none (a task cannot end in StopAsyncIteration)."""
    try:
        return await anext(replies)
    except StopAsyncIteration:
        return None
