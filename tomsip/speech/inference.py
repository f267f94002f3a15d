"""Where heavy model inference runs: worker threads with a bounded queue, never the event loop.

Whisper (CTranslate2) and piper (onnxruntime) release the GIL while they compute, so a few threads
give real parallelism on top of one event loop without the cost of shipping audio to processes.
The queue is bounded: when every worker is busy and `max_pending` jobs already wait, a new job is
refused at once with `InferenceOverloaded` (the call says sorry) instead of piling up latency for
every call. How long jobs wait for a worker is a metric, because on a full machine that wait, not
the model, is what callers hear.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, cast

from prometheus_client import Histogram

from tomsip.speech.stages import SpeechStageError

T = TypeVar("T")


class InferenceOverloaded(SpeechStageError):
    """The pool's queue is full: this turn cannot be served in time."""

    def __init__(self, pool: str, in_flight: int) -> None:
        super().__init__(pool, "overloaded", f"{in_flight} jobs in flight")


class RecentWait:
    """How long jobs have lately waited for a worker: a moving average over the last jobs, forgotten
    after a few seconds without any (an idle pool is not a busy one). Admission reads it to refuse new
    calls while the answered ones are already queueing."""

    def __init__(self, weight: float = 0.3, forget_after_s: float = 5.0) -> None:
        self._weight = weight
        self._forget_after_s = forget_after_s
        self._average = 0.0
        self._at = -math.inf  # nothing observed yet

    def observe(self, wait_s: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now - self._at > self._forget_after_s:
            self._average = wait_s
        else:
            self._average += self._weight * (wait_s - self._average)
        self._at = now

    def seconds(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return self._average if now - self._at <= self._forget_after_s else 0.0


class InferencePool:
    def __init__(self, name: str, workers: int, max_pending: int, queue_wait: Histogram | None = None) -> None:
        if workers < 1 or max_pending < 0:
            raise ValueError("an inference pool needs at least one worker and a non-negative queue")
        self.name = name
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"tomsip-{name}")
        self._capacity = workers + max_pending
        self._workers = workers
        self._in_flight = 0
        self._lock = threading.Lock()
        self._queue_wait = queue_wait.labels(stage=name) if queue_wait is not None else None
        self.recent_wait = RecentWait()

    @property
    def capacity(self) -> int:
        """Jobs running and queued before a new one is refused."""
        return self._capacity

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Jobs queued behind busy threads."""
        return max(0, self._in_flight - self._workers)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run `fn` on a worker. Cancelling the caller drops the result; a job already running finishes
        in its thread (models cannot be interrupted), a job still queued is skipped."""
        with self._lock:
            if self._in_flight >= self._capacity:
                raise InferenceOverloaded(self.name, self._in_flight)
            self._in_flight += 1
        queued_at = time.perf_counter()
        cancelled = threading.Event()

        def job() -> T | None:
            try:
                waited = time.perf_counter() - queued_at
                self.recent_wait.observe(waited)
                if self._queue_wait is not None:
                    self._queue_wait.observe(waited)
                if cancelled.is_set():
                    return None
                return fn()
            finally:
                with self._lock:
                    self._in_flight -= 1

        future = asyncio.get_running_loop().run_in_executor(self._executor, job)
        try:
            # The job returns None only once this wait was cancelled, so nobody sees that None.
            return cast(T, await future)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
