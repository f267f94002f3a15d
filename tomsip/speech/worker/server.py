"""The speech worker's HTTP server: whisper and piper behind the OpenAI-compatible audio API.

- `POST /v1/audio/transcriptions`: utterances that arrive while the threads are busy are decoded
  together in one model pass (tomsip/speech/batching.py), so a worker serving many nodes gets cheaper
  per utterance exactly when it is loaded.
- `POST /v1/audio/speech`: text is cut into sentences and each is written to the chunked response
  as soon as piper has made it, so the first sentence plays while the next is being made. Piper makes
  a sentence in one pass (no audio before its end), so the sentence (cut at . ! ? ; :) is the unit.
  TTS is not batched: piper's ONNX model takes one sentence per pass.
- A full queue answers 503 with Retry-After at once: a node then asks another worker, and refuses new
  calls at its door while every worker is full. A speech request once admitted is never cut off for
  being busy: its later sentences wait their turn.
- Every answer carries `X-Queue-Wait-Ms`, how long jobs have lately waited for a thread here: what
  the nodes' admission reads, as it reads its own pools' wait when speech runs in process.
- `/healthz` (200 while serving, 503 while draining; `busy` when the queue is full or jobs wait
  longer than TOMSIP_WORKER_BUSY_MS) and `/metrics` are open; `/v1/*` need the API key if one is set.

The client going away (a barge-in on the node cancels its request) cancels the handler, and a job
still queued is dropped before it runs.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import math
import signal
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tomsip.audio.frames import SAMPLE_RATE
from tomsip.audio.wav import wav_header
from tomsip.speech.batching import BatchingPool
from tomsip.speech.calibration import calibrate
from tomsip.speech.inference import InferenceOverloaded, InferencePool
from tomsip.speech.sentences import split_sentences
from tomsip.speech.stages import Transcript
from tomsip.speech.worker.conversations import ConversationTracker
from tomsip.speech.worker.metrics import WorkerMetrics
from tomsip.speech.worker.requests import (
    BadRequest,
    Upload,
    speech_request,
    transcription_request,
)
from tomsip.speech.worker.settings import WorkerSettings

if TYPE_CHECKING:  # the models are imported when the worker loads them
    from tomsip.speech.local.piper_tts import PiperSpeech

log = logging.getLogger("tomsip.worker")

MIN_UTTERANCE_BYTES = SAMPLE_RATE // 5 * 2  # under 200 ms there is nothing to recognise
OVERLOAD_RETRY_S = 0.05  # an admitted speech request's next sentence waits this long for a free slot
QUEUE_WAIT_HEADER = "X-Queue-Wait-Ms"
CONVERSATION_HEADER = "X-Tomsip-Conversation"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _measured_capacity(recognizer: Any, voice: Any, budget: float) -> int:
    """Conversations this machine's models carry, timed as a node times its own (calibration.py)."""
    measured = calibrate(recognizer.transcribe_sync, voice.speak_sync, budget)
    log.info("speech worker calibrated: %s", measured.describe())
    return measured.conversations


class SpeechModels:
    """The models, loaded once, and the bounded pools that run them off the event loop."""

    def __init__(self, settings: WorkerSettings, metrics: WorkerMetrics) -> None:
        from tomsip.speech.local.piper_tts import PiperSpeech, load_piper
        from tomsip.speech.local.whisper_stt import WhisperSpeechToText, load_whisper

        recognizer = WhisperSpeechToText(load_whisper(settings.stt_threads, settings.device))
        voice = PiperSpeech(load_piper())
        self.capacity = settings.conversations or _measured_capacity(recognizer, voice, settings.cpu_budget)
        self.stt: BatchingPool[tuple[bytes, str], Transcript] = BatchingPool(
            "stt",
            recognizer.transcribe_prompted_batch,
            settings.stt_workers,
            settings.queue,
            settings.stt_batch,
            metrics.queue_wait_seconds,
            metrics.batch_size,
        )
        self.tts = InferencePool("tts", settings.tts_workers, settings.queue, metrics.queue_wait_seconds)
        self.voice = voice
        self.device = settings.device
        self.busy_s = settings.busy_ms / 1000
        metrics.watch("stt", lambda: self.stt.waiting, lambda: self.stt.in_flight)
        metrics.watch("tts", lambda: self.tts.waiting, lambda: self.tts.in_flight)

    def stages(self) -> dict[str, BatchingPool[tuple[bytes, str], Transcript] | InferencePool]:
        return {"stt": self.stt, "tts": self.tts}

    def busy(self) -> bool:
        """No room for more work, or work already waits too long: nodes should send new calls elsewhere."""
        for pool in self.stages().values():
            if pool.in_flight >= pool.capacity:
                return True
            if self.busy_s and pool.recent_wait.seconds() > self.busy_s:
                return True
        return False

    def close(self) -> None:
        self.stt.close()
        self.tts.close()


