"""Pipelines by name (TOMSIP_PIPELINE and the dialplan's `pipeline`). Each is built once per process,
at start-up, so that a missing model package or a bad hosted-API setting stops start-up with a clear
message instead of failing the first call.

| name     | STT                | responder                           | TTS          |
|----------|--------------------|-------------------------------------|--------------|
| mock     | duration           | tones (tests, load tests)           | tones        |
| local    | faster-whisper     | the dialplan's rule responder       | piper        |
| llm      | faster-whisper     | OpenAI-compatible chat completions  | piper        |
| realtime | one hosted speech-to-speech session (OpenAI Realtime protocol) |  |

With TOMSIP_STT_URLS / TOMSIP_TTS_URLS, `local` and `llm` send that stage to speech workers instead
(tomsip/speech/remote/), and this process loads that model not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tomsip.monitor.metrics import Metrics
from tomsip.settings import Settings
from tomsip.speech.stages import Pipeline, PipelineError

if TYPE_CHECKING:  # the offline stack is imported only when a pipeline needs it (it loads models)
    from tomsip.speech.local.pipeline import OfflineSpeechConfig
    from tomsip.speech.remote.workers import RemoteSpeechConfig


def _mock(settings: Settings, metrics: Metrics) -> Pipeline:
    from tomsip.speech.mock import build_mock_pipeline

    return build_mock_pipeline()


def _offline(settings: Settings) -> OfflineSpeechConfig:
    from tomsip.speech.local.pipeline import OfflineSpeechConfig

    return OfflineSpeechConfig(
        settings.stt_threads,
        settings.stt_workers,
        settings.stt_batch,
        settings.tts_workers,
        settings.inference_queue,
        settings.phrase_cache_entries,
        settings.phrase_cache_mb,
        settings.filler_after_ms,
        settings.reply_deadline_ms,
    )


def _remote(settings: Settings) -> RemoteSpeechConfig | None:
    """Where STT and TTS run when speech workers are configured; None: both in this process."""
    if not (settings.stt_urls or settings.tts_urls):
        return None
    from tomsip.speech.remote.workers import RemoteSpeechConfig

    key = settings.speech_worker_key.get_secret_value() if settings.speech_worker_key else None
    return RemoteSpeechConfig(
        tuple(settings.stt_urls),
        tuple(settings.tts_urls),
        key,
        settings.speech_worker_timeout_s,
        settings.speech_worker_probe_s,
        settings.speech_worker_slo_ms,
        settings.speech_worker_start_wait_s,
    )


def _local(settings: Settings, metrics: Metrics) -> Pipeline:
    from tomsip.speech.booking import BookingResponder
    from tomsip.speech.local.pipeline import build_offline_pipeline

    return build_offline_pipeline("local", BookingResponder(), _offline(settings), metrics, remote=_remote(settings))


def _llm(settings: Settings, metrics: Metrics) -> Pipeline:
    from tomsip.speech.chat import ChatClient, ChatConfig, ChatResponder
    from tomsip.speech.local.pipeline import build_offline_pipeline

    if not settings.llm_base_url:
        raise PipelineError("pipeline llm needs TOMSIP_LLM_BASE_URL (an OpenAI-compatible /v1 URL)")
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    config = ChatConfig(
        settings.llm_base_url, settings.llm_model, key, settings.llm_timeout_s, settings.llm_max_history
    )
    client = ChatClient(config)
    return build_offline_pipeline(
        "llm", ChatResponder(client), _offline(settings), metrics, client.close, client.probe, _remote(settings)
    )


def _realtime(settings: Settings, metrics: Metrics) -> Pipeline:
    from tomsip.speech.local.pipeline import speak_offline
    from tomsip.speech.realtime import RealtimeConfig, RealtimePipeline
    from tomsip.speech.staged_brain import APOLOGY

    if not settings.realtime_url:
        raise PipelineError("pipeline realtime needs TOMSIP_REALTIME_URL (a Realtime WebSocket URL)")
    key = settings.realtime_api_key.get_secret_value() if settings.realtime_api_key else None
    config = RealtimeConfig(
        settings.realtime_url,
        key,
        settings.realtime_voice,
        settings.realtime_timeout_s,
        settings.realtime_audio,
        settings.realtime_protocol,
    )
    # When the backend fails a turn the caller still hears why: the apology is spoken offline, once.
    return RealtimePipeline(config, metrics, speak_offline(APOLOGY))


BUILDERS: dict[str, Callable[[Settings, Metrics], Pipeline]] = {
    "mock": _mock,
    "local": _local,
    "llm": _llm,
    "realtime": _realtime,
}


class UnknownPipeline(PipelineError):
    pass


def build_pipeline(name: str, settings: Settings, metrics: Metrics) -> Pipeline:
    try:
        builder = BUILDERS[name]
    except KeyError:
        raise UnknownPipeline(f"unknown pipeline {name!r}; known: {', '.join(sorted(BUILDERS))}") from None
    return builder(settings, metrics)
