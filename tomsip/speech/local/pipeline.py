"""The offline pipelines: whisper STT and piper TTS around a responder.

`local` uses the rule responder of the dialplan (the booking assistant); `llm` puts a hosted
OpenAI-compatible chat model between the same offline STT and TTS. The models load once per process
however many pipelines and calls use them, or not at all where TOMSIP_STT_URLS / TOMSIP_TTS_URLS
send a stage to speech workers (`tomsip speech-worker`, or any server of the OpenAI audio API). The
phrase cache stays on the node either way: fixed phrases, the apology and the filler never need a
worker once start-up has made them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache

from tomsip.monitor.metrics import Metrics
from tomsip.speech.batching import BatchingPool
from tomsip.speech.calibration import Calibration, calibrate, machine_cores
from tomsip.speech.inference import InferencePool
from tomsip.speech.local.piper_tts import PiperSpeech, load_piper
from tomsip.speech.local.whisper_stt import WhisperSpeechToText, load_whisper
from tomsip.speech.phrase_cache import CachedSpeech, PhraseCache, SpeechEngine
from tomsip.speech.remote.stt import RemoteSpeechToText
from tomsip.speech.remote.tts import RemoteSpeech
from tomsip.speech.remote.workers import RemoteSpeechConfig, SpeechWorkers, WorkerHttp
from tomsip.speech.staged_brain import StagedPipeline
from tomsip.speech.stages import Responder, SpeechToText, Transcript


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


@dataclass
class _Stages:
    """The two speech stages of an offline pipeline, each in process or in speech workers."""

    stt: SpeechToText
    tts: SpeechEngine
    transcribe_sync: Callable[[bytes], Transcript]
    local_waits: list[Callable[[], float]] = field(default_factory=list)  # the in-process pools' queue wait
    closers: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)
    workers: dict[str, SpeechWorkers] = field(default_factory=dict)  # the stages speech workers serve

    @property
    def timed(self) -> frozenset[str]:
        """The stages this machine runs itself (calibration times only these)."""
        return frozenset({"stt", "tts"} - set(self.workers))


def _stages(config: OfflineSpeechConfig, metrics: Metrics, remote: RemoteSpeechConfig | None) -> _Stages:
    wait = metrics.inference_queue_wait_seconds
    http = WorkerHttp(remote) if remote is not None else None
    workers: dict[str, SpeechWorkers] = {}
    for stage, urls in (("stt", remote.stt_urls if remote else ()), ("tts", remote.tts_urls if remote else ())):
        if urls and http is not None:
            workers[stage] = SpeechWorkers(stage, urls, http, metrics)
            workers[stage].wait_ready()
    local_waits: list[Callable[[], float]] = []
    closers: list[Callable[[], Awaitable[None] | None]] = [w.close for w in workers.values()]
    stt: SpeechToText
    tts: SpeechEngine

    if "stt" in workers:
        stt = RemoteSpeechToText(workers["stt"])
        transcribe_sync: Callable[[bytes], Transcript] = _not_timed
    else:
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
        stt = WhisperSpeechToText(whisper, stt_pool)
        transcribe_sync = recognizer.transcribe_sync
        local_waits.append(stt_pool.recent_wait.seconds)
        closers.append(stt_pool.close)

    if "tts" in workers:
        tts = RemoteSpeech(workers["tts"])
    else:
        tts_pool = InferencePool("tts", config.tts_workers, config.inference_queue, wait)
        tts = PiperSpeech(offline_voice(), tts_pool)
        local_waits.append(tts_pool.recent_wait.seconds)
        closers.append(tts_pool.close)
    if http is not None:
        closers.append(http.close)
    return _Stages(stt, tts, transcribe_sync, local_waits, closers, workers)


def _not_timed(audio: bytes) -> Transcript:
    """Calibration's stand-in for a stage a speech worker runs: it costs this machine nothing."""
    return Transcript("")


def build_offline_pipeline(
    name: str,
    responder: Responder,
    config: OfflineSpeechConfig,
    metrics: Metrics,
    on_close: Callable[[], Awaitable[None]] | None = None,
    probe: Callable[[], Awaitable[dict[str, object]]] | None = None,
    remote: RemoteSpeechConfig | None = None,
) -> StagedPipeline:
    """The pipeline `name` around `responder`; with `remote` URLs, STT and/or TTS run in speech
    workers and this process loads neither model (tomsip/speech/remote/)."""
    stages = _stages(config, metrics, remote)
    cache = PhraseCache(config.phrase_cache_entries, config.phrase_cache_mb * 1024 * 1024, metrics)
    tts = CachedSpeech(stages.tts, cache, "piper")

    async def close() -> None:
        for closer in stages.closers:
            pending = closer()
            if pending is not None:
                await pending
        if on_close is not None:
            await on_close()

    def calibrate_here(budget: float) -> Calibration | None:
        """The local stages timed; remote ones at what their workers report (the smaller wins)."""
        reported = [c for c in (w.capacity() for w in stages.workers.values()) if c > 0]
        remote = min(reported) if reported else None
        if stages.timed:
            measured = calibrate(stages.transcribe_sync, stages.tts.speak_sync, budget, timed=stages.timed)
            if remote is None:
                return measured
            return replace(measured, conversations=min(measured.conversations, remote), workers=remote)
        if remote is None:
            return None  # hosted servers of the API say nothing: the SIP ceiling, and admission reacts
        return Calibration(0.0, 0.0, machine_cores(), budget, remote, workers=remote)

    def queue_wait_s() -> float:
        waits = [*stages.local_waits, *(w.queue_wait_s for w in stages.workers.values())]
        return max(wait() for wait in waits)

    def busy_reason() -> str | None:
        return next((r for w in stages.workers.values() if (r := w.busy_reason()) is not None), None)

    async def probe_all() -> dict[str, object]:
        report: dict[str, object] = {"ok": True, "backend": "local"}
        if probe is not None:
            report = dict(await probe())
        for stage, workers in stages.workers.items():
            report[f"{stage}_workers"] = await workers.probe_report()
        if stages.workers:
            report["ok"] = bool(report.get("ok")) and busy_reason() != "speech_workers_down"
            report["backend"] = "speech-workers" if probe is None else report.get("backend")
        return report

    return StagedPipeline(
        name,
        stages.stt,
        responder,
        tts,
        metrics,
        on_close=close,
        probe=probe_all,
        filler_after_ms=config.filler_after_ms,
        deadline_ms=config.reply_deadline_ms,
        calibrator=calibrate_here,
        queue_wait_s=queue_wait_s,
        busy_reason=busy_reason,
    )
