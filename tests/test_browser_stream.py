"""WebSocket /ws/stream/{call_id} against a real tomsip process: every auth refusal with its reason
(also a nonce replayed on a second process sharing one real redis-server, and the store down), a
conversation streamed in real time, the rate limit, and bad input that never reaches other sessions."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import jwt
import pytest

from tests.support.browser import SECRET, Received, new_call_id, read_all, stream_pcm, token
from tests.support.redis_server import RedisServer
from tests.support.server import TomsipServer
from tests.test_session import speech_frames
from tomsip.bridge.events import SCHEMA_PATH, schema_text

ROOT = Path(__file__).resolve().parents[1]
SILENCE_20MS = bytes(640)


def ws_url(server: TomsipServer, call_id: str, tok: str | None = None) -> str:
    query = f"?token={tok}" if tok is not None else ""
    return f"http://127.0.0.1:{server.http_port}/ws/stream/{call_id}{query}"


async def refused_reason(server: TomsipServer, call_id: str, tok: str | None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        url = ws_url(server, call_id, tok)
        headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
        async with http.get(url, headers=headers) as resp:
            body = await resp.text()
            return resp.status, json.loads(body).get("reason", "") if resp.status != 101 else ""


@pytest.fixture(scope="module")
def browser_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    log = tmp_path_factory.mktemp("browser") / "server.log"
    srv = TomsipServer(env={"TOMSIP_JWT_SECRET": SECRET}, log_path=log).start()
    yield srv
    srv.stop()


def test_the_event_schema_under_docs_is_current() -> None:
    assert SCHEMA_PATH.read_text() == schema_text(), "run: python -m tomsip.bridge.events"


async def test_each_auth_failure_is_refused_with_its_reason(browser_server: TomsipServer) -> None:
    srv = browser_server
    cid = new_call_id()
    now = int(time.time())
    none_alg = jwt.encode({"sub": "x", "call_id": cid, "iat": now, "exp": now + 60, "nonce": "n" * 16}, None, "none")
    cases = {
        "no_token": None,
        "bad_signature": token(cid, secret="another-secret-of-the-same-length-0123"),
        "alg_not_allowed": none_alg,
        "expired": token(cid, iat=now - 600, exp=now - 300),
        "not_yet_valid": token(cid, nbf=now + 600),
        "call_id_mismatch": token("someone-else"),
        "missing_claim": token(cid, nonce=None),
        "malformed": "not.a.jwt",
    }
    for reason, tok in cases.items():
        assert await refused_reason(srv, cid, tok) == (401, reason), reason
    hs512 = jwt.encode({"sub": "x", "call_id": cid, "iat": now, "exp": now + 60, "nonce": "n" * 16}, SECRET, "HS512")
    assert await refused_reason(srv, cid, hs512) == (401, "alg_not_allowed"), "only the allow-listed algorithm"
    metrics = srv.metrics()
    assert metrics['tomsip_auth_failures_total{reason="expired"}'] >= 1
    assert "token=" not in srv.log_text() and SECRET not in srv.log_text(), "tokens never reach the log"


async def test_a_token_works_once_and_a_replay_is_refused(browser_server: TomsipServer) -> None:
    cid = new_call_id()
    tok = token(cid)
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(browser_server, cid, tok)) as ws:
        await ws.send_json({"type": "start", "sample_rate": 16000})
        ready = await ws.receive_json(timeout=5)
        assert ready["type"] == "ready" and ready["call_id"] == cid
        await ws.send_json({"type": "stop"})
        got = await read_all(ws, Received())
        assert got.close_code == 1000
    assert await refused_reason(browser_server, cid, tok) == (401, "replayed")


@pytest.mark.redis
async def test_a_nonce_spent_on_one_process_is_refused_on_another_and_a_dead_store_fails_closed(
    make_server, redis_server: RedisServer
) -> None:  # type: ignore[no-untyped-def]
    env = {"TOMSIP_JWT_SECRET": SECRET, "TOMSIP_REDIS_URL": redis_server.url}
    first, second = make_server(**env), make_server(**env)
    cid = new_call_id()
    tok = token(cid)
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(first, cid, tok)) as ws:
        await ws.send_json({"type": "start"})
        assert (await ws.receive_json(timeout=5))["type"] == "ready"
        await ws.send_json({"type": "stop"})
        await read_all(ws, Received())
    assert await refused_reason(second, cid, tok) == (401, "replayed")
    redis_server.stop()
    assert await refused_reason(second, new_call_id(), None) == (401, "no_token")
    other = new_call_id()
    assert await refused_reason(second, other, token(other)) == (401, "store_unavailable")


async def test_a_streamed_utterance_gets_reply_audio_transcripts_and_state(browser_server: TomsipServer) -> None:
    cid = new_call_id()
    speech = b"".join(speech_frames())
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(browser_server, cid, token(cid))) as ws:
        await ws.send_json({"type": "start", "sample_rate": 16000})
        got = Received()
        reader = asyncio.create_task(read_all(ws, got))
        await stream_pcm(ws, SILENCE_20MS * 60)  # the 800 ms greeting plays
        greeting_bytes = got.audio_bytes
        await stream_pcm(ws, speech + SILENCE_20MS * 150)
        await ws.send_json({"type": "feedback", "rating": 4})
        await ws.send_json({"type": "stop"})
        await asyncio.wait_for(reader, 10)
    assert got.of("ready") and abs(greeting_bytes - 800 * 32) <= 640 * 3, greeting_bytes
    reply_ms = (got.audio_bytes - greeting_bytes) / 32
    assert 2300 <= reply_ms <= 3100, reply_ms  # the mock answers as long as the caller spoke (2.7 s)
    roles = [e["role"] for e in got.of("transcript")]
    assert "caller" in roles and "assistant" in roles
    states = [e["state"] for e in got.of("state")]
    assert "listening" in states and "thinking" in states and "speaking" in states
    assert not got.of("error"), got.of("error")  # the rating was taken: the call was live
    assert got.of("ended") and got.close_code == 1000
    assert browser_server.wait_metric('tomsip_ratings_total{source="browser"}', 1) >= 1


async def test_eight_khz_clients_get_eight_khz_audio_and_unknown_rates_are_refused(
    browser_server: TomsipServer,
) -> None:
    cid = new_call_id()
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(browser_server, cid, token(cid))) as ws:
        await ws.send_json({"type": "start", "sample_rate": 44100})
        assert (await ws.receive_json(timeout=5))["code"] == "bad_event"
        await ws.send_json({"type": "start", "sample_rate": 8000})
        got = Received()
        reader = asyncio.create_task(read_all(ws, got))
        await stream_pcm(ws, bytes(320) * 50, frame_bytes=320)
        await ws.send_json({"type": "stop"})
        await asyncio.wait_for(reader, 10)
    assert got.of("ready")[0]["sample_rate"] == 8000
    assert got.audio and all(len(a) == 320 for a in got.audio[1:-1]), "20 ms at 8 kHz"


async def test_over_the_message_rate_the_connection_closes_with_1013(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(TOMSIP_JWT_SECRET=SECRET, TOMSIP_WS_RATE="20", TOMSIP_WS_BURST="20")
    cid = new_call_id()
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(srv, cid, token(cid))) as ws:
        await ws.send_json({"type": "start"})
        for _ in range(60):
            await ws.send_bytes(SILENCE_20MS)
        got = await asyncio.wait_for(read_all(ws, Received()), 10)
    assert got.close_code == 1013
    assert srv.wait_metric('tomsip_rate_limit_hits_total{scope="message"}', 1) == 1


async def test_bad_input_gets_errors_then_a_close_and_never_touches_another_session(
    browser_server: TomsipServer,
) -> None:
    srv = browser_server
    calm_id, bad_id = new_call_id(), new_call_id()
    async with aiohttp.ClientSession() as http:
        calm = await http.ws_connect(ws_url(srv, calm_id, token(calm_id)))
        await calm.send_json({"type": "start"})
        calm_got = Received()
        calm_reader = asyncio.create_task(read_all(calm, calm_got))

        bad = await http.ws_connect(ws_url(srv, bad_id, token(bad_id)))
        await bad.send_bytes(b"\x00\x01")  # audio before start
        assert (await bad.receive_json(timeout=5))["code"] == "not_started"
        await bad.send_json({"type": "start"})
        assert (await bad.receive_json(timeout=5))["type"] == "ready"
        errors: list[str] = []
        for garbage in ("{not json", '{"type": "teleport"}', '{"type": "dtmf", "digit": "99"}', "[]", '"x"'):
            await bad.send_str(garbage)
        await bad.send_bytes(b"\x01\x02\x03")  # half a sample
        got = await asyncio.wait_for(read_all_until_errors(bad, errors, 6), 10)
        assert errors == ["bad_event"] * 5 + ["bad_audio"], errors
        for _ in range(6):
            await bad.send_str("{nope")
        rest = await asyncio.wait_for(read_all(bad, got), 10)
        assert rest.close_code == 1008, "repeated abuse closes with a clear code"

        huge = await http.ws_connect(ws_url(srv, (h := new_call_id()), token(h)))
        await huge.send_json({"type": "start"})
        await huge.send_bytes(bytes(200_000))
        assert (await asyncio.wait_for(read_all(huge, Received()), 10)).close_code == 1009

        await stream_pcm(calm, SILENCE_20MS * 40)
        assert not calm.closed, "the well-behaved session is untouched"
        await calm.send_json({"type": "stop"})
        await asyncio.wait_for(calm_reader, 10)
    assert calm_got.close_code == 1000 and not calm_got.of("error") and calm_got.audio_bytes > 20_000
    assert srv.healthz()[0] == 200


async def read_all_until_errors(ws: aiohttp.ClientWebSocketResponse, errors: list[str], n: int) -> Received:
    got = Received()
    while len(errors) < n:
        msg = await ws.receive()
        if msg.type is aiohttp.WSMsgType.TEXT:
            event = json.loads(msg.data)
            got.events.append(event)
            if event["type"] == "error":
                errors.append(event["code"])
        elif msg.type is not aiohttp.WSMsgType.BINARY:
            break
    return got


async def test_webrtc_signalled_on_the_websocket_converses_in_opus(make_server) -> None:  # type: ignore[no-untyped-def]
    from tests.support.rtc_client import RtcCaller
    from tomsip.audio.resample import resample_once
    from tomsip.bridge.rtc import offer_host_candidates_on

    offer_host_candidates_on("127.0.0.1")  # this test process is the other peer, on loopback too
    srv = make_server(TOMSIP_JWT_SECRET=SECRET, TOMSIP_RTC_HOST="127.0.0.1")
    cid = new_call_id()
    caller = RtcCaller(resample_once(b"".join(speech_frames()), 16000, 48000), delay_s=1.5)

    async def misbehave(ws: aiohttp.ClientWebSocketResponse) -> None:
        await ws.send_bytes(bytes(640))  # PCM on a WebRTC connection
        await ws.send_json({"type": "rtc_offer", "sdp": "v=0"})  # a second offer

    await caller.call(ws_url(srv, cid, token(cid)), hangup_after_s=9, actions=misbehave)
    assert caller.of("ready") and caller.of("ready")[0]["sample_rate"] == 48000
    assert [e["code"] for e in caller.of("error")] == ["bad_audio", "already_started"]
    assert len(caller.received) / 96_000 > 5, "reply audio flowed for most of the call"
    assert caller.peak_dbfs() > -20, "the greeting and the reply are tones at -12 dBFS, through Opus"
    roles = {e["role"] for e in caller.of("transcript")}
    assert roles == {"caller", "assistant"}
    assert caller.close_code == 1000 and caller.of("ended")


async def test_a_malformed_offer_is_an_error_not_a_crash(browser_server: TomsipServer) -> None:
    cid = new_call_id()
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(browser_server, cid, token(cid))) as ws:
        await ws.send_json({"type": "rtc_offer", "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\ngarbage"})
        error = await ws.receive_json(timeout=5)
        assert error["type"] == "error" and error["code"] == "bad_sdp"
        await ws.send_json({"type": "start"})  # the connection goes on, and can still start
        assert (await ws.receive_json(timeout=5))["type"] == "ready"
        await ws.send_json({"type": "stop"})
        assert (await asyncio.wait_for(read_all(ws, Received()), 10)).close_code == 1000


async def test_a_draining_node_refuses_new_browser_sessions_and_lets_live_ones_finish(make_server) -> None:  # type: ignore[no-untyped-def]
    import signal

    srv = make_server(TOMSIP_JWT_SECRET=SECRET, TOMSIP_DRAIN_TIMEOUT_S="20")
    live = new_call_id()
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(srv, live, token(live))) as ws:
        await ws.send_json({"type": "start"})
        got = Received()
        reader = asyncio.create_task(read_all(ws, got))
        await stream_pcm(ws, SILENCE_20MS * 25)
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        other = new_call_id()
        assert await refused_reason(srv, other, token(other)) == (503, "draining")
        await stream_pcm(ws, SILENCE_20MS * 25)
        assert not ws.closed, "the live conversation goes on while the node drains"
        await ws.send_json({"type": "stop"})
        await asyncio.wait_for(reader, 10)
    assert got.close_code == 1000
    assert srv.proc.wait(timeout=20) == 0


def test_a_client_that_leaves_before_the_session_attaches_still_ends_it() -> None:
    """`stop` can arrive while the conversation is still being set up (a policy read from Redis):
    the session that attaches afterwards must hear the hang-up, not wait for its timers."""
    from tomsip.audio.media_clock import MediaClock
    from tomsip.bridge.browser_port import BrowserPort
    from tomsip.monitor.metrics import Metrics

    metrics = Metrics()
    clock = MediaClock()
    port = BrowserPort("c1", "pcm16/16000", clock, metrics, 16000, lambda pcm: None, lambda e: None)
    port.remote_closed("remote_hangup")
    heard: list[str] = []

    class Listener:
        def on_frame(self, frame: bytes) -> None: ...

        def on_dtmf(self, digit: str) -> None: ...

        def on_hangup(self, reason: str) -> None:
            heard.append(reason)

        def on_hold(self, held: bool) -> None: ...

    port.attach(Listener())
    assert heard == ["remote_hangup"]


async def test_a_full_node_refuses_a_new_browser_session_with_503_and_retry_after(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(TOMSIP_JWT_SECRET=SECRET, TOMSIP_MAX_CONVERSATIONS="1")
    live = new_call_id()
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(srv, live, token(live))) as ws:
        await ws.send_json({"type": "start"})
        got = Received()
        reader = asyncio.create_task(read_all(ws, got))
        await stream_pcm(ws, SILENCE_20MS * 10)
        assert srv.wait_metric("tomsip_active_calls", 1) == 1
        other = new_call_id()
        headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
        async with http.get(ws_url(srv, other, token(other)), headers=headers) as resp:
            assert resp.status == 503
            assert json.loads(await resp.text())["reason"] == "conversations"
            assert int(resp.headers["Retry-After"]) > 0
        assert srv.metric('tomsip_admission_refusals_total{reason="conversations"}') == 1
        await stream_pcm(ws, SILENCE_20MS * 10)
        assert not ws.closed, "the conversation in progress is not disturbed"
        await ws.send_json({"type": "stop"})
        await asyncio.wait_for(reader, 10)
    assert got.close_code == 1000
    after = new_call_id()  # the slot is free again
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url(srv, after, token(after))) as ws:
        await ws.send_json({"type": "start"})
        await ws.send_json({"type": "stop"})
