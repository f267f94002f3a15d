"""AudioPort over one baresip-python call.

RX: the stack hands over decoded PCM at the codec's rate (8 kHz G.711, 16 kHz G.722, 48 kHz stereo
Opus); it is down-mixed, resampled (QQ, no burst delay) and cut into 20 ms frames. When RTP pauses
(hold, a silent softphone, loss) the stack delivers nothing, so after three quiet ticks a silence
frame is inserted per tick and end-pointing keeps moving.

TX: the stack resamples 16 kHz to the codec itself (`ausrc_srate 16000`) and paces packets on its own
thread. We keep only a short lead (three frames) in its buffer, so `flush` drops at most what is in
that lead plus our own queue: playout stops within one frame of the request.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from baresip import AudioNotActive, AudioRestarted, BaresipError
from baresip.call import Call, DigitEvent
from baresip.events import Event, StackEvent

from tomsip.audio.framer import Framer
from tomsip.audio.frames import FRAME_BYTES, FRAME_MS, SILENCE_FRAME
from tomsip.audio.player import PlayoutQueue
from tomsip.audio.port import PortListener
from tomsip.audio.resample import StreamResampler
from tomsip.monitor.metrics import Metrics
from tomsip.sip.media_clock import MediaClock

log = logging.getLogger("tomsip.sip.port")

TX_LEAD_FRAMES = 3
RX_QUIET_TICKS = 3
RX_TICKS_PER_READ = 4  # read up to 80 ms a call; a backlog is drained over the next ticks


def codec_family(rate: int, channels: int) -> str:
    return {8000: "g711", 16000: "g722", 48000: "opus"}.get(rate, f"{rate}Hz/{channels}ch")


class BaresipPort:
    def __init__(self, call: Call, call_id: str, clock: MediaClock, metrics: Metrics) -> None:
        self._call = call
        self._call_id = call_id
        self._clock = clock
        self._metrics = metrics
        self._listener: PortListener | None = None
        self._resampler: StreamResampler | None = None
        self._framer = Framer()
        self._queue = PlayoutQueue()
        self._quiet_ticks = 0
        self._written_frames = 0
        self._native_frames = 0
        self._native_flushed_frames = 0
        self._closed = False
        self._rx_read_bytes = 2048
        self._paused = False
        self._recent: deque[bytes] = deque(maxlen=TX_LEAD_FRAMES + 2)  # frames possibly still in the stack
        self._codec = ""
        self._probe_format()

    # ---- AudioPort ----

    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def codec(self) -> str:
        return self._codec or "unknown"

    def attach(self, listener: PortListener) -> None:
        self._listener = listener
        self._call.on_dtmf(self._on_digit)
        self._call.on(self._on_stack_event)
        if self._call.state.value == "closed":
            self._on_closed("closed before media")
            return
        self._clock.add(self)

    def play(self, pcm: bytes) -> None:
        self._queue.enqueue(pcm)

    def end_of_reply(self) -> None:
        self._queue.end_of_stream()

    def flush(self) -> int:
        self._paused = False
        dropped = self._queue.flush()
        unsent = self._take_back_native()
        self._native_flushed_frames += len(unsent)
        return dropped + len(unsent) * FRAME_MS

    def pause(self) -> None:
        if self._paused:
            return
        self._paused = True
        unsent = self._take_back_native()
        self._written_frames -= len(unsent)
        self._queue.push_back(unsent)

    def resume(self) -> None:
        self._paused = False

    def _take_back_native(self) -> list[bytes]:
        """Flush the stack's transmit buffer; returns the frames it had not sent yet."""
        if not self._native_frames:
            return []
        try:
            buffered = self._call.audio.info().tx_buffered // FRAME_BYTES
            self._call.audio.flush_tx()
        except BaresipError:
            buffered = self._native_frames
        buffered = min(buffered, self._native_frames, len(self._recent))
        unsent = list(self._recent)[len(self._recent) - buffered :] if buffered else []
        self._native_frames = 0
        self._recent.clear()
        return unsent

    @property
    def played_ms(self) -> int:
        return (self._written_frames - self._native_flushed_frames - self._native_frames) * FRAME_MS

    @property
    def playing(self) -> bool:
        return not self._queue.empty or self._native_frames > 0

    async def hangup(self) -> None:
        self._clock.remove(self)
        if self._call.state.value != "closed":
            try:
                await self._call.hangup()
            except BaresipError:
                pass

    async def transfer(self, target: str) -> bool:
        try:
            await self._call.transfer(target)
        except (BaresipError, ValueError) as exc:
            log.info("transfer failed: %s", type(exc).__name__, extra={"call_id": self._call_id})
            return False
        return True

    # ---- media clock ----

    def pump(self) -> None:
        if self._closed or self._listener is None:
            return
        self._pump_rx()
        if not self._paused and (not self._queue.empty or self._native_frames):
            self._pump_tx()

    def fail(self, exc: BaseException) -> None:
        log.error("media failure: %s: %s", type(exc).__name__, exc, extra={"call_id": self._call_id})
        self._metrics.call_failures.labels(stage="media").inc()
        asyncio.get_running_loop().create_task(self.hangup())
        self._on_closed("error")

    def _probe_format(self) -> bool:
        try:
            info = self._call.audio.info()
        except BaresipError:
            return False
        if not info.rx_ready or not info.rx_sample_rate:
            return False
        self._resampler = StreamResampler(info.rx_sample_rate, info.rx_channels)
        # The binding allocates and zero-fills the whole read buffer on every call: size it to the codec.
        self._rx_read_bytes = info.rx_sample_rate * info.rx_channels * 2 * FRAME_MS // 1000 * RX_TICKS_PER_READ
        self._codec = codec_family(info.rx_sample_rate, info.rx_channels)
        return True

    def _pump_rx(self) -> None:
        frames: list[bytes] = []
        try:
            data = self._call.audio.read(self._rx_read_bytes)
        except AudioRestarted:
            self._resampler = None  # renegotiated (re-INVITE): the format may have changed
            data = b""
        except AudioNotActive:
            data = b""
        if data and (self._resampler is not None or self._probe_format()):
            assert self._resampler is not None
            frames = self._framer.push(self._resampler.convert(data))
        if frames:
            self._quiet_ticks = 0
        else:
            self._quiet_ticks += 1
            if self._quiet_ticks >= RX_QUIET_TICKS:
                frames = [SILENCE_FRAME]
                self._metrics.silence_frames_inserted.inc()
        listener = self._listener
        assert listener is not None
        for frame in frames:
            listener.on_frame(frame)

    def _pump_tx(self) -> None:
        audio = self._call.audio
        try:
            buffered = audio.info().tx_buffered // FRAME_BYTES
        except AudioRestarted:
            return
        except AudioNotActive:
            return  # on hold or media not up: keep the queue until it can play
        played_natively = max(0, self._native_frames - buffered)
        self._native_frames -= played_natively
        want = TX_LEAD_FRAMES - buffered
        if want <= 0:
            return
        frames = self._queue.take(want)
        if not frames:
            return
        try:
            accepted = audio.write(b"".join(frames))
        except (AudioRestarted, AudioNotActive):
            return
        n = accepted // FRAME_BYTES
        if n < len(frames):
            self._queue.push_back(frames[n:])  # the stack's buffer was full: keep them for next tick
        self._recent.extend(frames[:n])
        self._written_frames += n
        self._native_frames += n

    # ---- stack events ----

    def _on_digit(self, event: DigitEvent) -> None:
        if self._listener is not None and not self._closed:
            self._listener.on_dtmf(event.digit)

    def _on_stack_event(self, event: StackEvent) -> None:
        if event.event is Event.CALL_CLOSED:
            detail = event.text or ""
            log.info("call closed by the stack: %s", detail or "-", extra={"call_id": self._call_id})
            self._on_closed("rtp_timeout" if "rtp" in detail.lower() else "remote_hangup")

    def _on_closed(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._clock.remove(self)
        if self._listener is not None:
            self._listener.on_hangup(reason)
