"""The speech workers one stage (STT or TTS) may use, and which of them to ask next.

A node keeps, per worker: whether it answers its health check, until when it said it is full (a 503
with Retry-After, or `busy` on /healthz), and how many of this node's requests it is serving. A
request goes to the least loaded worker that is up and not full (ties rotate); a worker that fails
a request (no connection, a timeout, a 5xx) is taken out until its health check passes again, and
the request goes on to the next one. Health checks run every `probe_every_s` while the node runs.

The same state answers admission (tomsip/call/conversation_limit.py): with every worker of a stage
down, full, or answering slower than the SLO, a new call would only queue, so it is refused at the
door; calls already answered carry on (their next turn may apologise from the phrase cache).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp

from tomsip.monitor.logs import call_id_var
from tomsip.monitor.metrics import Metrics
from tomsip.speech.inference import RecentWait
from tomsip.speech.stages import PipelineError, SpeechStageError

log = logging.getLogger("tomsip.speech")

T = TypeVar("T")
QUEUE_WAIT_HEADER = "X-Queue-Wait-Ms"
CONVERSATION_HEADER = "X-Tomsip-Conversation"
# A hosted server of the audio API (OpenAI's, for one) has no /healthz: it answers 404 (or 401/405).
# It is taken as up, and its requests' failures take it out as any worker's do.
NO_HEALTH_ENDPOINT = (401, 403, 404, 405)
HOSTED = object()


@dataclass(frozen=True)
class RemoteSpeechConfig:
    """What remote stages read of the settings (built by tomsip/speech/registry.py)."""

    stt_urls: tuple[str, ...]
    tts_urls: tuple[str, ...]
    api_key: str | None
    timeout_s: float
    probe_every_s: float
    slo_ms: int
    start_wait_s: float


class WorkerFull(Exception):
    """The worker answered 503: its queue is full for `retry_after_s`."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"full for {retry_after_s:g} s")
        self.retry_after_s = retry_after_s


class WorkerFailed(Exception):
    """The worker could not serve the request (connection, timeout, 5xx): take it out until healthy."""


@dataclass
class Worker:
    url: str
    up: bool = True
    full_until: float = 0.0  # answered 503: asked last until then
    busy_until: float = 0.0  # its /healthz said busy: no new calls for it, turns still go there
    in_flight: int = 0
    native: bool = False  # a tomsip speech worker (its /healthz says so), not another server of the API
    capacity: int = 0  # conversations it says it carries (0: it does not say)
    latency: RecentWait = field(default_factory=RecentWait)

    def available(self, now: float) -> bool:
        return self.up and self.full_until <= now


class WorkerHttp:
    """One HTTP session per process for every worker (connection reuse), opened in the event loop."""

    def __init__(self, config: RemoteSpeechConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._health: dict[str, tuple[float, asyncio.Future[object]]] = {}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            key = self.config.api_key
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=2, sock_read=self.config.timeout_s)
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(headers=headers, timeout=timeout, connector=connector)
        return self._session

    async def health(self, url: str) -> object:
        """A worker's /healthz body (HOSTED for a server without one). The STT and TTS stages often
        name the same workers: a check one stage made lately is shared with the other, not repeated."""
        now = time.monotonic()
        recent = self._health.get(url)
        if recent is None or now - recent[0] >= self.config.probe_every_s / 2:
            recent = (now, asyncio.ensure_future(self._fetch_health(url)))
            self._health[url] = recent
        return await asyncio.shield(recent[1])

    async def _fetch_health(self, url: str) -> object:
        async with asyncio.timeout(max(1.0, self.config.probe_every_s)):
            async with self.session().get(url + "/healthz") as resp:
                if resp.status in NO_HEALTH_ENDPOINT:
                    return HOSTED
                return await resp.json(content_type=None) if resp.status == 200 else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def queue_wait_s(response: aiohttp.ClientResponse) -> float | None:
    try:
        return float(response.headers[QUEUE_WAIT_HEADER]) / 1000
    except (KeyError, ValueError):
        return None


