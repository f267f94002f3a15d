"""The live calls view against a real tomsip: a browser conversation and a SIPp call appear in
/api/calls with state, policy, turns and latency, without phone numbers or (by default) words; the
admin token guards it; the page is served."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request

import aiohttp

from tests.support.browser import SECRET, Received, new_call_id, read_all, stream_pcm, token
from tests.support.rtp import RtpPeer
from tests.support.server import TomsipServer
from tests.support.sipp import run_sipp
from tests.test_session import speech_frames

ADMIN = "admin-token-for-tests"


def calls(server: TomsipServer, bearer: str | None = ADMIN) -> tuple[int, dict[str, object]]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/api/calls", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_live_calls_are_listed_with_state_policy_and_latency(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(TOMSIP_JWT_SECRET=SECRET, TOMSIP_ADMIN_TOKEN=ADMIN, TOMSIP_NODE_NAME="node-a")
    assert calls(srv, bearer=None)[0] == 401 and calls(srv, bearer="wrong")[0] == 401
    assert srv.get("/calls")[0] == 401 and srv.get(f"/calls?token={ADMIN}")[0] == 200

    peer = RtpPeer()
    sip_call = threading.Thread(target=run_sipp, args=("hold_call", srv.sip_port, "learn", [peer.port]),
                                kwargs={"duration_ms": 8000})  # fmt: skip
    sip_call.start()
    cid = new_call_id()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"http://127.0.0.1:{srv.http_port}/ws/stream/{cid}?token={token(cid)}") as ws,
        ):
            await ws.send_json({"type": "start"})
            got = Received()
            reader = asyncio.create_task(read_all(ws, got))
            await stream_pcm(ws, bytes(640) * 50 + b"".join(speech_frames()) + bytes(640) * 60)
            status, body = calls(srv)  # while the reply plays, and the SIP call holds
            await ws.send_json({"type": "stop"})
            await asyncio.wait_for(reader, 10)
    finally:
        sip_call.join(30)
        peer.close()
    assert status == 200
    rows = {row["call_id"]: row for row in body["calls"]}  # type: ignore[union-attr]
    web = rows[cid]
    assert web["transport"] == "websocket" and web["node"] == "node-a" and web["dialplan"] == "default"
    assert web["policy"] == "default" and web["turns"] >= 2 and web["last_turn_latency_ms"] is not None
    sip = next(row for key, row in rows.items() if key != cid)
    assert sip["dialplan"] == "learning" and sip["policy"] in ("calm", "brisk") and sip["transport"] == "udp"
    assert "last_words" not in web, "no transcripts unless the setting allows"
    text = json.dumps(body)
    assert "caller@" not in text and "sip:" not in text, "no numbers or SIP addresses"
    assert srv.wait_metric("tomsip_active_calls", 0) == 0
    assert calls(srv)[1]["count"] == 0


async def test_transcripts_only_when_the_setting_allows(make_server) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(TOMSIP_JWT_SECRET=SECRET, TOMSIP_CALLS_SHOW_TRANSCRIPTS="true")
    cid = new_call_id()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"http://127.0.0.1:{srv.http_port}/ws/stream/{cid}?token={token(cid)}") as ws,
    ):
        await ws.send_json({"type": "start"})
        reader = asyncio.create_task(read_all(ws, Received()))
        await stream_pcm(ws, bytes(640) * 60)
        status, body = calls(srv, bearer=None)
        await ws.send_json({"type": "stop"})
        await asyncio.wait_for(reader, 10)
    assert status == 200
    row = body["calls"][0]  # type: ignore[index]
    assert row["last_words"]["assistant"].startswith("tone")
