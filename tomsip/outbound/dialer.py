"""Pacing of outbound calls: a bounded queue, at most `rate` new calls a second, at most `max_calls`
ringing or in progress at once. A request past the queue is refused at once (HTTP 503); what is queued
is placed in order, and every call ends with a result (tomsip/outbound/request.py) that is handed to
`finished` (the record, the metric, the status callback).

What a placed call does is the composition root's `place`: admission by the speech capacity, the
INVITE, the conversation. The dialer only decides when.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tomsip.monitor.metrics import Metrics
from tomsip.outbound.request import OutboundCall
from tomsip.tasks import cancel_and_wait

log = logging.getLogger("tomsip.outbound")

KEPT_RESULTS = 10_000  # finished calls remembered for GET /api/calls/{id}; the store keeps the record


class QueueFull(RuntimeError):
    pass


@dataclass(frozen=True)
class DialerConfig:
    rate: float  # calls placed per second at most
    max_calls: int  # ringing or in progress at once
    queue: int  # waiting to be placed


class Dialer:
    def __init__(
        self,
        config: DialerConfig,
        place: Callable[[OutboundCall], Awaitable[None]],
        finished: Callable[[OutboundCall], None],
        metrics: Metrics,
    ) -> None:
        self._config = config
        self._place = place
        self._finished = finished
        self._metrics = metrics
        self._queue: asyncio.Queue[OutboundCall] = asyncio.Queue()
        self._slots = asyncio.Semaphore(config.max_calls)
        self._calls: OrderedDict[str, OutboundCall] = OrderedDict()
        self._running: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._next_at = 0.0
        self._taken: OutboundCall | None = None  # out of the queue, waiting for a slot or its pace

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._dial_loop(), name="outbound-dialer")

    def submit(self, call: OutboundCall) -> None:
        if self._queue.qsize() >= self._config.queue:
            raise QueueFull(f"{self._queue.qsize()} outbound calls already waiting")
        self._calls[call.id] = call
        while len(self._calls) > KEPT_RESULTS:
            oldest = next(iter(self._calls))
            if self._calls[oldest].state != "done":
                break
            self._calls.popitem(last=False)
        self._queue.put_nowait(call)
        self._metrics.outbound_queued.set(self._queue.qsize())

    def get(self, call_id: str) -> OutboundCall | None:
        return self._calls.get(call_id)

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    async def _dial_loop(self) -> None:
        while True:
            call = self._taken = await self._queue.get()
            self._metrics.outbound_queued.set(self._queue.qsize())
            await self._slots.acquire()
            wait = self._next_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_at = time.monotonic() + 1 / self._config.rate
            self._taken = None
            task = asyncio.get_running_loop().create_task(self._run(call))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, call: OutboundCall) -> None:
        self._metrics.outbound_in_progress.inc()
        call.state = "dialing"
        try:
            await self._place(call)
        except asyncio.CancelledError:
            if call.state != "done":
                call.finish("failed", "shutdown")
            raise
        except Exception as exc:  # noqa: BLE001 - one call's failure is that call's result
            log.warning("outbound call failed: %s", type(exc).__name__, extra={"call_id": call.id})
            if call.state != "done":
                call.finish("failed", type(exc).__name__)
        finally:
            self._metrics.outbound_in_progress.dec()
            self._slots.release()
            self._finished(call)

    @property
    def in_progress(self) -> int:
        """Calls placed and not over yet (ringing, or in conversation)."""
        return len(self._running)

    async def close_queue(self) -> None:
        """Drain: nothing more is placed, and what waits gets its result (not placed); calls already
        placed go on."""
        await cancel_and_wait(self._loop_task)
        self._loop_task = None
        left = [self._taken] if self._taken is not None else []
        self._taken = None  # drain closes the queue, and stop closes it again: each call's result once
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        for call in left:
            call.finish("not_placed", "shutdown")
            self._finished(call)
        self._metrics.outbound_queued.set(0)

    async def stop(self) -> None:
        """Shutdown: the queue is closed, and calls still ringing are cancelled (CANCEL sent)."""
        await self.close_queue()
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
