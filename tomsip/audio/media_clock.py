"""One 20 ms clock that services the media of many conversations in a single pass.

A sleeping task per call would cost one wake-up per call per 20 ms; one clock costs one wake-up per
20 ms whatever the call count, and keeps every call's frames in step. Deadlines are absolute (no
drift); if the loop falls far behind, the clock skips ahead instead of bursting. Each transport runs
its own (SIP calls on one, browsers on another) so a stall in one cannot starve the other's timing.

It reports how long a tick took and how late it woke to two observers (the Prometheus histograms in
production), so that this module needs nothing outside audio.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from tomsip.audio.frames import FRAME_MS
from tomsip.tasks import cancel_and_wait

log = logging.getLogger("tomsip.media")


class Pumped(Protocol):
    def pump(self) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


class Observer(Protocol):
    """Where a duration in seconds goes (a histogram)."""

    def observe(self, amount: float) -> None: ...


class _Ignore:
    def observe(self, amount: float) -> None:
        pass


class MediaClock:
    def __init__(
        self, tick_seconds: Observer | None = None, lateness_seconds: Observer | None = None, period_ms: int = FRAME_MS
    ) -> None:
        self._period = period_ms / 1000
        self._members: dict[int, Pumped] = {}
        self._tick_seconds = tick_seconds or _Ignore()
        self._lateness_seconds = lateness_seconds or _Ignore()
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
        tick_hist = self._tick_seconds
        late_hist = self._lateness_seconds
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