def _error(
    status: int, param: str | None, message: str, code: str, headers: dict[str, str] | None = None
) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def _wait_ms(pool: BatchingPool[Any, Any] | InferencePool) -> str:
    return str(round(pool.recent_wait.seconds() * 1000))


class SpeechWorker:
    def __init__(self, settings: WorkerSettings, models: SpeechModels, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.models = models
        self.metrics = metrics
        self.draining = False
        self._in_progress = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.conversations = ConversationTracker()
        metrics.conversations.set_function(lambda: self.conversations.active(time.monotonic()))
        key = settings.api_key.get_secret_value() if settings.api_key else ""
        self._key = key.encode()

    def web_app(self) -> web.Application:
        # the largest upload worth reading: max_audio_s of 48 kHz stereo PCM16, and the form around it
        max_size = int(self.settings.max_audio_s * 48000 * 4) + 64 * 1024
        app = web.Application(client_max_size=max_size, middlewares=[self._count, self._guard])
        app.router.add_post("/v1/audio/transcriptions", self.transcriptions)
        app.router.add_post("/v1/audio/speech", self.speech)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_page)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Requests in progress (drain waits for them), and each request's status and duration."""
        started = time.perf_counter()
        endpoint = request.match_info.route.resource.canonical if request.match_info.route.resource else "other"
        self._in_progress += 1
        self._idle.clear()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away (a barge-in on the node)
            raise
        finally:
            self._in_progress -= 1
            if not self._in_progress:
                self._idle.set()
            if endpoint.startswith("/v1/"):
                self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
                self.metrics.request_seconds.labels(endpoint=endpoint).observe(time.perf_counter() - started)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The API key and draining for /v1/*, and a BadRequest anywhere as a 400 naming its field."""
        if request.path.startswith("/v1/"):
            if self._key and not self._authorized(request):
                return _error(401, None, "a valid API key is required (Authorization: Bearer <key>)", "invalid_api_key")
            self.conversations.seen(request.headers.get(CONVERSATION_HEADER, ""), time.monotonic())
            if self.draining:
                return _error(503, None, "this worker is shutting down", "draining", {"Retry-After": "1"})
        try:
            return await handler(request)
        except BadRequest as exc:
            log.info("refused %s: %s", request.path, str(exc)[:300])
            return _error(400, exc.param, exc.reason, exc.code)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._key)

    def _busy(self, stage: str, pool: BatchingPool[Any, Any] | InferencePool) -> web.Response:
        self.metrics.refusals.labels(stage=stage).inc()
        retry_s = max(1, math.ceil(pool.recent_wait.seconds()))
        headers = {"Retry-After": str(retry_s), QUEUE_WAIT_HEADER: _wait_ms(pool)}
        return _error(503, None, f"the {stage} queue is full; try again or another worker", "overloaded", headers)

    async def transcriptions(self, request: web.Request) -> web.Response:
        upload, fields = await _form(request)
        job = transcription_request(upload, fields, self.settings.max_audio_s)
        stt = self.models.stt
        if len(job.pcm) < MIN_UTTERANCE_BYTES:
            transcript = Transcript("", 0.0)
        else:
            try:
                transcript = await stt.run((job.pcm, job.prompt))
            except InferenceOverloaded:
                return self._busy("stt", stt)
        headers = {QUEUE_WAIT_HEADER: _wait_ms(stt)}
        if job.response_format == "text":
            return web.Response(text=transcript.text + "\n", headers=headers)
        body: dict[str, object] = {"text": transcript.text}
        if job.response_format == "verbose_json":
            avg_logprob = round(math.log(max(transcript.confidence, 1e-6)), 4)
            body = {
                "task": "transcribe",
                "language": "english",
                "duration": round(job.duration_s, 3),
                "text": transcript.text,
                "segments": [
                    {"id": 0, "seek": 0, "start": 0.0, "end": round(job.duration_s, 3), "text": transcript.text,
                     "avg_logprob": avg_logprob}
                ],
            }  # fmt: skip
        return web.json_response(body, headers=headers)

    async def speech(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("body", "the body must be a JSON object") from None
        job = speech_request(body, self.settings.max_input_chars)
        sentences = split_sentences(job.text)
        if not sentences:
            raise BadRequest("input", "there are no words to speak", "missing_field")
        tts = self.models.tts
        voice = self.models.voice if job.speed == 1.0 else self.models.voice.at_rate(job.speed)
        try:
            first = await self._sentence(voice, job.sample_rate, sentences[0], wait=False)
        except InferenceOverloaded:
            return self._busy("tts", tts)
        media = "audio/wav" if job.response_format == "wav" else "audio/pcm"
        response = web.StreamResponse(
            headers={"Content-Type": f"{media};rate={job.sample_rate}", QUEUE_WAIT_HEADER: _wait_ms(tts)}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if job.response_format == "wav":
                await response.write(wav_header(job.sample_rate))
            await response.write(first)
            self.metrics.first_audio_seconds.observe(time.perf_counter() - started)
            for sentence in sentences[1:]:
                await response.write(await self._sentence(voice, job.sample_rate, sentence, wait=True))
            await response.write_eof()
        except ConnectionResetError:
            log.debug("speech request ended by the client (a barge-in on the node)")
        return response

    async def _sentence(self, voice: PiperSpeech, rate: int, sentence: str, wait: bool) -> bytes:
        """One sentence's PCM at `rate`. With `wait` (the request was admitted), a full queue slows
        it down instead of failing it."""
        make = functools.partial(voice.speak_sync, sentence, rate)
        while True:
            try:
                return await self.models.tts.run(make)
            except InferenceOverloaded:
                if not wait:
                    raise
                await asyncio.sleep(OVERLOAD_RETRY_S)

    async def healthz(self, request: web.Request) -> web.Response:
        stages = {
            name: {
                "in_flight": pool.in_flight,
                "waiting": pool.waiting,
                "capacity": pool.capacity,
                "recent_wait_ms": round(pool.recent_wait.seconds() * 1000),
            }
            for name, pool in self.models.stages().items()
        }
        active = self.conversations.active(time.monotonic())
        body = {
            "status": "draining" if self.draining else "ok",
            "busy": self.draining or self.models.busy() or active >= self.models.capacity,
            "conversations": {"active": active, "capacity": self.models.capacity},
            "device": self.models.device,
            "models": {"stt": "whisper-tiny.en", "tts": "piper en_US-joe-medium"},
            "stages": stages,
        }
        return web.json_response(body, status=503 if self.draining else 200)

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def drain(self) -> None:
        """Refuse new requests (503) and let those in progress finish, for at most drain_timeout_s."""
        self.draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), self.settings.drain_timeout_s)
        except TimeoutError:
            log.warning("drain: %d requests still in progress at the timeout", self._in_progress)


async def _form(request: web.Request) -> tuple[Upload | None, dict[str, str]]:
    """The multipart form: the `file` upload and the text fields."""
    if not request.content_type.startswith("multipart/form-data"):
        raise BadRequest("file", f"expected multipart/form-data with a `file` field, got {request.content_type}")
    try:
        form = await request.post()
    except web.HTTPException:
        raise  # 413: larger than any upload this worker reads
    except (ValueError, RuntimeError, TypeError, HttpProcessingError) as exc:
        # aiohttp's multipart reader says "malformed" in several ways: a bad boundary, an unknown
        # part encoding, too many part headers; each is the client's mistake, never a 500.
        raise BadRequest("file", f"the multipart form could not be read ({type(exc).__name__})") from None
    upload: Upload | None = None
    fields: dict[str, str] = {}
    for name, value in form.items():
        if isinstance(value, web.FileField):
            if name == "file":
                upload = Upload(value.file.read(), value.filename or "", value.content_type or "")
        elif isinstance(value, str):
            fields[name] = value
    if upload is None and isinstance(form.get("file"), str):
        raise BadRequest("file", "`file` must be an uploaded file, not a text field")
    return upload, fields


async def serve_worker(settings: WorkerSettings) -> int:
    """Load the models, serve until SIGTERM/SIGINT, drain, and return the exit status."""
    metrics = WorkerMetrics()
    models = SpeechModels(settings, metrics)
    worker = SpeechWorker(settings, models, metrics)
    runner = web.AppRunner(worker.web_app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info(
        "speech worker listening on %s:%d (device %s, stt %d threads x batch %d, tts %d threads, queue %d)",
        settings.host,
        settings.port,
        settings.device,
        settings.stt_workers,
        settings.stt_batch,
        settings.tts_workers,
        settings.queue,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("signal received: draining")
    await worker.drain()
    await runner.cleanup()
    models.close()
    log.info("speech worker stopped")
    return 0
