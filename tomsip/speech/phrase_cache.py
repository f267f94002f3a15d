"""Spoken sentences kept as PCM, so that words said on every call are synthesized once per process.

A phone assistant says the same things again and again: the greeting, the re-prompts, the rating
question, the goodbye, the apology and the filler are fixed per dialplan and policy, and a rule
responder's answers repeat across callers ("Shall I book that for you?", "On Tuesday at 10 in the
morning."). Synthesizing them on every call spends the scarce resource (TTS inference) on work that
was already done, and worse, makes an apology depend on the very queue whose overload it apologises
for. So:

- fixed phrases are synthesized at start-up and *pinned*: they are never evicted, and a turn that
  speaks them needs no inference at all;
- every other sentence a TTS speaks in full is kept in a least-recently-used part, capped in entries
  and bytes, so a full cache evicts instead of growing.

Entries are keyed by the voice (engine and speaking rate) and the sentence's text, and hold PCM at
the internal rate: replaying one costs a dictionary lookup.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from tomsip.speech.sentences import split_sentences
from tomsip.speech.stages import PipelineError

DEFAULT_MAX_ENTRIES = 2000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # about 35 minutes of 16 kHz PCM16


class UnspeakablePhrase(PipelineError):
    """A fixed phrase gave no audio at all: a dialplan names words the voice cannot say."""

    def __init__(self, text: str, detail: str = "no audio") -> None:
        shown = text if len(text) <= 60 else text[:57] + "..."
        super().__init__(f"cannot be synthesized ({detail}): {shown!r}")
        self.text = text


@dataclass(frozen=True)
class CacheStats:
    entries: int
    bytes: int
    pinned: int


class CacheCounters(Protocol):
    """Where hits and syntheses are counted (tomsip.monitor.metrics.Metrics provides these)."""

    def sentence_spoken(self, source: str) -> None: ...

    def cache_size(self, entries: int, size: int) -> None: ...


def _key(voice: str, text: str) -> tuple[str, str]:
    return voice, " ".join(text.split())


class PhraseCache:
    def __init__(
        self,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        counters: CacheCounters | None = None,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a phrase cache needs room for at least one entry")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._pinned: dict[tuple[str, str], bytes] = {}
        self._fixed: set[tuple[str, str]] = set()  # pinned when first spoken
        self._recent: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._bytes = 0
        self._counters = counters

    def get(self, voice: str, text: str) -> bytes | None:
        key = _key(voice, text)
        pcm = self._pinned.get(key)
        if pcm is None:
            pcm = self._recent.get(key)
            if pcm is not None:
                self._recent.move_to_end(key)
        return pcm

    def pin(self, voice: str, text: str, pcm: bytes) -> None:
        """Keep a fixed phrase for the life of the process (they are few: they come from dialplans)."""
        key = _key(voice, text)
        old = self._recent.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        if key not in self._pinned:
            self._pinned[key] = pcm
            self._bytes += len(pcm)
        self._evict()

    def mark_fixed(self, voice: str, text: str) -> None:
        """`text` is a fixed phrase: when it is first synthesized, pin it instead of keeping it in the
        least-recently-used part (start-up then only has to make the few that must never wait)."""
        self._fixed.add(_key(voice, text))

    def put(self, voice: str, text: str, pcm: bytes) -> None:
        """Keep a sentence until newer ones need the room; one larger than the whole cache is not kept."""
        key = _key(voice, text)
        if key in self._fixed and pcm:
            self.pin(voice, text, pcm)
            return
        if key in self._pinned or not pcm or len(pcm) > self.max_bytes:
            return
        old = self._recent.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._recent[key] = pcm
        self._bytes += len(pcm)
        self._evict()

    def _evict(self) -> None:
        while self._recent and (
            len(self._pinned) + len(self._recent) > self.max_entries or self._bytes > self.max_bytes
        ):
            _, pcm = self._recent.popitem(last=False)
            self._bytes -= len(pcm)
        if self._counters is not None:
            self._counters.cache_size(len(self._pinned) + len(self._recent), self._bytes)

    def stats(self) -> CacheStats:
        return CacheStats(len(self._pinned) + len(self._recent), self._bytes, len(self._pinned))

    def counted(self, source: str) -> None:
        if self._counters is not None:
            self._counters.sentence_spoken(source)


class SpeechEngine(Protocol):
    """A TTS engine the cache can stand in front of: it streams, it can speak one sentence
    synchronously (at start-up, off any call), and it can change its speaking rate (policies)."""

    def synthesize(self, text: str) -> AsyncIterator[bytes]: ...

    def speak_sync(self, sentence: str) -> bytes: ...

    def at_rate(self, rate: float) -> SpeechEngine: ...


class CachedSpeech:
    """A TextToSpeech in front of another: sentences in the cache are replayed, the rest synthesized
    by the engine and kept. A sentence cut short (barge-in) is not kept."""

    def __init__(self, engine: SpeechEngine, cache: PhraseCache, voice: str) -> None:
        self._engine = engine
        self._cache = cache
        self.voice = voice

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        for sentence in split_sentences(text):
            pcm = self._cache.get(self.voice, sentence)
            if pcm is not None:
                self._cache.counted("cache")
                yield pcm
                continue
            parts: list[bytes] = []
            async for chunk in self._engine.synthesize(sentence):
                parts.append(chunk)
                yield chunk
            self._cache.counted("synthesized")
            self._cache.put(self.voice, sentence, b"".join(parts))

    def cached(self, text: str) -> list[bytes] | None:
        """Every sentence of `text` from the cache (counted as spoken from it), or None if one is
        missing: for words that must never wait for inference (the apology, the filler)."""
        out: list[bytes] = []
        for sentence in split_sentences(text):
            pcm = self._cache.get(self.voice, sentence)
            if pcm is None:
                return None
            out.append(pcm)
        for _ in out:
            self._cache.counted("cache")
        return out

    def mark_fixed(self, text: str) -> None:
        """Keep `text`'s sentences for good once they have been spoken (fixed phrases made on first use)."""
        for sentence in split_sentences(text):
            self._cache.mark_fixed(self.voice, sentence)

    def pin(self, text: str) -> None:
        """Synthesize `text` now, blocking, sentence by sentence, and keep it for good. Raises
        UnspeakablePhrase if a sentence gives no audio."""
        sentences = split_sentences(text)
        if not sentences:
            raise UnspeakablePhrase(text, "no words")
        for sentence in sentences:
            pcm = self._cache.get(self.voice, sentence)
            if pcm is None:
                pcm = self._engine.speak_sync(sentence)
                if not pcm:
                    raise UnspeakablePhrase(text)
                self._cache.counted("synthesized")
            self._cache.pin(self.voice, sentence, pcm)

    def at_rate(self, rate: float) -> CachedSpeech:
        """The engine at another speaking rate: its sentences are other entries."""
        return CachedSpeech(self._engine.at_rate(rate), self._cache, f"{self.voice}@{rate:g}")
