"""deploy/nginx.conf in front of a real tomsip, with Debian's nginx on loopback: the page and health
pass through, a WebSocket conversation works through the upgrade, auth refusals keep their reason,
limit_req answers 429, tomsip sees the real client via X-Forwarded-For, and no token is logged."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import aiohttp
import pytest

from tests.support.browser import SECRET, Received, new_call_id, read_all, stream_pcm, token
from tests.support.nginx import Nginx, nginx_path

pytestmark = pytest.mark.skipif(nginx_path() is None, reason="nginx is not installed")


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_tomsip_behind_nginx(make_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv = make_server(TOMSIP_JWT_SECRET=SECRET, TOMSIP_TRUSTED_PROXIES="127.0.0.1")
    proxy = Nginx(tmp_path, srv.http_port).start()
    try:
        assert get(proxy.port, "/healthz")[0] == 200
        status, page = get(proxy.port, "/")
        assert status == 200 and b"tomsip softphone" in page

        cid = new_call_id()
        url = f"http://127.0.0.1:{proxy.port}/ws/stream/{cid}?token={token(cid)}"
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            await ws.send_json({"type": "start"})
            got = Received()
            reader = asyncio.create_task(read_all(ws, got))
            await stream_pcm(ws, bytes(640) * 60)
            await ws.send_json({"type": "stop"})
            await asyncio.wait_for(reader, 10)
        assert got.of("ready") and got.audio_bytes >= 700 * 32, "the greeting came through the proxy"
        assert got.close_code == 1000

        refused_status, body = get(proxy.port, f"/ws/stream/{cid}?token={token('other')}")
        assert refused_status == 401 and json.loads(body)["reason"] == "call_id_mismatch"

        # limit_req: 5/s with a burst of 10 per address; 30 quick attempts, most answered 429 by nginx
        codes = [get(proxy.port, f"/ws/stream/{new_call_id()}")[0] for _ in range(30)]
        assert codes.count(429) >= 10 and set(codes) <= {401, 429}, codes

        # tomsip's own per-address limit keys on the client nginx names, not on nginx itself
        assert get(srv.http_port, "/metrics")[0] == 200
        log = proxy.access_log()
        assert "/ws/stream/" in log and "token=" not in log and "eyJ" not in log
    finally:
        proxy.stop()
