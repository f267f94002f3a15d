"""The shared store on Redis (redis-py asyncio), for several nodes.

Writes are queued per call (a newer snapshot of a call replaces an older unsent one) and a writer task
sends them. When Redis is unreachable the writer backs off and retries; snapshots older than
`max_age_s`, or beyond `max_pending` calls, are dropped with a warning and a metric. Calls never wait
on any of this, and when Redis comes back the queue drains by itself (redis-py reconnects on the next
command).

The bandit state of a dialplan is one hash, `bandit:{dialplan}`; a reward is added by a Lua script,
so that read, check and write of a posterior are one atomic step however many tomsip processes update
it at once. Episodes go to a stream, `episodes`, trimmed to about `episode_log_max` entries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tomsip.store.base import CallRecord, StoreUnavailable
from tomsip.tasks import cancel_and_wait

log = logging.getLogger("tomsip.store")

ACTIVE_SET = "calls:active"
EPISODE_STREAM = "episodes"

# KEYS[1] the dialplan's bandit hash; ARGV[1] the policy, ARGV[2] the reward in [0, 1].
# Mirrors tomsip.store.base.increment_posterior: missing fields start from Beta(1, 1), corrupt ones
# (not numbers, not positive, not finite) are reset first and the script returns 1.
# A claim is given back or extended only by the conversation that holds it (compare, then act, in one step).
RELEASE_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
REFRESH_IF_OWNER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def claim_key(call_id: str) -> str:
    return f"call_id_claim:{call_id}"


UPDATE_POSTERIOR = """
local fa, fb, fn = ARGV[1] .. ':alpha', ARGV[1] .. ':beta', ARGV[1] .. ':pulls'
local raw = redis.call('HMGET', KEYS[1], fa, fb, fn)
local a, b, n = tonumber(raw[1]), tonumber(raw[2]), tonumber(raw[3])
local ok = a and b and n and a > 0 and b > 0 and a < math.huge and b < math.huge
    and n >= 0 and n == math.floor(n)
local reset = 0
if not ok then
  if raw[1] or raw[2] or raw[3] then reset = 1 end
  a, b, n = 1, 1, 0
end
local r = tonumber(ARGV[2])
if r < 0 then r = 0 elseif r > 1 then r = 1 end
redis.call('HSET', KEYS[1], fa, string.format('%.17g', a + r), fb, string.format('%.17g', b + 1 - r),
           fn, string.format('%d', n + 1))
