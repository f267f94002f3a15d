"""The embedded store: dicts in this process. Default for a single node.

Bandit state lives in memory only; the episode log is a JSONL file when one is configured
(TOMSIP_EPISODE_LOG), from which the learner rebuilds its posteriors at start-up, so a restart loses
nothing that was learned. The file is bounded: past `episode_log_max` lines it is rotated to `.1`
(one generation kept, both are read back).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections import deque
from pathlib import Path

from tomsip.store.base import CallRecord, StoreUnavailable, increment_posterior

log = logging.getLogger("tomsip.store")


class MemoryStore:
    shared = False  # nothing here is seen by another process

    def __init__(self, keep_ended: int = 1000, episode_log: Path | None = None, episode_log_max: int = 100_000) -> None:
        self._calls: dict[str, CallRecord] = {}
        self._active: set[str] = set()
        self._ended: list[str] = []
        self._keep_ended = keep_ended
        self._bandit: dict[str, dict[str, str]] = {}
        self._nonces: dict[str, float] = {}
        self._call_ids: dict[str, tuple[str, float]] = {}  # call id -> (owner, held until, monotonic)
        self._max_nonces = 100_000
        self._episode_log = episode_log
        self._episode_log_max = episode_log_max
        self._episode_lines: int | None = None
        self._recent: deque[dict[str, object]] = deque(maxlen=min(episode_log_max, 10_000))

    def save_call(self, record: CallRecord, ended: bool = False) -> None:
        self._calls[record.call_id] = copy.deepcopy(record)
        if ended:
            self._active.discard(record.call_id)
            self._ended.append(record.call_id)
            while len(self._ended) > self._keep_ended:
                self._calls.pop(self._ended.pop(0), None)
        else:
            self._active.add(record.call_id)

    async def get_call(self, call_id: str) -> CallRecord | None:
        record = self._calls.get(call_id)
        return copy.deepcopy(record) if record else None

    async def active_call_ids(self) -> list[str]:
        return sorted(self._active)

    async def ping(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def claim_call_id(self, call_id: str, owner: str, ttl_s: float) -> bool:
        now = time.monotonic()
        held = self._call_ids.get(call_id)
        if held is not None and held[1] > now:
            return False
        self._call_ids[call_id] = (owner, now + ttl_s)
        return True

    async def refresh_call_ids(self, claims: dict[str, str], ttl_s: float) -> None:
        until = time.monotonic() + ttl_s
        for call_id, owner in claims.items():
            held = self._call_ids.get(call_id)
            if held is not None and held[0] == owner:
                self._call_ids[call_id] = (owner, until)

    async def release_call_id(self, call_id: str, owner: str) -> None:
        held = self._call_ids.get(call_id)
        if held is not None and held[0] == owner:
            del self._call_ids[call_id]

    async def claim_nonce(self, nonce: str, ttl_s: int) -> bool:
        now = time.monotonic()
        if len(self._nonces) >= self._max_nonces:
            for key in [k for k, until in self._nonces.items() if until <= now]:
                del self._nonces[key]
            if len(self._nonces) >= self._max_nonces:
                raise StoreUnavailable("nonce table full: too many live tokens")
        until = self._nonces.get(nonce)
        if until is not None and until > now:
            return False
        self._nonces[nonce] = now + ttl_s
        return True

    # ---- learning ----

    async def bandit_fields(self, context: str) -> dict[str, str]:
        return dict(self._bandit.get(context, {}))

    async def bandit_update(self, context: str, policy: str, reward: float) -> bool:
        return increment_posterior(self._bandit.setdefault(context, {}), policy, reward)

    async def bandit_set(self, context: str, fields: dict[str, str], replace: bool = False) -> None:
        if replace:
            self._bandit[context] = {}
        self._bandit.setdefault(context, {}).update(fields)

    async def append_episode(self, episode: dict[str, object]) -> None:
        self._recent.append(episode)
        if self._episode_log is None:
            return
        try:
            if self._episode_lines is None:
                self._episode_lines = _count_lines(self._episode_log)
            if self._episode_lines >= self._episode_log_max:
                self._episode_log.replace(self._episode_log.with_name(self._episode_log.name + ".1"))
                self._episode_lines = 0
            with self._episode_log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(episode, separators=(",", ":")) + "\n")
            self._episode_lines += 1
        except OSError as exc:
            raise StoreUnavailable(f"episode log {self._episode_log}: {exc}") from exc

    async def episodes(self) -> list[dict[str, object]]:
        if self._episode_log is None:
            return list(self._recent)
        rotated = self._episode_log.with_name(self._episode_log.name + ".1")
        return [*read_jsonl(rotated), *read_jsonl(self._episode_log)]


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


def read_jsonl(path: Path) -> list[dict[str, object]]:
    """Episodes from a JSONL file; a line that is not a JSON object is skipped with a warning."""
    if not path.exists():
        return []
    out: list[dict[str, object]] = []
    bad = 0
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(item, dict):
                out.append(item)
            else:
                bad += 1
    if bad:
        log.warning("episode log %s: skipped %d lines that are not JSON objects", path, bad)
    return out
