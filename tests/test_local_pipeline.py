"""The offline pipeline in-process (real whisper, real piper, the booking responder), its start-up
checks, and what a turn does when a stage cannot serve it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.caller import utterance
from tomsip.audio.frames import SAMPLE_RATE, bytes_to_ms
from tomsip.audio.g711 import ulaw_to_pcm
from tomsip.audio.resample import resample_once
from tomsip.conversation.turns import TurnKind
from tomsip.monitor.metrics import Metrics
from tomsip.settings import Settings
from tomsip.speech.registry import build_pipeline
from tomsip.speech.staged_brain import APOLOGY, StagedBrain
from tomsip.speech.stages import ReplyText, SpeechStageError, Transcript, TurnLatency, TurnRequest

ROOT = Path(__file__).resolve().parents[1]


def pcm16k(name: str) -> bytes:
    return resample_once(b"".join(ulaw_to_pcm(p) for p in utterance(name)), 8000, SAMPLE_RATE)


@pytest.fixture(scope="module")
def local() -> object:
    metrics = Metrics()
    pipeline = build_pipeline("local", Settings(pipeline="local"), metrics)
    yield pipeline, metrics
    asyncio.run(pipeline.close())


async def test_a_spoken_request_gets_a_spoken_confirmation(local: tuple) -> None:  # type: ignore[type-arg]
    pipeline, metrics = local
    brain = pipeline.open("call-1", {"greeting": "Which day?"})
    latency = TurnLatency()
    request = TurnRequest(1, TurnKind.UTTERANCE, pcm16k("book_tuesday"), 4000)
    audio = b"".join([c.pcm async for c in brain.turn(request, latency)])
    assert bytes_to_ms(len(audio)) > 2000, "the confirmation is a sentence or two of speech"
    assert brain.conversation.day == "Tuesday" and brain.conversation.time.hour == 10
    assert latency.stt_ms is not None and latency.tts_first_ms is not None
    assert metrics.inference_queue_wait_seconds.labels(stage="stt")._sum.get() >= 0
    heard = await brain.transcribe(audio)  # what piper said, back through whisper
    # piper samples its voice with noise, so the round trip varies a little ("shall I vote that", once)
    assert heard is not None and "tuesday" in heard.text.lower() and "shall i" in heard.text.lower()


async def test_noise_and_silence_transcribe_to_nothing(local: tuple) -> None:  # type: ignore[type-arg]
    import numpy as np

    pipeline, _ = local
    brain = pipeline.open("call-2", {})
    noise = np.random.default_rng(7).normal(0, 600, SAMPLE_RATE * 2).astype("<i2").tobytes()
    for audio in (noise, bytes(SAMPLE_RATE * 2), b"\x01\x00" * 100):
        transcript = await brain.transcribe(audio)
        assert transcript is not None and transcript.text == ""


class FailingResponderConversation:
    async def respond(self, request: TurnRequest, transcript: Transcript | None) -> AsyncIterator[ReplyText]:
        yield ReplyText("Let me check.")
        raise SpeechStageError("chat", "timeout", "no answer in 8 s")


class SilentStt:
    async def transcribe(self, audio: bytes) -> Transcript:
        return Transcript("hello there")


class TextTts:
    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        yield text.encode()


async def test_a_stage_error_is_an_apology_and_a_metric_not_a_failed_call() -> None:
    metrics = Metrics()
    brain = StagedBrain(SilentStt(), FailingResponderConversation(), TextTts(), metrics)
    spoken = [c.pcm.decode() async for c in brain.turn(TurnRequest(1, TurnKind.UTTERANCE, b"x"), TurnLatency())]
    assert spoken == ["Let me check.", APOLOGY]
    assert metrics.api_errors.labels(backend="chat", kind="timeout")._value.get() == 1


def test_a_missing_model_package_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    code = "import sys; sys.modules['piper'] = None; from tomsip.cli import main; sys.exit(main(['serve']))"
    env = {
        "PATH": "/usr/bin:/bin",
        "TOMSIP_PIPELINE": "local",
        "TOMSIP_DIALPLANS": str(ROOT / "dialplans"),
        "TOMSIP_HTTP_PORT": "0",
    }
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2
    assert "piper-tts" in proc.stderr and "not installed" in proc.stderr


def test_bad_responder_options_stop_start_up_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(
        'name = "bad"\ndefault = true\npipeline = "local"\n[options]\nopen_hours = "nine to five"\n'
    )
    env = {"PATH": "/usr/bin:/bin", "TOMSIP_DIALPLANS": str(tmp_path), "TOMSIP_HTTP_PORT": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "tomsip", "serve"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 2
    assert "bad.toml" in proc.stderr and "open_hours" in proc.stderr


def test_speech_api_health_reports_the_configured_backend(make_server) -> None:  # type: ignore[no-untyped-def]
    """GET /healthz/speech_api: a local pipeline is fine once loaded; an llm pipeline whose endpoint
    does not answer is reported unhealthy (503) while the server itself stays up."""
    local = make_server(TOMSIP_PIPELINE="local")
    status, body = local.get("/healthz/speech_api")
    assert status == 200 and json.loads(body) == {"pipeline": "local", "ok": True, "backend": "local"}
    dead = make_server(TOMSIP_PIPELINE="llm", TOMSIP_LLM_BASE_URL="http://127.0.0.1:9/v1")
    status, body = dead.get("/healthz/speech_api")
    report = json.loads(body)
    assert status == 503 and report["ok"] is False and report["backend"] == "chat"
    assert dead.healthz()[0] == 200, "the speech backend's health is reported apart from readiness"
