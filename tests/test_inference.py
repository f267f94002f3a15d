"""The bounded inference pool (tomsip/speech/inference.py)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tomsip.speech.inference import InferenceOverloaded, InferencePool


async def test_inference_pool_refuses_past_its_queue_and_counts_nothing_lost() -> None:
    pool = InferencePool("test", workers=1, max_pending=1)
    release = threading.Event()
    first = asyncio.ensure_future(pool.run(lambda: release.wait(5) and 1))
    second = asyncio.ensure_future(pool.run(lambda: 2))
    await asyncio.sleep(0.05)
    with pytest.raises(InferenceOverloaded):
        await pool.run(lambda: 3)
    release.set()
    assert await first == 1 and await second == 2
    assert pool.in_flight == 0
    pool.close()
