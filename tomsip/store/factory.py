"""Chooses the store from settings: no URL means the embedded in-process store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tomsip.store.base import Store
from tomsip.store.memory import MemoryStore


def _ignore(_: object) -> None:
    pass


def build_store(
    redis_url: str | None,
    episode_log: Path | None = None,
    episode_log_max: int = 100_000,
    *,
    on_error: Callable[[str], None] = _ignore,
    on_drop: Callable[[int], None] = _ignore,
) -> Store:
    """`on_error(op)` counts a failed store operation, `on_drop(n)` writes given up on (Redis only)."""
    if not redis_url:
        return MemoryStore(episode_log=episode_log, episode_log_max=episode_log_max)
    from tomsip.store.redis_store import RedisStore

    return RedisStore(
        redis_url,
        on_error=on_error,
        on_drop=on_drop,
        episode_log_max=episode_log_max,
    )
