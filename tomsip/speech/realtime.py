"""Speech-to-speech through one hosted session per call (the OpenAI Realtime WebSocket protocol).

The backend hears every caller frame as it arrives (`input_audio_buffer.append`, 100 ms at a time)
and answers with audio deltas that go out through the ordinary paced player. Turn boundaries stay
tomsip's: the call FSM's end-pointer commits the buffer and asks for a response, so DTMF, no-input
prompts, the goodbye and the call's limits work as on any other pipeline. The backend's own VAD is on
only to hear barge-in: its `speech_started` during a reply interrupts the call just as local barge-in
does. Either way playout is flushed, the response cancelled, and `conversation.item.truncate` tells
the backend how many milliseconds of the reply the caller really heard; deltas of a cancelled
response that arrive late are dropped.

Both event vocabularies are accepted from the server: GA (`response.output_audio.delta`) and beta
(`response.audio.delta`); `realtime_protocol` picks the shape of the session set-up we send.

Failures (an `error` event for our turn, no response in time, a lost connection, malformed events)
raise SpeechStageError: the caller hears an apology spoken by the offline TTS, the error is counted,
and the call goes on (reconnecting on the next turn if the connection was lost).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import aiohttp

from tomsip.audio.frames import bytes_to_ms
from tomsip.conversation.turns import TurnKind
from tomsip.monitor.metrics import Metrics
from tomsip.speech.realtime_events import (
    AudioDelta,
    CallerSpeechStarted,
    Malformed,
    Other,
    ResponseCreated,
    ResponseDone,
    ServerError,
    TranscriptDelta,
    parse_server_event,
)
from tomsip.speech.realtime_wire import Decoder, Encoder, WireFormat, session_update
from tomsip.speech.stages import (
    ReplyAudio,
    SpeechStageError,
    Transcript,
    TurnLatency,
    TurnRequest,
    call_context,
    consent_prompt,
    voicemail_message,
)

log = logging.getLogger("tomsip.speech.realtime")

BACKEND = "realtime"
APPEND_FRAMES = 5  # 100 ms per input_audio_buffer.append
PRE_CONNECT_FRAMES = 50  # caller audio kept while the session opens (1 s); older is dropped
RECONNECT_AFTER_S = 5.0  # an unreachable backend is tried again at most this often
MAX_PENDING_SENDS = 200  # 20 s of audio; past it the backend is not keeping up and frames are dropped
PROMPTS = {
    TurnKind.NO_INPUT: "The caller has gone quiet. Briefly ask whether they are still there.",
    TurnKind.GOODBYE: "The call is ending now. Say a short, friendly goodbye.",
    TurnKind.RESUMED: "The caller put the call on hold and is back. Welcome them back in a few words and carry on.",
    TurnKind.RATING: "Ask the caller to rate this call from one to five on the keypad. Say nothing else.",
    TurnKind.BRIEFING: "You are now speaking to a colleague who will take this caller over. In one or two "
    "sentences, tell them who is waiting and what the caller wants.",
    TurnKind.TRANSFER_FAILED: "Nobody could take the call. Apologise briefly and offer to take a message now.",
    TurnKind.MESSAGE_TAKEN: "Thank the caller for their message and say you will pass it on. Nothing else.",
}


@dataclass(frozen=True)
class RealtimeConfig:
    url: str
    api_key: str | None
    voice: str
    timeout_s: float
    audio: str  # pcm16, g711_ulaw, g711_alaw or auto
    protocol: str  # ga or beta
    instructions: str = "You are a friendly phone assistant. Keep answers short: they are spoken on a call."


class _Response:
    """One backend response being received: its audio, and whether it is over."""

    def __init__(self, response_id: str) -> None:
        self.id = response_id
        self.item_id = ""
        self.audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.transcript: list[str] = []
        self.status = ""


class RealtimeBrain:
    def __init__(
        self,
        config: RealtimeConfig,
        http: aiohttp.ClientSession,
        options: Mapping[str, object],
        metrics: Metrics,
        apology: bytes,
    ) -> None:
        self._config = config
        self._http = http
        self._metrics = metrics
        self._apology = apology
        self._greeting = str(options.get("greeting") or "Hello, how can I help?")
        self._voicemail = voicemail_message(options)
        self._consent = consent_prompt(options)
        self._instructions = str(options.get("system_prompt") or config.instructions)
        context = call_context(options)
        if context:  # an outbound call's purpose: whom we call, about what
            self._instructions += "\nAbout this call: " + "; ".join(f"{k}: {v}" for k, v in context.items())
        self._format = WireFormat.choose(config.audio, str(options.get("codec") or ""))
        self._encoder = Encoder(self._format)
        self._decoder = Decoder(self._format)
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._connect_started = -RECONNECT_AFTER_S
        self._reader: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._sends: asyncio.Queue[str] = asyncio.Queue(MAX_PENDING_SENDS)
        self._pending_audio: list[bytes] = []
        self._responses: dict[str, _Response] = {}
        self._awaiting: asyncio.Future[_Response] | None = None  # the turn waiting for response.created
        self._current: _Response | None = None
        self._cancelled: set[str] = set()
        self._on_barge_in: Callable[[], None] | None = None
        self._yielded_ms = 0
        self._dropped_ms = 0
        self.late_deltas_dropped = 0
        self.closed = False

    # ---- CallBrain ----

    def on_barge_in(self, handler: Callable[[], None]) -> None:
        self._on_barge_in = handler

    async def transcribe(self, audio: bytes) -> Transcript | None:
        return None  # no local STT: turns end on the dialplan's silence

    def task_completed(self) -> bool | None:
        return None  # the backend does not say

    def hear(self, frame: bytes) -> None:
        if self.closed:
            return
        self._ensure_connected()
        self._pending_audio.append(frame)
        if len(self._pending_audio) >= APPEND_FRAMES:
            self._flush_audio()

    def playout_flushed(self, dropped_ms: int) -> None:
        self._dropped_ms += dropped_ms

    async def turn(self, request: TurnRequest, latency: TurnLatency) -> AsyncIterator[ReplyAudio]:
        started = time.perf_counter()
        try:
            response = await self._request_response(request)
            first = True
            while True:
                try:
                    async with asyncio.timeout(self._config.timeout_s):
                        pcm = await response.audio.get()
                except TimeoutError:
                    raise self._timeout("no audio in time") from None
                if pcm is None:
                    break
                if first:
                    first = False
                    latency.first_audio_ms = (time.perf_counter() - started) * 1000
                    if request.kind is TurnKind.UTTERANCE:
                        self._metrics.speech_to_speech_latency_ms.observe(latency.first_audio_ms)
                self._yielded_ms += bytes_to_ms(len(pcm))
                text, response.transcript = "".join(response.transcript), []
                yield ReplyAudio(pcm, text=text)
            self._current = None
            if response.status == "failed":
                raise SpeechStageError(BACKEND, "response_failed")
        except asyncio.CancelledError:
            self._interrupted()
            raise
        except SpeechStageError as exc:
            self._current = None
            log.warning("speech-to-speech turn failed, apologising: %s", exc)
            yield ReplyAudio(self._apology)

    async def close(self) -> None:
        self.closed = True
        for task in (self._connecting, self._reader, self._writer):
            if task is not None:
                task.cancel()
        if self._ws is not None:
            await self._ws.close()

    # ---- turns ----

    async def _request_response(self, request: TurnRequest) -> _Response:
        await self._connected()
        self._yielded_ms = self._dropped_ms = 0
        kind = request.kind
        if kind is TurnKind.UTTERANCE:
            self._flush_audio()
            self._send({"type": "input_audio_buffer.commit"})
            self._send({"type": "response.create"})
        elif kind is TurnKind.DIGIT:
            item = {"type": "message", "role": "user", "content": [_text(f"(The caller pressed {request.digit}.)")]}
            self._send({"type": "conversation.item.create", "item": item})
            self._send({"type": "response.create"})
        elif kind is TurnKind.CONSENT:
            say = f"Say exactly these words and nothing else: {self._consent}"
            self._send({"type": "response.create", "response": {"instructions": say}})
        elif kind is TurnKind.VOICEMAIL:
            say = f"An answering machine is recording. Say exactly these words and nothing else: {self._voicemail}"
            self._send({"type": "response.create", "response": {"instructions": say}})
        else:
            say = PROMPTS.get(kind) or f"Greet the caller with exactly these words: {self._greeting}"
            self._send({"type": "response.create", "response": {"instructions": say}})
        loop = asyncio.get_running_loop()
        self._awaiting = loop.create_future()
        try:
            async with asyncio.timeout(self._config.timeout_s):
                response = await self._awaiting
        except TimeoutError:
            raise self._timeout("no response.created") from None
        finally:
            self._awaiting = None
        self._current = response
        return response

    def _timeout(self, detail: str) -> SpeechStageError:
        """A wait that ran out: counted like every other backend failure (errors and disconnects are
        counted where they arrive)."""
        self._metrics.api_errors.labels(backend=BACKEND, kind="timeout").inc()
        return SpeechStageError(BACKEND, "timeout", detail)

    def _interrupted(self) -> None:
        """Barge-in (local or the backend's): stop the response and say what the caller heard."""
        response = self._current
        self._current = None
        if response is None:
            return
        if not response.status:
            self._cancelled.add(response.id)
            self._send({"type": "response.cancel"})
        if response.item_id:
            heard = max(0, self._yielded_ms - self._dropped_ms)
            self._send(
                {
                    "type": "conversation.item.truncate",
                    "item_id": response.item_id,
                    "content_index": 0,
                    "audio_end_ms": heard,
                }
            )

    # ---- connection ----

    def _ensure_connected(self) -> None:
        """Open the session if it is not open or opening; after a failure, not more often than every
        RECONNECT_AFTER_S (frames arrive every 20 ms)."""
        now = time.monotonic()
        idle = self._connecting is None or (self._connecting.done() and self._ws is None)
        if idle and now - self._connect_started >= RECONNECT_AFTER_S:
            self._connect_started = now
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connected(self) -> None:
        self._ensure_connected()
        if self._connecting is not None:
            try:
                async with asyncio.timeout(self._config.timeout_s):
                    await asyncio.shield(self._connecting)
            except TimeoutError:
                raise self._timeout("connect") from None
        if self._ws is None:
            raise SpeechStageError(BACKEND, "unreachable")

    async def _connect(self) -> None:
        headers = _auth(self._config)
        if self._config.protocol == "beta":
            headers["OpenAI-Beta"] = "realtime=v1"
        try:
            ws = await self._http.ws_connect(self._config.url, headers=headers, heartbeat=20)
            await ws.send_str(json.dumps(self._session_setup()))
        except (aiohttp.ClientError, OSError) as exc:
            self._metrics.api_errors.labels(backend=BACKEND, kind="unreachable").inc()
            log.warning("speech-to-speech backend unreachable: %s", type(exc).__name__)
            return
        self._ws = ws
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write_loop(self._ws))
        self._reader = loop.create_task(self._read_loop(self._ws))

    def _session_setup(self) -> dict[str, object]:
        return session_update(self._config.protocol, self._format, self._config.voice, self._instructions)

    def _send(self, event: dict[str, object]) -> None:
        if self._ws is None:
            return
        try:
            self._sends.put_nowait(json.dumps(event))
        except asyncio.QueueFull:
            self._metrics.api_errors.labels(backend=BACKEND, kind="send_queue_full").inc()

    def _flush_audio(self) -> None:
        if self._ws is None:
            del self._pending_audio[:-PRE_CONNECT_FRAMES]
            return
        if not self._pending_audio:
            return
        data = self._encoder.encode(b"".join(self._pending_audio))
        self._pending_audio.clear()
        if data:
            self._send({"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()})

    async def _write_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError):
            while not ws.closed:
                await ws.send_str(await self._sends.get())

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    self._on_event(message.data)
                elif message.type is aiohttp.WSMsgType.ERROR:
                    break
        finally:
            self._ws = None
            if not self.closed:
                self._metrics.api_errors.labels(backend=BACKEND, kind="disconnected").inc()
                self._fail_turn(SpeechStageError(BACKEND, "disconnected"))

    # ---- server events ----

    def _on_event(self, text: str) -> None:
        match parse_server_event(text):
            case AudioDelta(response_id=response_id, item_id=item_id, audio=audio):
                response = self._responses.get(response_id)
                if response is None or response.id in self._cancelled:
                    self.late_deltas_dropped += 1
                    return
                response.item_id = response.item_id or item_id
                pcm = self._decoder.decode(audio)
                if pcm:
                    response.audio.put_nowait(pcm)
            case TranscriptDelta(response_id=response_id, text=delta):
                response = self._responses.get(response_id)
                if response is not None:
                    response.transcript.append(delta)
            case ResponseCreated(response_id=response_id):
                response = _Response(response_id)
                self._responses[response.id] = response
                if self._awaiting is not None and not self._awaiting.done():
                    self._awaiting.set_result(response)
            case ResponseDone(response_id=response_id, status=status):
                response = self._responses.pop(response_id, None)
                if response is not None:
                    response.status = status
                    response.audio.put_nowait(None)
                    log.debug("response %s %s", response.id, response.status)
                self._cancelled.discard(response_id)
            case CallerSpeechStarted():
                if self._current is not None and self._on_barge_in is not None:
                    self._on_barge_in()
            case ServerError(benign=True):
                pass  # the commit or cancel crossed the backend's own: nothing is wrong
            case ServerError(code=code):
                self._metrics.api_errors.labels(backend=BACKEND, kind=code).inc()
                log.warning("speech-to-speech backend error: %s", code)
                self._fail_turn(SpeechStageError(BACKEND, code))
            case Malformed(kind=kind, reason=reason):
                self._metrics.api_errors.labels(backend=BACKEND, kind="malformed").inc()
                log.warning("malformed %s event from the speech-to-speech backend: %s", kind or "-", reason)
            case Other():
                pass

    def _fail_turn(self, error: SpeechStageError) -> None:
        """An error for the turn in progress: end its wait so that it apologises."""
        if self._awaiting is not None and not self._awaiting.done():
            self._awaiting.set_exception(error)
        elif self._current is not None and not self._current.status:
            self._current.status = "failed"
            self._current.audio.put_nowait(None)


def _text(text: str) -> dict[str, str]:
    return {"type": "input_text", "text": text}


class RealtimePipeline:
    """One HTTP client per process; one WebSocket session per call."""

    name = "realtime"

    def __init__(self, config: RealtimeConfig, metrics: Metrics, apology: bytes) -> None:
        self._config = config
        self._metrics = metrics
        self._apology = apology
        self._http: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        return self._http

    def open(self, call_id: str, options: Mapping[str, object]) -> RealtimeBrain:
        return RealtimeBrain(self._config, self._client(), options, self._metrics, self._apology)

    def check(self, options: Mapping[str, object]) -> None:
        if "speaking_rate" in options:
            raise ValueError("speaking_rate needs a local TTS; the realtime backend speaks at its own rate")

    def prepare(self, options: Mapping[str, object]) -> None:
        return None  # the backend speaks; the one local phrase (the apology) was made at construction

    def calibrate(self, cpu_budget: float) -> None:
        return None  # the hosted backend carries the speech; this machine only relays audio

    def busy_reason(self) -> None:
        return None  # the hosted backend's capacity shows as errors in a call, not before one

    def queue_wait_s(self) -> float:
        return 0.0

    async def probe(self) -> dict[str, object]:
        """Open a session and wait for `session.created`."""
        try:
            client = self._client()
            async with asyncio.timeout(5), client.ws_connect(self._config.url, headers=_auth(self._config)) as ws:
                message = await ws.receive()
                event = json.loads(message.data) if message.type is aiohttp.WSMsgType.TEXT else {}
                ok = event.get("type") == "session.created"
                return {"pipeline": self.name, "ok": ok, "backend": BACKEND}
        except (TimeoutError, aiohttp.ClientError, OSError, json.JSONDecodeError) as exc:
            return {"pipeline": self.name, "ok": False, "backend": BACKEND, "error": type(exc).__name__}

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


def _auth(config: RealtimeConfig) -> dict[str, str]:
    return {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
