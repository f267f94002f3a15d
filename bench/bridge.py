"""bench/bridge: the browser bridge under load, on loopback against one tomsip process.

1. Conversations: N concurrent WebSocket sessions (steps, default 1, 10, 50, 100) each stream audio
   in real time: 1.2 s of quiet while the greeting plays, a 3.2 s recorded utterance, then quiet.
   Reply latency is the client's view: from the last frame of the utterance it sent to the first
   reply audio frame it received (the end-pointer's silence wait is part of it: 500 ms in the test
   dialplans, so with the mock pipeline the figure is that wait plus the bridge's own cost).
   Server CPU is read from /proc over the step.
2. Auth path: WebSocket handshakes per second, each with a fresh token (signature, claims, nonce
   spent in the store), from 20 concurrent clients; in-process store, then Redis if installed.
3. Rate-limit path: binary messages per second one connection gets through the per-connection
   token bucket (with the limit out of the way), and how fast an abusive connection is closed with
   1013 at the default limit.

    bench/bridge [--steps 1,10,50,100] [--pipeline mock|local] [--handshakes 1000]
Every load is bounded in sessions, messages and time, and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.capacity import cpu_seconds  # noqa: E402
from tests.support.browser import SECRET, new_call_id, token  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.server import TomsipServer  # noqa: E402
from tests.test_session import speech_frames  # noqa: E402
from tomsip.audio.frames import rms_dbfs  # noqa: E402

FRAME = 640  # 20 ms at 16 kHz
QUIET = bytes(FRAME)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def conversation(http: aiohttp.ClientSession, port: int, utterance: bytes) -> tuple[float | None, bool]:
    """One session; returns (reply latency in ms or None, ok)."""
    cid = new_call_id()
    url = f"http://127.0.0.1:{port}/ws/stream/{cid}?token={token(cid)}"
    loop = asyncio.get_running_loop()
    script = [QUIET] * 60 + [utterance[i : i + FRAME] for i in range(0, len(utterance), FRAME)] + [QUIET] * 150
    voiced = [i for i in range(0, len(utterance), FRAME) if rms_dbfs(utterance[i : i + FRAME]) > -45]
    speech_end_index = 60 + voiced[-1] // FRAME  # the last voiced frame, not the recording's quiet tail
    speech_end_at: float | None = None
    first_reply_at: float | None = None
    try:
        async with http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=10)) as ws:
            await ws.send_json({"type": "start", "sample_rate": 16000})

            async def receive() -> None:
                nonlocal first_reply_at
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.BINARY and speech_end_at and first_reply_at is None:
                        first_reply_at = loop.time()

            reader = asyncio.create_task(receive())
            start = loop.time()
            for i, frame in enumerate(script):
                await ws.send_bytes(frame)
                if i == speech_end_index:
                    speech_end_at = loop.time()
                await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - loop.time()))
            await ws.send_json({"type": "stop"})
            await asyncio.wait_for(reader, 15)
            ok = ws.close_code == 1000
    except (aiohttp.ClientError, TimeoutError):
        return None, False
    if speech_end_at is None or first_reply_at is None:
        return None, ok
    return (first_reply_at - speech_end_at) * 1000, ok


async def conversations_step(server: TomsipServer, sessions: int, utterance: bytes) -> None:
    assert server.proc is not None
    cpu0, t0 = cpu_seconds(server.proc.pid), time.monotonic()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        results = await asyncio.gather(
            *(stagger(i * 0.02, conversation(http, server.http_port, utterance)) for i in range(sessions))
        )
    cpu = (cpu_seconds(server.proc.pid) - cpu0) / (time.monotonic() - t0) * 100
    latencies = [ms for ms, _ in results if ms is not None]
    failed = sum(1 for ms, ok in results if not ok or ms is None)
    print(
        f"  {sessions:4d} sessions: reply latency p50 {pct(latencies, 50):6.0f} ms  p99 {pct(latencies, 99):6.0f} ms"
        f"  failed {failed:3d}  server CPU {cpu:5.1f} % ({cpu / sessions:.2f} %/session)"
    )


async def stagger(delay: float, job):  # type: ignore[no-untyped-def]
    await asyncio.sleep(delay)
    return await job


async def handshakes(port: int, total: int, concurrency: int = 20) -> tuple[float, int]:
    """Authenticated handshakes per second (fresh token each), and how many failed."""
    failed = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker(http: aiohttp.ClientSession) -> None:
        nonlocal failed
        while not queue.empty():
            queue.get_nowait()
            cid = new_call_id()
            try:
                async with http.ws_connect(f"http://127.0.0.1:{port}/ws/stream/{cid}?token={token(cid)}") as ws:
                    await ws.close()
            except aiohttp.ClientError:
                failed += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return total / (time.perf_counter() - started), failed


async def message_rate(port: int, messages: int) -> float:
    """Binary messages per second one connection gets through the server's per-message path."""
    cid = new_call_id()
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"http://127.0.0.1:{port}/ws/stream/{cid}?token={token(cid)}") as ws,
    ):
        await ws.send_json({"type": "start"})
        await ws.receive(timeout=5)  # ready
        started = time.perf_counter()
        for _ in range(messages):
            await ws.send_bytes(b"\x00\x00")
        await ws.send_json({"type": "dtmf", "digit": "q"})  # invalid: the error event marks the end
        while True:
            msg = await ws.receive(timeout=30)
            if msg.type is aiohttp.WSMsgType.TEXT and '"error"' in msg.data:
                break
        elapsed = time.perf_counter() - started
        await ws.send_json({"type": "stop"})
    return messages / elapsed


