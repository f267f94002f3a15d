"""Stand-ins for the models behind the speech stages (not what the tests that use them are about):
a TTS engine that says each sentence as its own bytes, a speech-to-text model that takes as long as
the test says, and a responder that repeats what it heard."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping

from tomsip.conversation.turns import TurnKind
from tomsip.speech.batching import BatchingPool
from tomsip.speech.mock import tone_pcm
from tomsip.speech.stages import ReplyText, Transcript, TurnRequest


class CountingEngine:
    """A TTS engine that says each sentence as its own tone (pitch and length from its words) and
    counts what it was asked."""

    def __init__(self, rate: float = 1.0) -> None:
        self.rate = rate
        self.asked: list[str] = []

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.asked.append(text)
        yield self.speak_sync(text)

    def speak_sync(self, sentence: str) -> bytes:
        words = [w for w in sentence.split() if any(c.isalnum() for c in w)]
        if not words:
            return b""
        return tone_pcm(300 + 7 * (sum(map(ord, sentence)) % 60), 120 * len(words), level_dbfs=-20)

    def at_rate(self, rate: float) -> CountingEngine:
        return CountingEngine(rate)


class ScriptedConversation:
    async def respond(self, request: TurnRequest, transcript: Transcript | None) -> AsyncIterator[ReplyText]:
        if request.kind is TurnKind.GREETING:
            yield ReplyText("Hello.")
        else:
            yield ReplyText(f"You said {transcript.text if transcript else 'nothing'}.")


class ScriptedResponder:
    def open(self, call_id: str, options: Mapping[str, object]) -> ScriptedConversation:
        return ScriptedConversation()

    def fixed_phrases(self, options: Mapping[str, object]) -> list[str]:
        return ["Hello."]


class StuckModel:
    """A speech-to-text model that takes as long as the test says: a queue that stays full."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def run(self, audios: object) -> list[Transcript]:
        self.release.wait(10)
        return [Transcript("Tuesday")] * len(audios)  # type: ignore[arg-type]


class PooledStt:
    def __init__(self, pool: BatchingPool[bytes, Transcript]) -> None:
        self.pool = pool

    async def transcribe(self, audio: bytes) -> Transcript:
        return await self.pool.run(audio)
