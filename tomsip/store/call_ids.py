"""One live browser conversation per call id, across every node on the shared store.

A node claims the id in the store when it admits a session (atomically: two nodes racing for one id
cannot both win), refreshes its claims while the sessions live, and gives each back when its session
ends. A node that dies without giving them back stops refreshing, so its claims lapse after `ttl_s`
and the ids are free again. Each claim's owner is unique to one session, so a late release can never
free an id that another session has taken since.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from tomsip.store.base import Store
from tomsip.tasks import cancel_and_wait

log = logging.getLogger("tomsip.store")


class CallIdClaimer:
    def __init__(self, store: Store, node: str, ttl_s: float) -> None:
        self._store = store
        self._node = node
        self._ttl = ttl_s
        self._held: dict[str, str] = {}  # call id -> owner
        self._refresher: asyncio.Task[None] | None = None
        self._releasing: set[asyncio.Task[None]] = set()

    async def claim(self, call_id: str) -> bool:
        owner = f"{self._node}/{uuid.uuid4().hex[:12]}"
        if not await self._store.claim_call_id(call_id, owner, self._ttl):
            return False
        self._held[call_id] = owner
        return True

    def release(self, call_id: str) -> None:
        owner = self._held.pop(call_id, None)
        if owner is None:
            return
        task = asyncio.get_running_loop().create_task(self._store.release_call_id(call_id, owner))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    def start(self) -> None:
        self._refresher = asyncio.get_running_loop().create_task(self._refresh(), name="call-id-claims")

    async def stop(self) -> None:
        await cancel_and_wait(self._refresher)
        if self._releasing:
            await asyncio.wait(self._releasing, timeout=2)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            if self._held:
                await self._store.refresh_call_ids(dict(self._held), self._ttl)
