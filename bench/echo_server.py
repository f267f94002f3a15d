"""The baseline for bench/capacity: a bare baresip-python server that answers every call and echoes
its audio back, one asyncio task per call reading and writing every 20 ms. No VAD, no FSM, no
pipeline: whatever tomsip costs beyond this is tomsip's own overhead.

    python bench/echo_server.py HOST PORT RTP_PORTS
"""

from __future__ import annotations

import asyncio
import signal
import sys

from baresip import Account, BaresipError, Config, Runtime, UserAgent
from baresip.call import Call


async def echo(call: Call) -> None:
    try:
        await call.answer()
        await call.wait_established(timeout=10)
    except BaresipError:
        return
    while call.state.value != "closed":
        try:
            data = call.audio.read(16384)
            if data:
                call.audio.write(data)
        except BaresipError:
            pass
        await asyncio.sleep(0.02)


async def main(host: str, port: int, rtp_ports: str) -> None:
    runtime = Runtime()
    await runtime.start(
        Config(
            net_interface=host,
            max_concurrent_calls=2000,
            extra_config_text=f"sip_listen {host}:{port}\nsip_transports udp\nrtp_ports {rtp_ports}\n",
        )
    )
    account = Account(
        user="echo",
        domain=f"{host}:{port}",
        password="",
        reg_interval=0,
        audio_codecs=("pcmu", "pcma"),
        extra_params=("catchall=yes", "video_codecs=none"),
    )
    ua = await UserAgent.create(runtime, account)
    tasks: set[asyncio.Task[None]] = set()

    def incoming(call: Call) -> None:
        task = asyncio.get_running_loop().create_task(echo(call))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    ua.on_incoming(incoming)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await runtime.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