return reset
"""


def bandit_key(context: str) -> str:
    return f"bandit:{context}"


def call_key(call_id: str) -> str:
    return f"call:{call_id}"


class RedisStore:
    def __init__(
        self,
        url: str,
        *,
        ended_ttl_s: int = 86_400,
        max_pending: int = 10_000,
        max_age_s: float = 60.0,
        op_timeout_s: float = 1.0,
        on_error: Callable[[str], None] = lambda op: None,
        on_drop: Callable[[int], None] = lambda n: None,
        episode_log_max: int = 100_000,
    ) -> None:
        # redis-py's annotations cannot know decode_responses=True (every reply is str, never bytes),
        # so the client is typed loosely here and each method says what it returns.
        self._redis: Any = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=op_timeout_s,
            socket_connect_timeout=op_timeout_s,
            health_check_interval=5,
        )
        self._ended_ttl = ended_ttl_s
        self._max_pending = max_pending
        self._max_age = max_age_s
        self._on_error = on_error
        self._on_drop = on_drop
        self._pending: dict[str, tuple[CallRecord, bool, float]] = {}
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._healthy = True
        self._episode_log_max = episode_log_max
        self._update_posterior = self._redis.register_script(UPDATE_POSTERIOR)
        self._release_if_owner = self._redis.register_script(RELEASE_IF_OWNER)
        self._refresh_if_owner = self._redis.register_script(REFRESH_IF_OWNER)

    shared = True  # every node on this Redis sees the same state

    async def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="redis-store-writer")

    def save_call(self, record: CallRecord, ended: bool = False) -> None:
        if record.call_id not in self._pending and len(self._pending) >= self._max_pending:
            self._on_drop(1)
            log.warning("store queue full; dropping a call record write")
            return
        self._pending[record.call_id] = (CallRecord(**vars(record)), ended, time.monotonic())
        self._wake.set()

    async def _write_loop(self) -> None:
        backoff = 0.1
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                self._drop_stale()
                if not self._pending:
                    break
                batch = list(self._pending.items())
                try:
                    await self._write(batch)
                except (RedisError, OSError) as exc:
                    self._on_error("write")
                    if self._healthy:
                        log.warning("redis write failed, will retry: %s", type(exc).__name__)
                    self._healthy = False
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                for call_id, entry in batch:
                    if self._pending.get(call_id) is entry:
                        del self._pending[call_id]
                if not self._healthy:
                    log.info("redis reachable again; store writes resumed")
                self._healthy = True
                backoff = 0.1

    def _drop_stale(self) -> None:
        now = time.monotonic()
        stale = [cid for cid, (_, _, at) in self._pending.items() if now - at > self._max_age]
        for cid in stale:
            del self._pending[cid]
        if stale:
            self._on_drop(len(stale))
            log.warning("dropped %d call record writes older than %.0f s", len(stale), self._max_age)

    async def _write(self, batch: list[tuple[str, tuple[CallRecord, bool, float]]]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for call_id, (record, ended, _) in batch:
                key = call_key(call_id)
                pipe.hset(key, mapping=record.to_fields())
                if ended:
                    pipe.expire(key, self._ended_ttl)
                    pipe.srem(ACTIVE_SET, call_id)
                else:
                    pipe.persist(key)
                    pipe.sadd(ACTIVE_SET, call_id)
            await pipe.execute()

    async def get_call(self, call_id: str) -> CallRecord | None:
        try:
            fields = await self._redis.hgetall(call_key(call_id))
        except (RedisError, OSError) as exc:
            self._on_error("read")
            raise StoreUnavailable(str(exc)) from exc
        return CallRecord.from_fields(fields) if fields else None

    async def active_call_ids(self) -> list[str]:
        try:
            return sorted(await self._redis.smembers(ACTIVE_SET))
        except (RedisError, OSError) as exc:
            self._on_error("read")
            raise StoreUnavailable(str(exc)) from exc

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def claim_call_id(self, call_id: str, owner: str, ttl_s: float) -> bool:
        try:
            return bool(await self._redis.set(claim_key(call_id), owner, nx=True, px=max(1, int(ttl_s * 1000))))
        except (RedisError, OSError) as exc:
            self._on_error("claim")
            raise StoreUnavailable(str(exc)) from exc

    async def refresh_call_ids(self, claims: dict[str, str], ttl_s: float) -> None:
        try:
            for call_id, owner in claims.items():
                await self._refresh_if_owner(keys=[claim_key(call_id)], args=[owner, max(1, int(ttl_s * 1000))])
        except (RedisError, OSError):
            self._on_error("claim")  # the next refresh tries again; a claim lapses only after its ttl

    async def release_call_id(self, call_id: str, owner: str) -> None:
        try:
            await self._release_if_owner(keys=[claim_key(call_id)], args=[owner])
        except (RedisError, OSError):
            self._on_error("claim")  # it lapses by itself

    async def claim_nonce(self, nonce: str, ttl_s: int) -> bool:
        try:
            return bool(await self._redis.set(f"nonce:{nonce}", "1", nx=True, ex=max(1, ttl_s)))
        except (RedisError, OSError) as exc:
            self._on_error("nonce")
            raise StoreUnavailable(str(exc)) from exc

    # ---- learning ----

    async def bandit_fields(self, context: str) -> dict[str, str]:
        try:
            fields: dict[str, str] = await self._redis.hgetall(bandit_key(context))
            return fields
        except (RedisError, OSError) as exc:
            self._on_error("read")
            raise StoreUnavailable(str(exc)) from exc

    async def bandit_update(self, context: str, policy: str, reward: float) -> bool:
        try:
            return bool(await self._update_posterior(keys=[bandit_key(context)], args=[policy, repr(float(reward))]))
        except (RedisError, OSError) as exc:
            self._on_error("write")
            raise StoreUnavailable(str(exc)) from exc

    async def bandit_set(self, context: str, fields: dict[str, str], replace: bool = False) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                if replace:
                    pipe.delete(bandit_key(context))
                if fields:
                    pipe.hset(bandit_key(context), mapping=fields)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._on_error("write")
            raise StoreUnavailable(str(exc)) from exc

    async def append_episode(self, episode: dict[str, object]) -> None:
        try:
            await self._redis.xadd(
                EPISODE_STREAM,
                {"json": json.dumps(episode, separators=(",", ":"))},
                maxlen=self._episode_log_max,
                approximate=True,
            )
        except (RedisError, OSError) as exc:
            self._on_error("write")
            raise StoreUnavailable(str(exc)) from exc

    async def episodes(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        start = "-"
        try:
            while True:
                batch = await self._redis.xrange(EPISODE_STREAM, min=start, max="+", count=1000)
                for entry_id, fields in batch:
                    try:
                        item = json.loads(fields.get("json", ""))
                    except json.JSONDecodeError:
                        log.warning("episode %s is not JSON; skipped", entry_id)
                        continue
                    if isinstance(item, dict):
                        out.append(item)
                if len(batch) < 1000:
                    return out
                start = "(" + batch[-1][0]
        except (RedisError, OSError) as exc:
            self._on_error("read")
            raise StoreUnavailable(str(exc)) from exc

    @property
    def pending_writes(self) -> int:
        return len(self._pending)

    async def close(self, flush_timeout_s: float = 2.0) -> None:
        deadline = time.monotonic() + flush_timeout_s
        while self._pending and time.monotonic() < deadline and self._healthy:
            await asyncio.sleep(0.02)
        await cancel_and_wait(self._writer)
        await self._redis.aclose()
