"""The offline pipelines: whisper STT and piper TTS around a responder.

`local` uses the rule responder of the dialplan (the booking assistant); `llm` puts a hosted
OpenAI-compatible chat model between the same offline STT and TTS. The models load once per process
however many pipelines and calls use them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache

from tomsip.monitor.metrics import Metrics
from tomsip.speech.batching import BatchingPool
from tomsip.speech.calibration import Calibration, calibrate
from tomsip.speech.inference import InferencePool
from tomsip.speech.local.piper_tts import PiperSpeech, load_piper
from tomsip.speech.local.whisper_stt import WhisperSpeechToText, load_whisper
from tomsip.speech.phrase_cache import CachedSpeech, PhraseCache
from tomsip.speech.staged_brain import StagedPipeline
from tomsip.speech.stages import Responder, Transcript


@dataclass(frozen=True)
class OfflineSpeechConfig:
    """What the offline pipelines read of the settings (built by tomsip/speech/registry.py)."""

    stt_threads: int
    stt_workers: int
    stt_batch: int
    tts_workers: int
    inference_queue: int
    phrase_cache_entries: int
    phrase_cache_mb: int
    filler_after_ms: int
    reply_deadline_ms: int


@lru_cache(maxsize=4)
def _whisper(threads: int) -> object:
    return load_whisper(threads)


@lru_cache(maxsize=2)
def offline_voice() -> object:
    """The piper voice, loaded once per process."""
    return load_piper()


def speak_offline(text: str) -> bytes:
    """Say `text` with the offline voice, blocking: for prompts made once at start-up and test media."""
    return PiperSpeech(offline_voice()).speak_sync(text)


def build_offline_pipeline(
    name: str,
    responder: Responder,
    config: OfflineSpeechConfig,
    metrics: Metrics,
    on_close: Callable[[], Awaitable[None]] | None = None,
    probe: Callable[[], Awaitable[dict[str, object]]] | None = None,
) -> StagedPipeline:
    wait = metrics.inference_queue_wait_seconds
    whisper = _whisper(config.stt_threads)
    recognizer = WhisperSpeechToText(whisper)
    stt_pool: BatchingPool[bytes, Transcript] = BatchingPool(
        "stt",
        recognizer.transcribe_batch,
        config.stt_workers,
        config.inference_queue,
        config.stt_batch,
        wait,
        metrics.stt_batch_size,
    )
    tts_pool = InferencePool("tts", config.tts_workers, config.inference_queue, wait)
    stt = WhisperSpeechToText(whisper, stt_pool)
    piper = PiperSpeech(offline_voice(), tts_pool)
    cache = PhraseCache(config.phrase_cache_entries, config.phrase_cache_mb * 1024 * 1024, metrics)
    tts = CachedSpeech(piper, cache, "piper")

    async def close() -> None:
        stt_pool.close()
        tts_pool.close()
        if on_close is not None:
            await on_close()

    def calibrate_here(budget: float) -> Calibration:
        return calibrate(recognizer.transcribe_sync, piper.speak_sync, budget)

    def queue_wait_s() -> float:
        return max(stt_pool.recent_wait.seconds(), tts_pool.recent_wait.seconds())

    return StagedPipeline(
        name,
        stt,
        responder,
        tts,
        metrics,
        on_close=close,
        probe=probe,
        filler_after_ms=config.filler_after_ms,
        deadline_ms=config.reply_deadline_ms,
        calibrator=calibrate_here,
        queue_wait_s=queue_wait_s,
    )
