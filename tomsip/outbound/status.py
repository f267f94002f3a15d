"""POSTing an outbound call's result to its `status_url`: off the call's path, retried, bounded.

A receiver that is down, slow or answers 5xx gets `attempts` tries with growing pauses, each cut off
after `timeout_s`; then the result is given up (counted, one warning). A 4xx is final: the receiver
refused it and would refuse it again. Nothing here can delay or end a call.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from tomsip.monitor.metrics import Metrics
from tomsip.outbound.request import OutboundCall

log = logging.getLogger("tomsip.outbound.status")

MAX_PENDING = 1000  # results waiting for their receiver; past it new ones are dropped and counted


class StatusCallbacks:
    def __init__(self, timeout_s: float, attempts: int, metrics: Metrics, backoff_s: float = 1.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._metrics = metrics
        self._http: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def send(self, call: OutboundCall) -> None:
        url = call.request.status_url
        if not url:
            return
        if len(self._pending) >= MAX_PENDING:
            self._metrics.status_callbacks.labels(outcome="dropped").inc()
            return
        task = asyncio.get_running_loop().create_task(self._post(url, call.view(), call.id))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, url: str, body: dict[str, object], call_id: str) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        last = ""
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
            try:
                async with self._http.post(url, json=body) as response:
                    if response.status < 300:
                        self._metrics.status_callbacks.labels(outcome="delivered").inc()
                        return
                    last = f"HTTP {response.status}"
                    if 400 <= response.status < 500 and response.status not in (408, 429):
                        break
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                last = type(exc).__name__
        self._metrics.status_callbacks.labels(outcome="failed").inc()
        log.warning("status callback not delivered: %s", last, extra={"call_id": call_id})

    async def close(self, grace_s: float = 2.0) -> None:
        """Shutdown: results on their way get `grace_s` to arrive, then are given up."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=grace_s)
        for task in list(self._pending):
            task.cancel()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
