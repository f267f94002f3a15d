"""Hostile input at the browser door, and the browser's promises across nodes, against real tomsip
processes (and one real redis-server): whatever a client sends without a key gets a 4xx, never a 500
or an ERROR line; limits mean what the settings say; a call id is one live conversation on every node
that shares the store, and a dead node's ids come free by themselves."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.browser import SECRET, Received, new_call_id, read_all, token
from tests.support.redis_server import RedisServer
from tests.support.server import TomsipServer
from tests.test_browser_stream import refused_reason, ws_url

UPGRADE = (
    b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


@pytest.fixture(scope="module")
def open_door(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A server whose connection-attempt limit is out of the way, so every request meets the token
    check."""
    log = tmp_path_factory.mktemp("door") / "server.log"
    env = {"TOMSIP_JWT_SECRET": SECRET, "TOMSIP_WS_CONNECT_RATE": "100000", "TOMSIP_WS_CONNECT_BURST": "100000"}
    srv = TomsipServer(env=env, log_path=log).start()
    yield srv
    srv.stop()


def raw_status(server: TomsipServer, path: bytes, headers: bytes) -> int:
    """One request with exactly these bytes (aiohttp's client would refuse to send most of them)."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=5) as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + UPGRADE + headers + b"\r\n")
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1]) if reply.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")) else 0


HOSTILE = [
    (b"/ws/stream/c1", b"Authorization: Bearer \xff\xfe.\x80.\x81\r\n"),
    (b"/ws/stream/c1", b"Sec-WebSocket-Protocol: tomsip, a\xff.b.c\r\n"),
    (b"/ws/stream/c1", b"Sec-WebSocket-Protocol: tomsip, \xc3\x28.e30.x\r\n"),
    (b"/ws/stream/c1?token=%FF%FE.%80.%81", b""),
    (b"/ws/stream/c1?token=e30.e30.", b""),
    (b"/ws/stream/c1%0A?token=a.b.c", b""),
    (b"/ws/stream/c1%0Alevel=error", b""),
    (b"/ws/stream/" + b"x" * 65 + b"?token=a.b.c", b""),
    (b"/ws/stream/c1", b"Authorization: Bearer " + b"a" * 5000 + b".b.c\r\n"),
]


@pytest.mark.parametrize(("path", "headers"), HOSTILE)
def test_hostile_requests_get_a_4xx(open_door: TomsipServer, path: bytes, headers: bytes) -> None:
    assert 400 <= raw_status(open_door, path, headers) < 500


header_bytes = st.binary(min_size=1, max_size=120).filter(lambda b: b"\r" not in b and b"\n" not in b)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(auth=header_bytes, proto=header_bytes, call_id=st.binary(min_size=1, max_size=20))
def test_any_header_bytes_get_a_4xx_never_a_500(
    open_door: TomsipServer, auth: bytes, proto: bytes, call_id: bytes
) -> None:
    path = b"/ws/stream/" + b"".join(b"%%%02X" % c for c in call_id)
    headers = b"Authorization: Bearer " + auth + b"\r\nSec-WebSocket-Protocol: tomsip, " + proto + b"\r\n"
    assert 400 <= raw_status(open_door, path, headers) < 500


def test_after_all_that_the_door_logged_no_error_and_stays_up(open_door: TomsipServer) -> None:
    log = open_door.log_text()
    assert "level=error" not in log and "Traceback" not in log
    assert "reason=malformed" in log, "refusals are logged (at WARNING), without the token"
    assert "level=warning" in log
    assert open_door.healthz()[0] == 200
    assert open_door.wait_metric('tomsip_auth_failures_total{reason="malformed"}', 1) >= 1


async def test_a_message_of_exactly_the_limit_is_taken_one_byte_more_is_not(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(TOMSIP_JWT_SECRET=SECRET, TOMSIP_WS_MAX_MESSAGE="4096")
    async with aiohttp.ClientSession() as http:
        cid = new_call_id()
        async with http.ws_connect(ws_url(srv, cid, token(cid))) as ws:
            await ws.send_json({"type": "start"})
            assert (await ws.receive_json(timeout=5))["type"] == "ready"
            await ws.send_bytes(bytes(4096))
            await ws.send_json({"type": "stop"})
            got = await asyncio.wait_for(read_all(ws, Received()), 10)
        assert got.close_code == 1000 and not got.of("error")
        cid = new_call_id()
        async with http.ws_connect(ws_url(srv, cid, token(cid))) as ws:
            await ws.send_json({"type": "start"})
            await ws.send_bytes(bytes(4098))
            assert (await asyncio.wait_for(read_all(ws, Received()), 10)).close_code == 1009


async def test_pings_pay_like_any_message(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(TOMSIP_JWT_SECRET=SECRET, TOMSIP_WS_RATE="20", TOMSIP_WS_BURST="20")
    cid = new_call_id()
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(srv, cid, token(cid)), autoping=False) as ws:
        await ws.send_json({"type": "start"})
        for _ in range(60):
            await ws.ping(b"x")
        got = await asyncio.wait_for(read_all(ws, Received()), 10)
    assert got.close_code == 1013


async def test_a_socket_that_never_starts_is_closed_on_the_timeout(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(TOMSIP_JWT_SECRET=SECRET, TOMSIP_WS_START_TIMEOUT_S="1")
    cid = new_call_id()
    started = time.monotonic()
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(srv, cid, token(cid))) as ws:
        got = await asyncio.wait_for(read_all(ws, Received()), 10)
    assert got.close_code == 1008 and 0.8 < time.monotonic() - started < 5
    # the id it held is free again
    assert await refused_reason(srv, cid, token(cid)) == (101, "")


async def test_a_live_call_id_is_refused_on_every_node_and_free_again_when_it_ends(
    make_server, redis_server: RedisServer
) -> None:  # type: ignore[no-untyped-def]
    env = {"TOMSIP_JWT_SECRET": SECRET, "TOMSIP_REDIS_URL": redis_server.url, "TOMSIP_CALL_ID_CLAIM_TTL_S": "3"}
    first, second = make_server(**env), make_server(**env)
    cid = new_call_id()
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(first, cid, token(cid))) as ws:
        await ws.send_json({"type": "start"})
        assert (await ws.receive_json(timeout=5))["type"] == "ready"
        assert await refused_reason(second, cid, token(cid)) == (409, "call_id_in_use")
        assert await refused_reason(first, cid, token(cid)) == (409, "call_id_in_use")
        await asyncio.sleep(4)  # past the claim's ttl: the live node keeps it
        assert await refused_reason(second, cid, token(cid)) == (409, "call_id_in_use")
        await ws.send_json({"type": "stop"})
        await read_all(ws, Received())
    await asyncio.sleep(0.3)
    assert await refused_reason(second, cid, token(cid)) == (101, "")


async def test_a_dead_nodes_call_ids_come_free_after_the_claim_ttl(make_server, redis_server: RedisServer) -> None:  # type: ignore[no-untyped-def]
    env = {"TOMSIP_JWT_SECRET": SECRET, "TOMSIP_REDIS_URL": redis_server.url, "TOMSIP_CALL_ID_CLAIM_TTL_S": "3"}
    doomed, survivor = make_server(**env), make_server(**env)
    cid = new_call_id()
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(ws_url(doomed, cid, token(cid)))
        await ws.send_json({"type": "start"})
        assert (await ws.receive_json(timeout=5))["type"] == "ready"
        assert doomed.proc is not None
        doomed.proc.kill()  # no drain, no release
        doomed.proc.wait()
        assert await refused_reason(survivor, cid, token(cid)) == (409, "call_id_in_use")
        await asyncio.sleep(3.5)
        assert await refused_reason(survivor, cid, token(cid)) == (101, "")
        await ws.close()
