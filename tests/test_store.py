"""The call record store: in-process, and Redis against a real redis-server (outage and recovery)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from tests.support.redis_server import RedisServer
from tests.support.rtp import RtpPeer
from tests.support.sipp import run_sipp
from tests.support.tones import find_tones, near
from tomsip.store.base import CallRecord
from tomsip.store.memory import MemoryStore
from tomsip.store.redis_store import RedisStore


def record(call_id: str = "c1", state: str = "listening") -> CallRecord:
    return CallRecord(call_id, state, 100.0, 101.0, "udp", "g711", "default", 2, 1, "", {"turn": 12.5})


async def test_memory_store_keeps_active_and_ended_calls() -> None:
    store = MemoryStore(keep_ended=1)
    store.save_call(record("a"))
    store.save_call(record("b"))
    assert await store.active_call_ids() == ["a", "b"]
    store.save_call(record("a", "ended"), ended=True)
    store.save_call(record("b", "ended"), ended=True)
    assert await store.active_call_ids() == []
    assert await store.get_call("a") is None  # only the newest ended record is kept
    assert (await store.get_call("b")).state == "ended"  # type: ignore[union-attr]


def test_call_record_round_trips_through_flat_fields() -> None:
    original = record()
    assert CallRecord.from_fields(original.to_fields()) == original


async def wait_for(predicate, timeout_s: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.redis
async def test_redis_store_writes_reads_and_expires_ended_calls(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url, ended_ttl_s=60)
    await store.start()
    try:
        store.save_call(record("r1"))
        assert await wait_for(lambda: _has(store, "r1"))
        assert await store.active_call_ids() == ["r1"]
        store.save_call(record("r1", "ended"), ended=True)
        assert await wait_for(lambda: _state(store, "r1", "ended"))
        assert await store.active_call_ids() == []
        ttl = redis.Redis(port=redis_server.port).ttl("call:r1")
        assert 0 < ttl <= 60
    finally:
        await store.close()


async def _has(store: RedisStore, call_id: str) -> bool:
    return await store.get_call(call_id) is not None


async def _state(store: RedisStore, call_id: str, state: str) -> bool:
    found = await store.get_call(call_id)
    return found is not None and found.state == state


@pytest.mark.redis
async def test_redis_store_queues_through_an_outage_and_recovers(redis_server: RedisServer) -> None:
    errors: list[str] = []
    store = RedisStore(redis_server.url, op_timeout_s=0.3, on_error=errors.append)
    await store.start()
    try:
        redis_server.stop()
        started = time.monotonic()
        store.save_call(record("during-outage"))
        assert time.monotonic() - started < 0.05  # never blocks the caller
        assert await store.ping() is False
        await asyncio.sleep(1.0)
        assert errors and store.pending_writes == 1
        redis_server.start()
        assert await wait_for(lambda: _has(store, "during-outage"), timeout_s=10)
        assert store.pending_writes == 0
    finally:
        await store.close()


def wait_for_outcome(client: redis.Redis, outcome: str, count: int, timeout_s: float = 5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [k for k in client.keys("call:*") if client.hget(k, "outcome") == outcome]
        if len(found) >= count:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.redis
@pytest.mark.sip
def test_calls_go_on_while_redis_is_down_and_records_land_when_it_returns(
    make_server, redis_server: RedisServer, rtp_peer: RtpPeer
) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(TOMSIP_REDIS_URL=redis_server.url)
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    first = run_sipp("caller_bye", srv.sip_port)
    assert first.ok, first.errors
    assert wait_for_outcome(client, "remote_hangup", 1)

    redis_server.stop()
    result = run_sipp("caller_speaks", srv.sip_port, "1000", [rtp_peer.port])
    assert result.ok, result.errors
    assert any(near(t.hz, 600) for t in find_tones(rtp_peer.decode()))  # the call did not notice
    assert srv.metric('tomsip_store_errors_total{op="write"}') > 0
    status, report = srv.healthz()
    assert status == 503 and report["store"] == "unreachable"

    redis_server.start()  # same port, empty database
    assert wait_for_outcome(client, "remote_hangup", 1, timeout_s=15)
    keys = client.keys("call:*")
    assert len(keys) == 1, keys  # the first call's record went with the old database
    fields = client.hgetall(keys[0])
    assert fields["state"] == "ended"
    assert float(fields["latency_turn_ms"]) >= 0
    assert srv.wait_metric("tomsip_active_calls", 0) == 0
    assert srv.healthz()[0] == 200