def retry_after_s(response: aiohttp.ClientResponse) -> float:
    try:
        return min(30.0, max(0.5, float(response.headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0


class SpeechWorkers:
    def __init__(self, stage: str, urls: tuple[str, ...], http: WorkerHttp, metrics: Metrics) -> None:
        if not urls:
            raise PipelineError(f"remote {stage} needs at least one worker URL")
        self.stage = stage
        self.backend = f"{stage}_remote"
        self.workers = [Worker(url.rstrip("/")) for url in urls]
        self.http = http
        self.config = http.config
        self._metrics = metrics
        self._rotation = itertools.count()
        self.queue_wait = RecentWait()  # what the workers say their jobs lately waited
        self._prober: asyncio.Task[None] | None = None
        self._up_gauge = metrics.speech_workers_up.labels(stage=stage)
        self._ready_gauge = metrics.speech_workers_ready.labels(stage=stage)
        self._count_states()

    # -- choosing ---------------------------------------------------------------------------------

    def candidates(self, now: float | None = None) -> list[Worker]:
        """Workers to try in order: up and not full, least of this node's requests first; then those
        that lately answered 503 (a turn asks them once more rather than give up at once)."""
        now = time.monotonic() if now is None else now
        turn = next(self._rotation)
        count = len(self.workers)
        rotated = [self.workers[(turn + i) % count] for i in range(count)]
        ready = sorted((w for w in rotated if w.available(now)), key=lambda w: w.in_flight)
        return ready + [w for w in rotated if w.up and not w.available(now)]

    async def call(self, send: Callable[[Worker], Awaitable[T]]) -> T:
        """`send` to one worker after another until one serves it; SpeechStageError when none can."""
        self.ensure_probing()
        busy = False
        for worker in self.candidates():
            started = time.perf_counter()
            worker.in_flight += 1
            try:
                result = await send(worker)
            except WorkerFull as exc:
                self.mark_full(worker, exc.retry_after_s)
                busy = True
                continue
            except WorkerFailed as exc:
                self.mark_down(worker, str(exc))
                continue
            finally:
                worker.in_flight -= 1
            self.served(worker, time.perf_counter() - started)
            return result
        raise SpeechStageError(self.backend, "overloaded" if busy else "unavailable", self._state())

    def served(self, worker: Worker, seconds: float) -> None:
        """A worker answered (a transcript, or the head of a speech stream) in `seconds`."""
        worker.latency.observe(seconds)
        self._metrics.speech_worker_requests.labels(stage=self.stage, worker=worker.url, outcome="ok").inc()
        if self.stage == "stt":
            self._metrics.speech_worker_seconds.labels(stage=self.stage).observe(seconds)

    def served_first_audio(self, seconds: float) -> None:
        """A streamed reply's first audio came this long after the request (its SLO figure)."""
        self._metrics.speech_worker_seconds.labels(stage=self.stage).observe(seconds)

    def check_answer(self, response: aiohttp.ClientResponse) -> None:
        """Note the queue wait a worker reports, and raise what a status other than 200 means for the
        choice of worker: 503 full (ask the next), 5xx failed (take it out), 4xx our request's fault."""
        wait_s = queue_wait_s(response)
        if wait_s is not None:
            self.queue_wait.observe(wait_s)
        if response.status == 200:
            return
        if response.status == 503:
            raise WorkerFull(retry_after_s(response))
        if response.status >= 500:
            raise WorkerFailed(f"http {response.status}")
        raise SpeechStageError(self.backend, f"http_{response.status}")

    def mark_full(self, worker: Worker, for_s: float) -> None:
        worker.full_until = time.monotonic() + for_s
        self._metrics.speech_worker_requests.labels(stage=self.stage, worker=worker.url, outcome="busy").inc()

    def mark_down(self, worker: Worker, why: str) -> None:
        self._metrics.speech_worker_requests.labels(stage=self.stage, worker=worker.url, outcome="failed").inc()
        if worker.up:
            log.warning("%s worker %s is down: %s", self.stage, worker.url, why)
        worker.up = False
        self._count_states()

    def _count_states(self) -> None:
        now = time.monotonic()
        self._up_gauge.set(sum(w.up for w in self.workers))
        self._ready_gauge.set(sum(_state_of(w, now) == "up" for w in self.workers))

    def _state(self) -> str:
        now = time.monotonic()
        return ", ".join(f"{w.url} {_state_of(w, now)}" for w in self.workers)

    # -- admission --------------------------------------------------------------------------------

    def busy_reason(self) -> str | None:
        """Why this stage cannot take one more conversation now, whatever this node carries."""
        self.ensure_probing()
        now = time.monotonic()
        up = [w for w in self.workers if w.up]
        if not up:
            return "speech_workers_down"
        if all(max(w.full_until, w.busy_until) > now for w in up):
            return "speech_workers_busy"
        slo_s = self.config.slo_ms / 1000
        if slo_s and all(w.latency.seconds(now) > slo_s for w in up):
            return "speech_workers_slow"
        return None

    def queue_wait_s(self) -> float:
        return self.queue_wait.seconds()

    def capacity(self) -> int:
        """Conversations the workers that are up say they carry together (0: none says): a node's
        conversation limit when this stage is its constraint."""
        return sum(w.capacity for w in self.workers if w.up)

    # -- health -----------------------------------------------------------------------------------

    def ensure_probing(self) -> None:
        """Start the health checks once the event loop runs (the pipeline is built before it serves)."""
        if self._prober is not None and not self._prober.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._prober = loop.create_task(self._probe_forever(), name=f"tomsip-{self.stage}-workers")

    async def _probe_forever(self) -> None:
        while True:
            await asyncio.gather(*(self._probe(w) for w in self.workers))
            self._count_states()
            await asyncio.sleep(self.config.probe_every_s)

    async def _probe(self, worker: Worker) -> None:
        try:
            body = await self.http.health(worker.url)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if worker.up:
                log.warning(
                    "%s worker %s is down: health check failed (%s)", self.stage, worker.url, type(exc).__name__
                )
            worker.up = False
            return
        self._health(worker, body, time.monotonic())

    def _health(self, worker: Worker, body: object, now: float) -> None:
        if body is HOSTED:  # it answers, but has no health endpoint: requests tell how it does
            worker.up = True
            worker.native = False
            return
        if not isinstance(body, dict) or body.get("status") != "ok":
            if worker.up:
                log.warning("%s worker %s is down: not ready", self.stage, worker.url)
            worker.up = False
            return
        if not worker.up:
            log.info("%s worker %s is up", self.stage, worker.url)
        worker.up = True
        worker.native = isinstance(body.get("stages"), dict)
        conversations = body.get("conversations")
        if isinstance(conversations, dict) and isinstance(conversations.get("capacity"), int):
            worker.capacity = max(0, conversations["capacity"])
        if body.get("busy"):
            worker.busy_until = now + self.config.probe_every_s * 1.5
        stage = body.get("stages", {}).get(self.stage) if isinstance(body.get("stages"), dict) else None
        if isinstance(stage, dict) and isinstance(stage.get("recent_wait_ms"), (int, float)):
            if stage["recent_wait_ms"]:
                self.queue_wait.observe(stage["recent_wait_ms"] / 1000)

    def wait_ready(self) -> None:
        """At start-up, blocking: check every worker once, and wait (up to start_wait_s) until at
        least one answers, so that the phrases made at start-up can be made and a bad URL stops the
        node with a clear message."""
        deadline = time.monotonic() + self.config.start_wait_s
        while True:
            for worker in self.workers:
                self._health(worker, _get_json(worker.url + "/healthz", self.config.timeout_s), time.monotonic())
            self._count_states()
            if any(w.up for w in self.workers) or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        self.ensure_probing()  # the node is built inside its event loop: checks run from now on
        if not any(w.up for w in self.workers):
            urls = ", ".join(w.url for w in self.workers)
            raise PipelineError(
                f"no {self.stage} speech worker answered /healthz within {self.config.start_wait_s:g} s: {urls}"
            )

    async def probe_report(self) -> dict[str, object]:
        """Each worker's state as this node sees it: up, busy (no new calls), full (503), down."""
        self.ensure_probing()
        now = time.monotonic()
        return {w.url: _state_of(w, now) for w in self.workers}

    async def close(self) -> None:
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober


def conversation_header() -> dict[str, str]:
    """The call a request belongs to, for the worker's count of conversations in progress."""
    call_id = call_id_var.get()
    return {CONVERSATION_HEADER: call_id} if call_id != "-" else {}


def _state_of(worker: Worker, now: float) -> str:
    if not worker.up:
        return "down"
    if worker.full_until > now:
        return "full"
    return "busy" if worker.busy_until > now else "up"


def _get_json(url: str, timeout_s: float) -> object:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return HOSTED if exc.code in NO_HEALTH_ENDPOINT else None
    except (OSError, ValueError):
        return None
