"""tomsip/outbound/dialer.py: pacing of outbound calls, with a stand-in for the composition root's
`place` (the part not under test here; tests/test_outbound_calls.py places real calls)."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from tomsip.monitor.metrics import Metrics
from tomsip.outbound.dialer import Dialer, DialerConfig, QueueFull
from tomsip.outbound.request import OutboundCall, OutboundRequest


def request(n: int) -> OutboundCall:
    return OutboundCall(OutboundRequest(to=f"10{n}", dialplan="reminder"))


def test_calls_are_placed_at_the_rate_and_never_more_at_once_than_allowed() -> None:
    async def scenario() -> None:
        started: list[float] = []
        running = 0
        most = 0

        async def place(call: OutboundCall) -> None:
            nonlocal running, most
            started.append(time.monotonic())
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.3)
            running -= 1
            call.finish("answered")

        finished: list[OutboundCall] = []
        dialer = Dialer(DialerConfig(rate=10, max_calls=2, queue=10), place, finished.append, Metrics())
        dialer.start()
        for n in range(6):
            dialer.submit(request(n))
        while len(finished) < 6:
            await asyncio.sleep(0.02)
        await dialer.stop()
        gaps = [b - a for a, b in itertools.pairwise(started)]
        assert most == 2
        assert min(gaps) >= 0.09, gaps  # 10 a second at most
        assert all(c.result == "answered" for c in finished)

    asyncio.run(scenario())


def test_past_the_queue_a_request_is_refused_and_shutdown_gives_the_waiting_a_result() -> None:
    async def scenario() -> None:
        async def place(call: OutboundCall) -> None:
            await asyncio.sleep(30)  # rings until shutdown

        finished: list[OutboundCall] = []
        dialer = Dialer(DialerConfig(rate=100, max_calls=1, queue=2), place, finished.append, Metrics())
        dialer.start()
        calls = [request(n) for n in range(4)]
        dialer.submit(calls[0])
        await asyncio.sleep(0.05)  # the first is placed
        dialer.submit(calls[1])
        await asyncio.sleep(0.05)  # the second waits for a slot
        dialer.submit(calls[2])
        dialer.submit(calls[3])
        with pytest.raises(QueueFull):
            dialer.submit(request(9))
        await dialer.stop()
        assert calls[0].result == "failed" and calls[0].reason == "shutdown"  # it was ringing
        assert [c.result for c in calls[1:]] == ["not_placed"] * 3
        assert {c.id for c in finished} == {c.id for c in calls}
        assert dialer.get(calls[2].id) is calls[2]

    asyncio.run(scenario())


def test_a_failure_in_placing_one_call_is_that_calls_result() -> None:
    async def scenario() -> None:
        async def place(call: OutboundCall) -> None:
            if call.request.to == "100":
                raise RuntimeError("boom")
            call.finish("answered")

        finished: list[OutboundCall] = []
        dialer = Dialer(DialerConfig(rate=100, max_calls=5, queue=5), place, finished.append, Metrics())
        dialer.start()
        dialer.submit(request(0))
        dialer.submit(request(1))
        while len(finished) < 2:
            await asyncio.sleep(0.01)
        await dialer.stop()
        assert sorted(c.result for c in finished) == ["answered", "failed"]

    asyncio.run(scenario())


def test_drain_then_stop_gives_a_waiting_call_its_result_once() -> None:
    async def scenario() -> None:
        async def place(call: OutboundCall) -> None:
            await asyncio.sleep(30)

        finished: list[OutboundCall] = []
        dialer = Dialer(DialerConfig(rate=100, max_calls=1, queue=5), place, finished.append, Metrics())
        dialer.start()
        dialer.submit(request(0))
        await asyncio.sleep(0.05)
        dialer.submit(request(1))  # taken from the queue, waiting for the slot
        await asyncio.sleep(0.05)
        await dialer.close_queue()
        await dialer.stop()
        assert sorted(c.result for c in finished) == ["failed", "not_placed"]

    asyncio.run(scenario())
