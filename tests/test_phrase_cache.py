"""The phrase cache: fixed phrases pinned, other sentences kept within count and byte caps, nothing
cut short kept, and the staged brain's apology and filler served without inference."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from tomsip.call.fsm import TurnKind
from tomsip.monitor.metrics import Metrics
from tomsip.speech.batching import BatchingPool
from tomsip.speech.phrase_cache import CachedSpeech, PhraseCache, UnspeakablePhrase
from tomsip.speech.staged import APOLOGY, FILLER, StagedBrain
from tomsip.speech.stages import ReplyText, Transcript, TurnLatency, TurnRequest


class CountingEngine:
    """A TTS engine that says each sentence as its own bytes and counts what it was asked."""

    def __init__(self, rate: float = 1.0) -> None:
        self.rate = rate
        self.asked: list[str] = []

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.asked.append(text)
        yield self.speak_sync(text)

    def speak_sync(self, sentence: str) -> bytes:
        words = [w for w in sentence.split() if any(c.isalnum() for c in w)]
        return " ".join(words).encode() * 10 if words else b""

    def at_rate(self, rate: float) -> CountingEngine:
        return CountingEngine(rate)


def test_a_pinned_phrase_survives_any_amount_of_other_speech() -> None:
    cache = PhraseCache(max_entries=4, max_bytes=10_000)
    cache.pin("v", "Hello there.", b"x" * 100)
    for i in range(50):
        cache.put("v", f"Sentence {i}.", b"y" * 100)
    assert cache.get("v", "Hello there.") == b"x" * 100
    assert cache.stats().entries == 4 and cache.stats().pinned == 1


def test_the_cache_is_capped_in_entries_and_bytes_dropping_the_least_recently_used() -> None:
    cache = PhraseCache(max_entries=100, max_bytes=1000)
    for i in range(30):
        cache.put("v", f"s{i}", b"z" * 100)
        assert cache.stats().bytes <= 1000
    assert cache.stats().entries == 10
    cache.get("v", "s20")  # used: it stays, s21 goes next
    cache.put("v", "new", b"z" * 100)
    assert cache.get("v", "s20") is not None and cache.get("v", "s21") is None
    cache.put("v", "huge", b"z" * 5000)  # larger than the whole cache: not kept, nothing evicted for it
    assert cache.get("v", "huge") is None and cache.stats().entries == 10


def test_voices_and_rates_are_separate_entries() -> None:
    cache = PhraseCache()
    cache.put("piper", "Okay.", b"1")
    assert cache.get("piper@1.1", "Okay.") is None
    assert cache.get("piper", " Okay. ") == b"1"  # white space does not make a new sentence


async def test_a_sentence_is_synthesized_once_and_then_replayed_and_counted() -> None:
    metrics = Metrics()
    engine = CountingEngine()
    tts = CachedSpeech(engine, PhraseCache(counters=metrics), "joe")
    first = [c async for c in tts.synthesize("Shall I book that? On Tuesday.")]
    second = [c async for c in tts.synthesize("On Tuesday. Shall I book that?")]
    assert engine.asked == ["Shall I book that?", "On Tuesday."]
    assert b"".join(first) == b"".join(reversed(second))
    assert metrics.tts_sentences.labels(source="synthesized")._value.get() == 2
    assert metrics.tts_sentences.labels(source="cache")._value.get() == 2


async def test_a_sentence_cut_short_by_a_barge_in_is_not_kept() -> None:
    class TwoChunks(CountingEngine):
        async def synthesize(self, text: str) -> AsyncIterator[bytes]:
            self.asked.append(text)
            yield b"first half"
            yield b"second half"

    cache = PhraseCache()
    tts = CachedSpeech(TwoChunks(), cache, "joe")
    stream = tts.synthesize("A long sentence.")
    assert await anext(stream) == b"first half"
    await stream.aclose()  # the reply task was cancelled here
    assert cache.get("joe", "A long sentence.") is None


def test_words_the_voice_cannot_say_are_refused_when_pinned() -> None:
    tts = CachedSpeech(CountingEngine(), PhraseCache(), "joe")
    with pytest.raises(UnspeakablePhrase, match="cannot be synthesized"):
        tts.pin("... !!!")
    with pytest.raises(UnspeakablePhrase, match="no words"):
        tts.pin("   ")


async def test_fixed_phrases_marked_at_start_up_are_pinned_when_first_spoken() -> None:
    cache = PhraseCache(max_entries=3, max_bytes=100_000)
    tts = CachedSpeech(CountingEngine(), cache, "joe")
    tts.mark_fixed("Which day would you like?")
    _ = [c async for c in tts.synthesize("Which day would you like?")]
    for i in range(10):
        _ = [c async for c in tts.synthesize(f"Other sentence {i}.")]
    assert cache.get("joe", "Which day would you like?") is not None


class ScriptedConversation:
    async def respond(self, request: TurnRequest, transcript: Transcript | None) -> AsyncIterator[ReplyText]:
        yield ReplyText(f"You said {transcript.text if transcript else 'nothing'}.")


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


def prepared_tts(metrics: Metrics) -> tuple[CachedSpeech, CountingEngine]:
    engine = CountingEngine()
    tts = CachedSpeech(engine, PhraseCache(counters=metrics), "joe")
    tts.pin(APOLOGY)
    tts.pin(FILLER)
    engine.asked.clear()
    return tts, engine


async def test_a_turn_stuck_behind_a_full_queue_hears_the_filler_then_its_reply() -> None:
    metrics = Metrics()
    model = StuckModel()
    pool: BatchingPool[bytes, Transcript] = BatchingPool("stt", model.run, workers=1, max_pending=4)
    tts, engine = prepared_tts(metrics)
    brain = StagedBrain(PooledStt(pool), ScriptedConversation(), tts, metrics, filler_after_s=0.1)
    request = TurnRequest(1, TurnKind.UTTERANCE, b"\x01" * 640)
    heard: list[str] = []

    async def listen() -> None:
        async for chunk in brain.turn(request, TurnLatency()):
            heard.append(chunk.text or "...")
            if chunk.text == FILLER:
                model.release.set()  # the queue drains once the caller has heard the filler

    await asyncio.wait_for(listen(), 5)
    pool.close()
    assert heard == [FILLER, "You said Tuesday."]
    assert engine.asked == ["You said Tuesday."]  # the filler needed no inference
    assert metrics.fillers._value.get() == 1


async def test_a_turn_refused_by_a_full_queue_apologises_from_the_cache_and_the_call_goes_on() -> None:
    metrics = Metrics()
    model = StuckModel()
    pool: BatchingPool[bytes, Transcript] = BatchingPool("stt", model.run, workers=1, max_pending=0)
    tts, engine = prepared_tts(metrics)
    brain = StagedBrain(PooledStt(pool), ScriptedConversation(), tts, metrics)
    blocker = asyncio.ensure_future(pool.run(b"\x01" * 640))  # takes the only place
    await asyncio.sleep(0.05)
    chunks = [c async for c in brain.turn(TurnRequest(1, TurnKind.UTTERANCE, b"\x01" * 640), TurnLatency())]
    assert [c.text for c in chunks] == [APOLOGY, ""]  # two sentences, both from the cache
    assert engine.asked == []
    assert metrics.api_errors.labels(backend="stt", kind="overloaded")._value.get() == 1
    model.release.set()
    assert (await blocker).text == "Tuesday"
    pool.close()
