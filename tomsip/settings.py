"""Settings from TOMSIP_* environment variables and an optional TOML file (pydantic-settings).

Environment variables win over the file; the file wins over defaults. `tomsip serve --help` lists
every field with its description, generated from this class.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict


class TomlFileSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by TOMSIP_CONFIG (or `--config`)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        if path is not None:
            with path.open("rb") as fh:
                self._data = tomllib.load(fh)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if k in self.settings_cls.model_fields}


KEY_FAMILY = {"HS": "shared secret", "RS": "RSA", "PS": "RSA", "ES": "EC"}  # by algorithm prefix


HOST_PORT = r"([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\])(:[0-9]{1,5})?"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOMSIP_", extra="ignore")

    sip_host: str = Field("127.0.0.1", description="SIP and media listen address, also advertised in SDP")
    sip_port: int = Field(5060, ge=1, le=65535, description="SIP port for UDP and TCP")
    sip_tls_port: int = Field(
        0, ge=0, le=65535, description="SIP TLS port; 0 disables TLS. The engine serves TLS on sip_port+1 only"
    )
    sip_tls_cert: Path | None = Field(None, description="PEM file with certificate and private key for SIP TLS")
    sip_user: str = Field("tomsip", description="User part of the server's own SIP identity")
    codecs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["pcmu", "pcma", "g722", "opus"],
        description="Offered/accepted codecs in preference order (pcmu, pcma, g722, opus)",
    )
    dtmf_mode: Literal["rtpevent", "info", "auto"] = Field("rtpevent", description="How DTMF is sent to callers")
    rtp_ports: str = Field("10000-20000", pattern=r"^\d{1,5}-\d{1,5}$", description="UDP port range for RTP")
    jitter_buffer: Literal["fixed", "adaptive", "off"] = Field(
        "adaptive", description="Receive jitter buffer: adaptive grows only when the network jitters"
    )
    jitter_buffer_ms: int = Field(
        20, ge=0, le=1000, description="Jitter buffer target delay; every ms here delays barge-in detection too"
    )
    rtp_timeout_s: int = Field(30, ge=0, description="End a call after this long without RTP (0: never)")
    trunk_registrar: str | None = Field(None, description="Registrar host[:port] of a SIP trunk to REGISTER with")
    trunk_user: str | None = Field(None, description="Trunk account user")
    trunk_auth_user: str | None = Field(None, description="Trunk digest username, when it differs from the user")
    trunk_password: SecretStr | None = Field(None, description="Trunk digest password")
    trunk_domain: str | None = Field(None, description="Trunk SIP domain (default: the registrar)")
    trunk_transport: Literal["udp", "tcp", "tls"] = Field("udp", description="Transport toward the trunk")
    trunk_register_interval_s: int = Field(300, ge=30, description="REGISTER refresh interval")
    recordings_dir: Path = Field(
        Path("recordings"), description="Where consented call recordings go (a folder per day); must be writable"
    )
    recordings_retention_days: int = Field(30, ge=0, le=36_500, description="Recordings older are purged; 0 keeps")
    messages_file: Path = Field(
        Path("messages.jsonl"), description="Messages left after a warm transfer found nobody (JSON lines)"
    )
    outbound_proxy: str | None = Field(
        None, description="host[:port] that outbound calls go through when no trunk is registered"
    )
    outbound_domain: str | None = Field(None, description="Domain of outbound request URIs (default: the proxy)")
    outbound_rate: float = Field(1.0, gt=0, le=100, description="Outbound calls placed per second at most")
    outbound_max: int = Field(10, ge=1, le=1000, description="Outbound calls ringing or in progress at once")
    outbound_queue: int = Field(100, ge=0, le=100_000, description="Outbound requests waiting; past it: 503")
    outbound_ring_s: int = Field(30, ge=5, le=300, description="Give up on an outbound call after ringing this long")
    status_callback_timeout_s: float = Field(5.0, gt=0, le=60, description="Per attempt, POST to status_url")
    status_callback_attempts: int = Field(3, ge=1, le=10, description="Tries of a status_url before giving up")
    http_host: str = Field("127.0.0.1", description="HTTP listen address (health, metrics)")
    http_port: int = Field(8080, ge=0, le=65535, description="HTTP port")
    redis_url: str | None = Field(None, description="redis://host:port/db; unset: the in-process store")
    episode_log: Path | None = Field(
        None,
        description="JSONL file of learning episodes for the in-process store; the bandit is rebuilt from "
        "it at start-up (with Redis the episodes go to the stream `episodes`)",
    )
    episode_log_max: int = Field(
        100_000,
        ge=100,
        description="Episodes kept: the Redis stream's length, the JSONL file's lines before it rotates",
    )
    max_calls: int = Field(
        100,
        ge=1,
        le=250,
        description="Most concurrent calls; more are refused with 486. The SIP stack numbers a user agent's "
        "calls in 255 lines and a refused INVITE needs one too, so one process stops at 250: scale out",
    )
    invite_rate: float = Field(20.0, gt=0, description="INVITEs per second allowed per source address")
    invite_burst: float = Field(40.0, ge=1, description="Burst of INVITEs allowed per source address")
    drain_timeout_s: float = Field(30.0, ge=0, description="On SIGTERM, how long live calls may go on before BYE")
    dialplans: Path = Field(Path("dialplans"), description="Folder of dialplan *.toml files")
    pipeline: Literal["local", "llm", "realtime", "mock"] = Field(
        "local",
        description="Speech pipeline for dialplans that name none: local (offline whisper + rule responder + "
        "piper), llm (offline STT/TTS around a hosted chat model), realtime (hosted speech-to-speech), mock",
    )
    # Two single-threaded workers beat one two-threaded one on 2 cores: a lone turn is as fast (the
    # transcript is ready during the pause either way) and simultaneous turns no longer queue
    # (bench/latency: 6 concurrent conversations before p90 doubles, against 4).
    stt_workers: int = Field(2, ge=1, le=16, description="Threads running speech-to-text inference")
    stt_threads: int = Field(1, ge=1, le=16, description="CPU threads one speech-to-text inference may use")
    tts_workers: int = Field(1, ge=1, le=16, description="Threads running text-to-speech inference")
    inference_queue: int = Field(
        64,
        ge=0,
        le=1000,
        description="Inference jobs that may wait for a worker; past it a turn apologises (from the phrase cache)",
    )
    stt_batch: int = Field(4, ge=1, le=16, description="Most utterances one speech-to-text pass decodes together")
    max_conversations: int = Field(
        0,
        ge=0,
        le=250,
        description="Most concurrent conversations the speech workers carry; more are refused at the door (SIP "
        "486, browsers 503). 0: measured at start-up (tomsip calibrate prints it); the mock pipeline keeps max_calls",
    )
    speech_cpu_budget: float = Field(
        0.6,
        gt=0,
        le=1,
        description="Share of this machine's cores that calibration lets the conversations' speech inference use",
    )
    speech_busy_ms: int = Field(
        400,
        ge=0,
        description="New calls are refused while speech jobs have lately waited longer than this for a worker "
        "(live pressure; 0: off)",
    )
    filler_after_ms: int = Field(
        1000, ge=0, le=10_000, description="A reply not started this long into its turn plays the filler first (0: off)"
    )
    reply_deadline_ms: int = Field(
        8000,
        ge=0,
        le=60_000,
        description="A reply still without audio this long into its turn gives way to the cached apology (0: never)",
    )
    phrase_cache_entries: int = Field(2000, ge=16, description="Sentences the phrase cache holds as PCM")
    phrase_cache_mb: int = Field(64, ge=1, description="PCM the phrase cache holds, in MB")
    stt_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Speech workers for speech-to-text (comma-separated base URLs, e.g. http://10.0.0.5:8090); "
        "unset: whisper runs in this process",
    )
    tts_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Speech workers for text-to-speech (comma-separated base URLs); unset: piper runs in this process",
    )
    speech_worker_key: SecretStr | None = Field(None, description="API key sent to the speech workers (Bearer)")
    speech_worker_timeout_s: float = Field(
        5.0, gt=0, le=60, description="A speech worker that sends nothing for this long has failed the request"
    )
    speech_worker_probe_s: float = Field(
        1.0, ge=0.2, le=60, description="How often speech workers' /healthz is checked"
    )
    speech_worker_slo_ms: int = Field(
        1500,
        ge=0,
        le=30_000,
        description="New calls are refused while every speech worker lately answered slower than this (0: off)",
    )
    speech_worker_start_wait_s: float = Field(
        30.0, ge=0, le=600, description="At start-up, how long to wait for a speech worker to answer /healthz"
    )
    llm_base_url: str | None = Field(None, description="OpenAI-compatible API base URL, e.g. https://host/v1")
    llm_model: str = Field("gpt-4o-mini", description="Chat model name for the llm pipeline")
    llm_api_key: SecretStr | None = Field(None, description="API key for the chat endpoint (Bearer)")
    llm_timeout_s: float = Field(8.0, gt=0, le=120, description="Give up on a chat reply after this long")
    llm_max_history: int = Field(20, ge=2, le=200, description="Chat messages kept per call")
    realtime_url: str | None = Field(
        None, description="Realtime speech-to-speech WebSocket URL, e.g. wss://host/v1/realtime?model=..."
    )
    realtime_api_key: SecretStr | None = Field(None, description="API key for the realtime endpoint (Bearer)")
    realtime_voice: str = Field("alloy", description="Voice the realtime backend speaks with")
    realtime_audio: Literal["auto", "pcm16", "g711_ulaw", "g711_alaw"] = Field(
        "auto", description="Audio to and from the realtime backend; auto: G.711 on G.711 calls, else PCM16 24 kHz"
    )
    realtime_protocol: Literal["ga", "beta"] = Field(
        "ga", description="Shape of the realtime session set-up (server events of both are understood)"
    )
    realtime_timeout_s: float = Field(10.0, gt=0, le=120, description="Give up on a realtime reply after this long")
    jwt_secret: SecretStr | None = Field(None, description="Shared secret for HS256 browser tokens")
    jwt_public_key: str | None = Field(
        None, description="PEM public key (or a path to one) for RS256/ES256 browser tokens"
    )
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["HS256"],
        description="Accepted token algorithms (HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384); never none",
    )
    jwt_leeway_s: float = Field(10.0, ge=0, le=300, description="Clock skew allowed on exp, nbf and iat")
    call_id_claim_ttl_s: float = Field(
        30.0, ge=2, le=600, description="A dead node's browser call ids are free again after this (shared store)"
    )
    jwt_max_lifetime_s: float = Field(
        900.0, ge=10, le=86_400, description="Longest a token may live from iat to exp (a short replay window)"
    )
    ws_rate: float = Field(120.0, gt=0, description="Messages per second one browser connection may send")
    ws_burst: float = Field(240.0, ge=1, description="Burst of messages one browser connection may send")
    ws_max_message: int = Field(65_536, ge=1024, le=4_194_304, description="Largest WebSocket message, bytes")
    ws_start_timeout_s: float = Field(
        10.0, gt=0, le=120, description="A browser connection that sends no start (or rtc_offer) is closed after this"
    )
    ws_connect_rate: float = Field(5.0, gt=0, description="Browser connection attempts per second per address")
    ws_connect_burst: float = Field(20.0, ge=1, description="Burst of connection attempts per address")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses of reverse proxies (nginx) whose X-Forwarded-For names the real client",
    )
    node_name: str = Field("", description="This node's name in call records and /calls (default: host:sip_port)")
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for /calls and /api/calls; unset: open (bind HTTP to a private address)"
    )
    calls_show_transcripts: bool = Field(
        False, description="/api/calls includes each live call's last words (this node's calls only)"
    )
    rtc_host: str | None = Field(
        None, description="Address offered as the WebRTC host candidate (e.g. 127.0.0.1); unset: every interface"
    )
    vad_aggressiveness: int = Field(2, ge=0, le=3, description="webrtcvad mode 0..3")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level")

    @field_validator("stt_urls", "tts_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            value = [u.strip() for u in value.split(",") if u.strip()]
        if isinstance(value, list):
            bad = [u for u in value if not (isinstance(u, str) and re.fullmatch(r"https?://[^\s/]+(/\S*)?", u))]
            if bad:
                raise ValueError(f"speech worker URLs must be http(s)://host[:port][/path]; got {bad}")
        return value

    @field_validator("jwt_algorithms", "trusted_proxies", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        if isinstance(value, str):
            return [a.strip() for a in value.split(",") if a.strip()]
        return value

    @field_validator("codecs", mode="before")
    @classmethod
    def _split_codecs(cls, value: object) -> object:
        if isinstance(value, str):
            return [c.strip().lower() for c in value.split(",") if c.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.sip_tls_port and self.sip_tls_port != self.sip_port + 1:
            raise ValueError(
                f"sip_tls_port must be 0 or sip_port+1 ({self.sip_port + 1}): the SIP engine binds TLS there"
            )
        if self.sip_tls_port and self.sip_tls_cert is None:
            raise ValueError("sip_tls_port needs sip_tls_cert (see certs/make-dev-cert.sh)")
        if self.trunk_registrar and not (self.trunk_user and self.trunk_password):
            raise ValueError("trunk_registrar needs trunk_user and trunk_password")
        for name in ("outbound_proxy", "outbound_domain"):
            value = getattr(self, name)
            if value is not None and not re.fullmatch(HOST_PORT, value):
                raise ValueError(f"{name} must be host or host:port (no scheme, no user); got {value!r}")
        low, high = (int(p) for p in self.rtp_ports.split("-"))
        if not 1 <= low < high <= 65535:
            # The stack ignores a range it cannot use without a word; say so here instead.
            raise ValueError(f"rtp_ports must be LOW-HIGH with 1 <= LOW < HIGH <= 65535; got {self.rtp_ports}")
        if self.pipeline == "llm" and not self.llm_base_url:
            raise ValueError("pipeline llm needs llm_base_url (TOMSIP_LLM_BASE_URL)")
        if self.pipeline == "realtime" and not self.realtime_url:
            raise ValueError("pipeline realtime needs realtime_url (TOMSIP_REALTIME_URL)")
        signing = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384"}
        bad_algs = [a for a in self.jwt_algorithms if a not in signing]
        if bad_algs or not self.jwt_algorithms:
            raise ValueError(f"jwt_algorithms must be a non-empty list of {sorted(signing)}; got {self.jwt_algorithms}")
        families = {KEY_FAMILY[a[:2]] for a in self.jwt_algorithms}
        if len(families) > 1:
            raise ValueError(
                f"jwt_algorithms mixes key types ({', '.join(sorted(families))}): one key type only "
                "(no algorithm confusion)"
            )
        allowed = {"pcmu", "pcma", "g722", "opus"}
        bad = [c for c in self.codecs if c not in allowed]
        if bad or not self.codecs:
            raise ValueError(f"codecs must be a non-empty list of {sorted(allowed)}; got {self.codecs}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        import os

        path = os.environ.get("TOMSIP_CONFIG_FILE")
        return (init_settings, env_settings, TomlFileSource(settings_cls, Path(path) if path else None))
