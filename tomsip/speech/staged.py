"""STT -> Responder -> TTS as one streaming call brain, with per-stage latency accounting.

Text streams from the responder piece by piece and each piece is spoken as soon as it arrives, so the
first sentence plays while the responder is still writing. Cancelling the iterating task (barge-in)
cancels whichever stage is awaiting.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from tomsip.call.fsm import TurnKind
from tomsip.speech.stages import (
    Conversation,
    ReplyAudio,
    Responder,
    SpeechToText,
    TextToSpeech,
    Transcript,
    TurnLatency,
    TurnRequest,
)


class StagedBrain:
    def __init__(
        self,
        stt: SpeechToText,
        conversation: Conversation,
        tts: TextToSpeech,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._stt = stt
        self._conversation = conversation
        self._tts = tts
        self._clock = clock

    async def turn(self, request: TurnRequest, latency: TurnLatency) -> AsyncIterator[ReplyAudio]:
        start = self._clock()
        transcript: Transcript | None = None
        if request.kind is TurnKind.UTTERANCE and request.audio:
            transcript = await self._stt.transcribe(request.audio)
            latency.stt_ms = (self._clock() - start) * 1000
        responder_start = self._clock()
        async for piece in self._conversation.respond(request, transcript):
            if latency.responder_first_ms is None:
                latency.responder_first_ms = (self._clock() - responder_start) * 1000
            spoke = False
            tts_start = self._clock()
            async for pcm in self._tts.synthesize(piece.text):
                if latency.tts_first_ms is None:
                    latency.tts_first_ms = (self._clock() - tts_start) * 1000
                    latency.first_audio_ms = (self._clock() - start) * 1000
                spoke = True
                yield ReplyAudio(pcm, piece.end_call)
            if piece.end_call and not spoke:
                yield ReplyAudio(b"", True)

    async def close(self) -> None:
        return None


class StagedPipeline:
    """Process-wide STT, responder and TTS; one StagedBrain per call."""

    def __init__(self, name: str, stt: SpeechToText, responder: Responder, tts: TextToSpeech) -> None:
        self.name = name
        self._stt = stt
        self._responder = responder
        self._tts = tts

    def open(self, call_id: str, options: dict[str, object]) -> StagedBrain:
        return StagedBrain(self._stt, self._responder.open(call_id, options), self._tts)
