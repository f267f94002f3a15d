"""WebRTC media for the softphone, with aiortc: Opus both ways, signalled over the WebSocket.

The browser's offer arrives as an `rtc_offer` event on the authenticated WebSocket; the answer goes
back as `rtc_answer` (no trickle: aiortc gathers its candidates before answering). Once ICE and DTLS
are up, the caller's decoded audio (48 kHz) goes to a BrowserPort like any other client audio, and the
port's paced 20 ms reply frames go out through ReplyTrack.

Host candidates: aioice never offers 127.0.0.1, which leaves a loopback-only host (a test namespace,
a box behind a TURN-less NAT) with none. TOMSIP_RTC_HOST names the address to offer instead, as
TOMSIP_SIP_HOST does for SDP; unset, aioice's own choice (every non-loopback interface) stands.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from collections import deque
from collections.abc import Callable

import aioice.ice
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

log = logging.getLogger("tomsip.bridge")

RTC_RATE = 48_000
SAMPLES_PER_FRAME = RTC_RATE // 50  # 20 ms
MAX_TRACK_FRAMES = 25  # 500 ms: frames queued while the far end is not pulling are dropped oldest first
MAX_SDP_BYTES = 20_000


class BadOffer(ValueError):
    """The offer could not be answered (malformed SDP, no audio, no common codec)."""


def offer_host_candidates_on(host: str | None) -> None:
    """Make aioice offer `host` as the host candidate (see the module docstring)."""
    if not host:
        return

    def only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [host]

    aioice.ice.get_host_addresses = only


def audio_frame(pcm: bytes, pts: int) -> av.AudioFrame:
    """20 ms of 48 kHz mono PCM16 (padded or cut to length) as the frame aiortc's encoder takes."""
    size = SAMPLES_PER_FRAME * 2
    if len(pcm) != size:
        pcm = (pcm + bytes(size))[:size]
    frame = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES_PER_FRAME)
    frame.planes[0].update(pcm)
    frame.sample_rate = RTC_RATE
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, RTC_RATE)
    return frame


class ReplyTrack(MediaStreamTrack):
    """Outgoing audio: the frames the port hands over, at the pace the peer connection pulls them
    (one per 20 ms); silence when there is nothing to say."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._frames: deque[bytes] = deque()
        self._pts = 0
        self._t0: float | None = None

    def push(self, pcm: bytes) -> None:
        if len(self._frames) >= MAX_TRACK_FRAMES:
            self._frames.popleft()
        self._frames.append(pcm)

    def clear(self) -> None:
        self._frames.clear()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        wait = self._t0 + self._pts / RTC_RATE - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = audio_frame(self._frames.popleft() if self._frames else b"", self._pts)
        self._pts += SAMPLES_PER_FRAME
        return frame


class RtcMedia:
    """One browser's peer connection."""

    def __init__(self, on_state: Callable[[str], None]) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.track = ReplyTrack()
        self._on_audio: Callable[[bytes], None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self.channels = 1

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            on_state(self.pc.connectionState)

        @self.pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and self._reader is None:
                self._reader = asyncio.ensure_future(self._read(track))

    def on_audio(self, handler: Callable[[bytes], None]) -> None:
        self._on_audio = handler

    async def answer(self, offer_sdp: str) -> str:
        if len(offer_sdp) > MAX_SDP_BYTES or "m=audio" not in offer_sdp:
            raise BadOffer("an offer needs one audio section and fewer than 20,000 bytes")
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            transceiver = next(t for t in self.pc.getTransceivers() if t.kind == "audio")
            transceiver.sender.replaceTrack(self.track)
            transceiver.direction = "sendrecv"
            opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"]
            transceiver.setCodecPreferences(opus)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except StopIteration:
            raise BadOffer("the offer has no audio") from None
        except (ValueError, KeyError, IndexError, TypeError) as exc:  # what aiortc raises on bad SDP
            raise BadOffer(f"{type(exc).__name__}: {exc}"[:200]) from None
        return self.pc.localDescription.sdp

    async def _read(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, AudioFrame), "an audio track yields audio frames"
                pcm = frame.to_ndarray()
                self.channels = len(frame.layout.channels)
                if self._on_audio is not None:
                    self._on_audio(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
        except MediaStreamError:
            return

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self.track.stop()
        await self.pc.close()
