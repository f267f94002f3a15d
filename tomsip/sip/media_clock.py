"""One 20 ms clock that services every SIP call's media in a single pass.

A sleeping task per call would cost one wake-up per call per 20 ms; one clock costs one wake-up per
20 ms whatever the call count, and keeps every call's frames in step. Deadlines are absolute (no
drift); if the loop falls far behind, the clock skips ahead instead of bursting.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from tomsip.audio.frames import FRAME_MS
from tomsip.monitor.metrics import Metrics
from tomsip.tasks import cancel_and_wait

log = logging.getLogger("tomsip.media")


class Pumped(Protocol):
    def pump(self) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


class MediaClock:
    def __init__(self, metrics: Metrics, period_ms: int = FRAME_MS) -> None:
        self._period = period_ms / 1000
        self._members: dict[int, Pumped] = {}
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    def add(self, member: Pumped) -> None:
        self._members[id(member)] = member

    def remove(self, member: Pumped) -> None:
        self._members.pop(id(member), None)

    def __len__(self) -> int:
        return len(self._members)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="media-clock")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        tick_hist = self._metrics.media_tick_seconds
        late_hist = self._metrics.media_tick_lateness_seconds
        while True:
            woke = loop.time()
            late_hist.observe(max(0.0, woke - deadline))
            for member in list(self._members.values()):
                try:
                    member.pump()
                except Exception as exc:  # noqa: BLE001 - one port's failure ends that call only
                    self.remove(member)
                    member.fail(exc)
            done = loop.time()
            tick_hist.observe(done - woke)
            deadline += self._period
            if done - deadline > 0.2:
                log.warning("media clock fell %.0f ms behind; skipping ahead", (done - deadline) * 1000)
                deadline = done
            await asyncio.sleep(max(0.0, deadline - loop.time()))
