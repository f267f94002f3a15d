"""tomsip/speech/remote/: the node's side of the audio API, against small servers on loopback.

The servers here stand in for what is not under test: a worker that answers 503, one that breaks
off, and a hosted server of the API (no /healthz, OpenAI's 24 kHz pcm, no tomsip extensions). The
node's client, its choice of worker and its admission verdicts are what is tested; the real worker
is tested in test_speech_worker.py and with real calls in test_remote_speech_calls.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from aiohttp import web

from tomsip.monitor.metrics import Metrics
from tomsip.speech.remote.stt import RemoteSpeechToText
from tomsip.speech.remote.tts import RemoteSpeech
from tomsip.speech.remote.workers import RemoteSpeechConfig, SpeechWorkers, WorkerHttp
from tomsip.speech.stages import SpeechStageError

UTTERANCE = bytes(16000)  # half a second at 16 kHz


@dataclass
class FakeApi:
    """One server of the audio API; `mode` says how it behaves."""

    mode: str = "ok"  # ok | busy | hosted | broken
    speech_bodies: list[dict[str, object]] = field(default_factory=list)
    transcribed: int = 0
    url: str = ""

    async def healthz(self, request: web.Request) -> web.Response:
        if self.mode == "hosted":
            raise web.HTTPNotFound()
        stages = {"stt": {"recent_wait_ms": 0}, "tts": {"recent_wait_ms": 0}}
        return web.json_response({"status": "ok", "busy": self.mode == "busy", "stages": stages})

    async def transcriptions(self, request: web.Request) -> web.Response:
        form = await request.post()
        assert form["response_format"] == "verbose_json" and form["language"] == "en"
        if self.mode == "busy":
            return web.json_response({"error": {}}, status=503, headers={"Retry-After": "2"})
        self.transcribed += 1
        text = f"heard by {self.url}"
        return web.json_response({"text": f" {text} ", "segments": [{"avg_logprob": -0.2}]})

    async def speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.speech_bodies.append(body)
        if self.mode == "busy":
            return web.json_response({"error": {}}, status=503, headers={"Retry-After": "1"})
        rate = int(body.get("sample_rate", 24000))
        response = web.StreamResponse(headers={"Content-Type": f"audio/pcm;rate={rate}"})
        await response.prepare(request)
        second = (np.sin(np.arange(rate) * 2 * np.pi * 440 / rate) * 8000).astype("<i2").tobytes()
        await response.write(second[:1001])  # an odd cut: samples straddle two reads
        if self.mode == "broken":
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(second[1001:])
        await response.write_eof()
        return response


Started = Callable[..., Awaitable[tuple[SpeechWorkers, SpeechWorkers, list[FakeApi]]]]


@pytest.fixture
async def started() -> AsyncIterator[Started]:
    runners: list[web.AppRunner] = []
    sets: list[SpeechWorkers] = []
    https: list[WorkerHttp] = []

    async def start(*modes: str, slo_ms: int = 1500) -> tuple[SpeechWorkers, SpeechWorkers, list[FakeApi]]:
        fakes = []
        for mode in modes:
            fake = FakeApi(mode)
            app = web.Application()
            app.router.add_get("/healthz", fake.healthz)
            app.router.add_post("/v1/audio/transcriptions", fake.transcriptions)
            app.router.add_post("/v1/audio/speech", fake.speech)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            fake.url = f"http://127.0.0.1:{port}"
            runners.append(runner)
            fakes.append(fake)
        urls = tuple(f.url for f in fakes)
        config = RemoteSpeechConfig(urls, urls, None, 2.0, 0.2, slo_ms, 5.0)
        http = WorkerHttp(config)
        https.append(http)
        metrics = Metrics()
        stt, tts = SpeechWorkers("stt", urls, http, metrics), SpeechWorkers("tts", urls, http, metrics)
        for workers in (stt, tts):
            await asyncio.to_thread(workers.wait_ready)
            workers.ensure_probing()
            sets.append(workers)
        return stt, tts, fakes

    yield start
    for workers in sets:
        await workers.close()
    for http in https:
        await http.close()
    for runner in runners:
        await runner.cleanup()


async def test_turns_go_to_the_least_loaded_worker_in_turn(started: Started) -> None:
    stt, _, fakes = await started("ok", "ok")
    recognizer = RemoteSpeechToText(stt)
    heard = [await recognizer.transcribe(UTTERANCE) for _ in range(4)]
    assert [f.transcribed for f in fakes] == [2, 2]
    assert heard[0].text.startswith("heard by") and heard[0].confidence == pytest.approx(0.819, abs=0.001)
    assert (await recognizer.transcribe(bytes(100))).text == "", "too short to send"


async def test_a_worker_answering_503_is_passed_over_and_makes_admission_refuse(started: Started) -> None:
    stt, _, fakes = await started("busy", "ok")
    recognizer = RemoteSpeechToText(stt)
    for _ in range(3):
        assert (await recognizer.transcribe(UTTERANCE)).text == f"heard by {fakes[1].url}"
    assert stt.busy_reason() is None, "one worker still has room"
    fakes[1].mode = "busy"
    await asyncio.sleep(0.5)  # the health checks see it
    assert stt.busy_reason() == "speech_workers_busy"
    with pytest.raises(SpeechStageError) as refused:
        await recognizer.transcribe(UTTERANCE)
    assert (refused.value.backend, refused.value.kind) == ("stt_remote", "overloaded")


async def test_a_dead_worker_is_taken_out_and_the_turn_goes_to_the_next(started: Started) -> None:
    stt, _, fakes = await started("ok", "ok")
    stt.workers[0].url = "http://127.0.0.1:9"  # nothing listens there: connection refused
    recognizer = RemoteSpeechToText(stt)
    assert (await recognizer.transcribe(UTTERANCE)).text == f"heard by {fakes[1].url}"
    assert (await recognizer.transcribe(UTTERANCE)).text == f"heard by {fakes[1].url}"
    assert not stt.workers[0].up
    assert stt.busy_reason() is None
    stt.workers[1].url = "http://127.0.0.1:9"
    with pytest.raises(SpeechStageError):
        await recognizer.transcribe(UTTERANCE)
    assert stt.busy_reason() == "speech_workers_down"


async def test_slow_workers_refuse_new_calls_past_the_slo(started: Started) -> None:
    stt, _, _ = await started("ok", slo_ms=1)  # any round trip is slower than 1 ms
    await RemoteSpeechToText(stt).transcribe(UTTERANCE)
    assert stt.busy_reason() == "speech_workers_slow"


async def test_speech_streams_from_a_tomsip_worker_at_the_nodes_rate(started: Started) -> None:
    _, tts, fakes = await started("ok")
    pcm = b"".join([chunk async for chunk in RemoteSpeech(tts).synthesize("Hello there.")])
    assert fakes[0].speech_bodies[0]["sample_rate"] == 16000, "a tomsip worker is asked for 16 kHz"
    assert len(pcm) == 32000, "one second at 16 kHz, whole samples"


async def test_a_hosted_server_without_health_endpoint_is_used_as_is(started: Started) -> None:
    _, tts, fakes = await started("hosted")
    assert tts.workers[0].up and not tts.workers[0].native
    pcm = b"".join([chunk async for chunk in RemoteSpeech(tts).synthesize("Hello there.")])
    body = fakes[0].speech_bodies[0]
    assert "sample_rate" not in body and body["voice"] == "alloy", json.dumps(body)
    assert abs(len(pcm) - 32000) < 1000, "OpenAI's 24 kHz converted to the node's 16 kHz"


async def test_a_reply_broken_off_mid_stream_is_a_stage_error_and_takes_the_worker_out(started: Started) -> None:
    _, tts, _ = await started("broken")
    received = []
    with pytest.raises(SpeechStageError) as broken:
        async for chunk in RemoteSpeech(tts).synthesize("Hello there."):
            received.append(chunk)
    assert received, "what arrived before the break was played"
    assert broken.value.kind == "broken" and not tts.workers[0].up
