"""STT -> Responder -> TTS as one streaming call brain, with per-stage latency accounting.

Text streams from the responder piece by piece and each piece is spoken as soon as it arrives, so the
first sentence plays while the responder is still writing. Cancelling the iterating task (barge-in)
cancels whichever stage is awaiting.

A stage that cannot serve a turn (a hosted API error or timeout, an overloaded inference queue)
raises SpeechStageError: the caller hears a short apology, the error is counted, and the call goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import cast

from tomsip.call.fsm import TurnKind
from tomsip.monitor.metrics import Metrics
from tomsip.speech.stages import (
    Conversation,
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
)

log = logging.getLogger("tomsip.speech")

APOLOGY = "Sorry, I had a problem there. Could you say that again?"


class StagedBrain:
    def __init__(
        self,
        stt: SpeechToText,
        conversation: Conversation,
        tts: TextToSpeech,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._stt = stt
        self._conversation = conversation
        self._tts = tts
        self._metrics = metrics
        self._clock = clock

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
        start = self._clock()
        try:
            transcript = request.transcript
            if transcript is None and request.kind is TurnKind.UTTERANCE and request.audio:
                transcript = await self._stt.transcribe(request.audio)
                latency.stt_ms = (self._clock() - start) * 1000
            responder_start = self._clock()
            async for piece in self._conversation.respond(request, transcript):
                if latency.responder_first_ms is None:
                    latency.responder_first_ms = (self._clock() - responder_start) * 1000
                async for chunk in self._speak(piece, latency, start):
                    yield chunk
        except SpeechStageError as exc:
            self._count(exc)
            log.warning("speech stage failed, apologising: %s", exc)
            async for chunk in self._speak(ReplyText(APOLOGY), latency, start):
                yield chunk

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
        done = getattr(self._conversation, "task_completed", None)
        return bool(done) if done is not None else None

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
    ) -> None:
        self.name = name
        self._stt = stt
        self._responder = responder
        self._tts = tts
        self._metrics = metrics
        self._on_close = on_close
        self._probe = probe

    def open(self, call_id: str, options: Mapping[str, object]) -> StagedBrain:
        return StagedBrain(self._stt, self._responder.open(call_id, options), self._tts_for(options), self._metrics)

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

    async def probe(self) -> dict[str, object]:
        """Local stages are loaded and in memory; a hosted stage is asked."""
        if self._probe is None:
            return {"pipeline": self.name, "ok": True, "backend": "local"}
        return {"pipeline": self.name, **await self._probe()}

    async def close(self) -> None:
        if self._on_close is not None:
            await self._on_close()