async def abusive_close(port: int) -> tuple[int | None, int, float]:
    """Blast messages at the default limit: the close code, messages sent before it, and how long."""
    cid = new_call_id()
    sent = 0
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"http://127.0.0.1:{port}/ws/stream/{cid}?token={token(cid)}") as ws,
    ):
        await ws.send_json({"type": "start"})
        started = time.perf_counter()

        async def until_closed() -> int | None:
            async for _ in ws:
                pass
            return ws.close_code

        closer = asyncio.create_task(until_closed())
        while not closer.done() and sent < 100_000:
            try:
                await ws.send_bytes(QUIET)
            except (ConnectionError, RuntimeError):
                break
            sent += 1
            if sent % 50 == 0:
                await asyncio.sleep(0)
        code = await asyncio.wait_for(closer, 10)
        return code, sent, (time.perf_counter() - started) * 1000


async def main_async(args: argparse.Namespace) -> None:
    utterance = b"".join(speech_frames())
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "TOMSIP_JWT_SECRET": SECRET,
            "TOMSIP_PIPELINE": args.pipeline,
            "TOMSIP_LOG_LEVEL": "warning",
            "TOMSIP_WS_CONNECT_RATE": "100000",
            "TOMSIP_WS_CONNECT_BURST": "100000",
        }
        server = TomsipServer(env=env, log_path=Path(tmp) / "server.log").start(timeout_s=90)
        try:
            print(f"1. conversations streaming in real time ({args.pipeline} pipeline, 16 kHz PCM16)")
            for sessions in args.steps:
                await conversations_step(server, sessions, utterance)
            print("2. auth path (fresh token per handshake, 20 concurrent clients)")
            rate, failed = await handshakes(server.http_port, args.handshakes)
            print(f"  in-process nonce store: {rate:7.0f} handshakes/s  ({failed} failed)")
        finally:
            server.stop()
        if shutil.which("redis-server"):
            redis = RedisServer(Path(tmp)).start()
            server = TomsipServer(
                env={**env, "TOMSIP_REDIS_URL": redis.url}, log_path=Path(tmp) / "server-redis.log"
            ).start(timeout_s=90)
            try:
                rate, failed = await handshakes(server.http_port, args.handshakes)
                print(f"  Redis nonce store:      {rate:7.0f} handshakes/s  ({failed} failed)")
            finally:
                server.stop()
                redis.stop()
        fast = TomsipServer(
            env={**env, "TOMSIP_WS_RATE": "1000000", "TOMSIP_WS_BURST": "1000000"}, log_path=Path(tmp) / "fast.log"
        ).start(timeout_s=90)
        try:
            print("3. per-connection rate-limit path")
            rates = [await message_rate(fast.http_port, args.messages) for _ in range(3)]
            print(f"  one connection, limit out of the way: {statistics.median(rates):8.0f} messages/s (median of 3)")
        finally:
            fast.stop()
        default = TomsipServer(env=env, log_path=Path(tmp) / "default.log").start(timeout_s=90)
        try:
            code, sent, ms = await abusive_close(default.http_port)
            print(
                f"  abusive client at the default 120/s, burst 240: closed with {code} after {ms:.0f} ms ({sent} sent)"
            )
        finally:
            default.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="1,10,50,100", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--pipeline", default="mock", choices=["mock", "local"])
    parser.add_argument("--handshakes", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20_000)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
