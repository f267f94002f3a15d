"""Settings of `tomsip speech-worker`, from TOMSIP_WORKER_* variables (or the command's options).

A worker is its own process with its own few knobs; it shares nothing with a SIP node's Settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOMSIP_WORKER_", extra="ignore")

    host: str = Field("127.0.0.1", description="HTTP listen address of the speech worker")
    port: int = Field(8090, ge=0, le=65535, description="HTTP port of the speech worker")
    api_key: SecretStr | None = Field(
        None, description="Bearer key /v1/audio/* requests must carry; unset: open (bind to a private address)"
    )
    device: Literal["cpu", "cuda"] = Field(
        "cpu", description="Where faster-whisper runs: cpu (int8), or cuda (float16, needs a CTranslate2 GPU build)"
    )
    stt_workers: int = Field(2, ge=1, le=16, description="Threads running speech-to-text batches")
    stt_threads: int = Field(1, ge=1, le=16, description="CPU threads one speech-to-text pass may use")
    stt_batch: int = Field(8, ge=1, le=32, description="Most utterances one speech-to-text pass decodes together")
    tts_workers: int = Field(2, ge=1, le=16, description="Threads running text-to-speech")
    queue: int = Field(
        16, ge=0, le=1024, description="Jobs that may wait per stage beyond the busy threads; more are answered 503"
    )
    busy_ms: int = Field(
        600,
        ge=0,
        le=30_000,
        description="/healthz says busy while jobs lately waited longer than this for a thread (0: only a full queue)",
    )
    conversations: int = Field(
        0,
        ge=0,
        le=10_000,
        description="Conversations this worker carries, reported to the nodes (their admission); 0: measured at "
        "start-up from the models' speed, as a node calibrates",
    )
    cpu_budget: float = Field(
        0.6, gt=0, le=1, description="Share of the cores the measured conversation capacity lets speech use"
    )
    max_audio_s: float = Field(30.0, gt=0, le=30, description="Longest audio a transcription accepts")
    max_input_chars: int = Field(4096, ge=1, le=100_000, description="Longest text a speech request accepts")
    drain_timeout_s: float = Field(20.0, ge=0, description="On SIGTERM, how long requests in progress may finish")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level")
