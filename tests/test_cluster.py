"""Scale-out: Debian's kamailio with deploy/kamailio.cfg dispatching real SIPp calls to two tomsip
processes that share one real redis-server. Both nodes take calls; when one stops, OPTIONS probing
takes it out and new calls go to the other; policy updates from both nodes land in one bandit."""

from __future__ import annotations

import time

import pytest
import redis

from tests.support.kamailio import Kamailio, kamailio_path
from tests.support.redis_server import RedisServer
from tests.support.rtp import RtpPeer
from tests.support.sipp import run_sipp

pytestmark = [pytest.mark.skipif(kamailio_path() is None, reason="kamailio is not installed"), pytest.mark.redis]

COMPLETED = 'tomsip_calls_total{outcome="completed"}'


def place_calls(port: int, count: int, service: str = "1000") -> None:
    """`count` calls through the balancer, started 5 a second, each with its own RTP peer."""
    peers = [RtpPeer() for _ in range(count)]
    try:
        result = run_sipp("lb_call", port, service, [p.port for p in peers], calls=count, rate=5, timeout_s=40)
        assert result.ok, result.errors
    finally:
        for peer in peers:
            peer.close()


def test_kamailio_spreads_calls_and_routes_around_a_stopped_node(
    make_server, redis_server: RedisServer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    env = {"TOMSIP_REDIS_URL": redis_server.url}
    nodes = [make_server(**env), make_server(**env)]
    lb = Kamailio(tmp_path, [n.sip_port for n in nodes]).start()
    try:
        time.sleep(2.5)  # the first OPTIONS round marks both nodes up
        place_calls(lb.port, 6)
        taken = [n.wait_metric(COMPLETED, n.metric(COMPLETED)) for n in nodes]
        assert sum(taken) == 6 and min(taken) >= 2, f"round-robin over both nodes: {taken}\n{lb.log()[-1500:]}"

        # Calls placed through the balancer ran under the shared store: their records are in Redis.
        client = redis.Redis(port=redis_server.port, decode_responses=True)
        records = [client.hgetall(k) for k in client.scan_iter("call:*")]
        assert len(records) == 6 and {r["outcome"] for r in records} == {"completed"}

        nodes[1].stop()
        time.sleep(5)  # probing notices within two intervals
        before = nodes[0].metric(COMPLETED)
        place_calls(lb.port, 4)
        assert nodes[0].wait_metric(COMPLETED, before + 4) == before + 4, lb.log()[-1500:]
    finally:
        lb.stop()


def test_policy_updates_from_two_nodes_combine_in_one_bandit(make_server, redis_server: RedisServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {"TOMSIP_REDIS_URL": redis_server.url}
    nodes = [make_server(**env), make_server(**env)]
    for node in nodes:
        peer = RtpPeer()
        try:
            assert run_sipp("rating", node.sip_port, "learn", [peer.port]).ok
        finally:
            peer.close()
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    deadline = time.monotonic() + 5
    while client.xlen("episodes") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    bandit = client.hgetall("bandit:learning")
    pulls = sum(int(v) for k, v in bandit.items() if k.endswith(":pulls"))
    assert pulls == 2 and client.xlen("episodes") == 2, bandit


async def test_behind_nginx_a_token_spent_on_one_node_is_refused_by_the_other(
    make_server, redis_server: RedisServer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """nginx balances the two nodes round-robin, so the replay lands on the node that did not see
    the token: only the shared Redis can refuse it."""
    import asyncio

    import aiohttp

    from tests.support.browser import SECRET, Received, new_call_id, read_all, token
    from tests.support.nginx import Nginx
    from tests.test_nginx import get

    env = {"TOMSIP_REDIS_URL": redis_server.url, "TOMSIP_JWT_SECRET": SECRET, "TOMSIP_TRUSTED_PROXIES": "127.0.0.1"}
    nodes = [make_server(**env), make_server(**env)]
    proxy = Nginx(tmp_path, [n.http_port for n in nodes]).start()
    try:
        cid = new_call_id()
        tok = token(cid)
        url = f"http://127.0.0.1:{proxy.port}/ws/stream/{cid}?token={tok}"
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws,
        ):
            await ws.send_json({"type": "start"})
            assert (await ws.receive_json(timeout=10))["type"] == "ready"
            await ws.send_json({"type": "stop"})
            closed = await asyncio.wait_for(read_all(ws, Received()), 10)
            assert closed.close_code == 1000
        served = [n.metric("tomsip_auth_success_total") for n in nodes]
        assert sorted(served) == [0, 1]
        for _ in range(2):  # round-robin: at least one replay reaches the other node
            status, body = get(proxy.port, f"/ws/stream/{cid}?token={tok}")
            assert status == 401 and b"replayed" in body
        refused = [n.metric('tomsip_auth_failures_total{reason="replayed"}') for n in nodes]
        assert refused[served.index(0)] >= 1, "the node that never saw the token refused it"
    finally:
        proxy.stop()


def test_a_call_refused_by_a_full_node_lands_on_the_other_node(
    make_server, redis_server: RedisServer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """Node A carries one conversation; B carries more. Four calls held at once through Kamailio:
    A answers one and refuses the next with 486 at the INVITE, Kamailio retries those on B, and every
    caller is answered."""
    env = {"TOMSIP_REDIS_URL": redis_server.url}
    full = make_server(TOMSIP_MAX_CONVERSATIONS="1", **env)
    spare = make_server(**env)
    lb = Kamailio(tmp_path, [full.sip_port, spare.sip_port]).start()
    peers = [RtpPeer() for _ in range(4)]
    try:
        time.sleep(2.5)  # the first OPTIONS round marks both nodes up
        result = run_sipp("lb_hold", lb.port, "1000", [p.port for p in peers], calls=4, rate=4, duration_ms=4000,
                          timeout_s=40)  # fmt: skip
        assert result.ok, f"{result.errors}\n{lb.log()[-1500:]}"
        assert full.metric('tomsip_admission_refusals_total{reason="conversations"}') >= 1
        hung_up = 'tomsip_calls_total{outcome="remote_hangup"}'  # the callers ended the calls
        assert full.wait_metric(hung_up, 1) == 1
        assert spare.wait_metric(hung_up, 3) == 3, lb.log()[-1500:]
    finally:
        for peer in peers:
            peer.close()
        lb.stop()
