"""The phrase cache: fixed phrases pinned, other sentences kept within count and byte caps, nothing
cut short kept, unspeakable words refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.speech_doubles import CountingEngine
from tomsip.monitor.metrics import Metrics
from tomsip.speech.phrase_cache import CachedSpeech, PhraseCache, UnspeakablePhrase


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
