"""The embedded store: a dict in this process. Default for a single node."""

from __future__ import annotations

import copy

from tomsip.store.base import CallRecord


class MemoryStore:
    def __init__(self, keep_ended: int = 1000) -> None:
        self._calls: dict[str, CallRecord] = {}
        self._active: set[str] = set()
        self._ended: list[str] = []
        self._keep_ended = keep_ended

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
