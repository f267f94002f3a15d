"""A WebRTC softphone in Python (aiortc), signalled over /ws/stream like the page: for tests that
need WebRTC without a browser, and for bench/bridge."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from tomsip.bridge.rtc import audio_frame

RATE = 48_000
SAMPLES = 960


class PcmTrack(MediaStreamTrack):
    """Plays 48 kHz mono PCM16 once, then silence, paced at real time."""

    kind = "audio"

    def __init__(self, pcm: bytes, delay_s: float = 0.0) -> None:
        super().__init__()
        self._pcm = bytes(int(delay_s * RATE) * 2) + pcm
        self._pts = 0
        self._t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        wait = self._t0 + self._pts / RATE - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        start = self._pts * 2
        frame = audio_frame(self._pcm[start : start + SAMPLES * 2], self._pts)
        self._pts += SAMPLES
        return frame


class RtcCaller:
    def __init__(self, pcm48: bytes, delay_s: float = 0.0) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(PcmTrack(pcm48, delay_s))
        self.received = bytearray()  # 48 kHz mono PCM16 of what came back
        self.events: list[dict[str, object]] = []
        self.close_code: int | None = None
        self._reader: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).mean(axis=1)
                self.received += samples.astype("<i2").tobytes()
        except MediaStreamError:
            return

    def peak_dbfs(self) -> float:
        if not self.received:
            return -120.0
        x = np.frombuffer(bytes(self.received), dtype="<i2").astype(np.float64)
        return 20 * np.log10(max(1.0, float(np.abs(x).max())) / 32768)

    async def call(self, url: str, hangup_after_s: float, actions=None) -> None:  # type: ignore[no-untyped-def]
        """Offer, converse for `hangup_after_s`, send `stop`, and collect events until the server closes."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            await ws.send_json({"type": "rtc_offer", "sdp": self.pc.localDescription.sdp})

            async def listen() -> None:
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        event = json.loads(msg.data)
                        self.events.append(event)
                        if event["type"] == "rtc_answer":
                            await self.pc.setRemoteDescription(RTCSessionDescription(event["sdp"], "answer"))

            listener = asyncio.create_task(listen())
            await asyncio.sleep(hangup_after_s)
            if actions is not None:
                await actions(ws)
            await ws.send_json({"type": "stop"})
            await asyncio.wait_for(listener, 15)
            self.close_code = ws.close_code
        if self._reader is not None:
            self._reader.cancel()
        await self.pc.close()

    def of(self, kind: str) -> list[dict[str, object]]:
        return [e for e in self.events if e.get("type") == kind]
