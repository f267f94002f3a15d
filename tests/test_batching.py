"""Batching inference: jobs that wait together run in one pass, a lone job runs at once, a dropped
job is skipped, a full queue refuses, and a failing batch fails each of its callers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from tomsip.speech.batching import BatchingPool
from tomsip.speech.inference import InferenceOverloaded, RecentWait


class Model:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def run(self, items: Sequence[int]) -> list[int]:
        self.gate.wait(5)
        self.batches.append(list(items))
        return [i * 10 for i in items]


async def test_a_lone_job_runs_at_once_in_a_batch_of_one() -> None:
    model = Model()
    pool: BatchingPool[int, int] = BatchingPool("t", model.run, workers=1, max_pending=4)
    started = time.perf_counter()
    assert await pool.run(3) == 30
    assert time.perf_counter() - started < 0.5
    assert model.batches == [[3]]
    pool.close()


async def test_jobs_waiting_behind_a_busy_worker_run_together() -> None:
    model = Model()
    model.gate.clear()
    pool: BatchingPool[int, int] = BatchingPool("t", model.run, workers=1, max_pending=8, max_batch=4)
    first = asyncio.ensure_future(pool.run(1))
    await asyncio.sleep(0.05)  # the worker holds job 1
    rest = [asyncio.ensure_future(pool.run(i)) for i in range(2, 7)]
    await asyncio.sleep(0.05)
    assert pool.waiting == 5
    model.gate.set()
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40, 50, 60]
    assert model.batches == [[1], [2, 3, 4, 5], [6]]
    assert pool.in_flight == 0
    pool.close()


async def test_a_job_whose_caller_gave_up_is_not_run() -> None:
    model = Model()
    model.gate.clear()
    pool: BatchingPool[int, int] = BatchingPool("t", model.run, workers=1, max_pending=8)
    first = asyncio.ensure_future(pool.run(1))
    await asyncio.sleep(0.05)
    dropped = asyncio.ensure_future(pool.run(2))
    kept = asyncio.ensure_future(pool.run(3))
    await asyncio.sleep(0.01)
    dropped.cancel()
    model.gate.set()
    assert await first == 10 and await kept == 30
    assert model.batches == [[1], [3]]
    assert pool.in_flight == 0
    pool.close()


async def test_a_full_queue_refuses_at_once() -> None:
    model = Model()
    model.gate.clear()
    pool: BatchingPool[int, int] = BatchingPool("t", model.run, workers=1, max_pending=1)
    held = [asyncio.ensure_future(pool.run(i)) for i in (1, 2)]
    await asyncio.sleep(0.05)
    with pytest.raises(InferenceOverloaded):
        await pool.run(3)
    model.gate.set()
    assert await asyncio.gather(*held) == [10, 20]
    pool.close()


async def test_a_failing_batch_fails_each_of_its_callers_and_the_pool_goes_on() -> None:
    calls = 0

    def broken(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("model fault")
        return list(items)

    pool: BatchingPool[int, int] = BatchingPool("t", broken, workers=1, max_pending=2)
    with pytest.raises(RuntimeError, match="model fault"):
        await pool.run(1)
    assert await pool.run(2) == 2
    pool.close()


def test_recent_wait_averages_and_forgets_an_idle_pool() -> None:
    wait = RecentWait(weight=0.5, forget_after_s=5)
    wait.observe(1.0, now=0)
    wait.observe(0.0, now=1)
    assert wait.seconds(now=1) == pytest.approx(0.5)
    assert wait.seconds(now=7) == 0.0
    wait.observe(0.2, now=20)  # after a pause the old average does not linger
    assert wait.seconds(now=20) == pytest.approx(0.2)
