"""Chooses the store from settings: no URL means the embedded in-process store."""

from __future__ import annotations

from pathlib import Path

from tomsip.monitor.metrics import Metrics
from tomsip.store.base import Store
from tomsip.store.memory import MemoryStore


def build_store(
    redis_url: str | None, metrics: Metrics, episode_log: Path | None = None, episode_log_max: int = 100_000
) -> Store:
    if not redis_url:
        return MemoryStore(episode_log=episode_log, episode_log_max=episode_log_max)
    from tomsip.store.redis_store import RedisStore

    return RedisStore(
        redis_url,
        on_error=lambda op: metrics.store_errors.labels(op=op).inc(),
        on_drop=lambda n: metrics.store_dropped_writes.inc(n),
        episode_log_max=episode_log_max,
    )
