"""AudioPort over one baresip-python call.

RX: the stack hands over decoded PCM at the codec's rate (8 kHz G.711, 16 kHz G.722, 48 kHz stereo
Opus); it is down-mixed, resampled (QQ, no burst delay) and cut into 20 ms frames. When RTP pauses
(hold, a silent softphone, loss) the stack delivers nothing, and the paced port inserts silence
(tomsip/audio/paced_port.py).

TX: the stack resamples 16 kHz to the codec itself (`ausrc_srate 16000`) and paces packets on its own
thread. We keep only a short lead (three frames) in its buffer, so `flush` drops at most what is in
that lead plus our own queue: playout stops within one frame of the request.
"""

from __future__ import annotations

import logging

from baresip import AudioNotActive, AudioRestarted, BaresipError
from baresip.call import Call, DigitEvent
from baresip.events import Event, StackEvent

from tomsip.audio.framer import Framer
from tomsip.audio.frames import FRAME_BYTES, FRAME_MS
from tomsip.audio.paced_port import Clock, MediaCounters, PacedPort
from tomsip.audio.port import AudioPort, PortListener
from tomsip.audio.resample import StreamResampler

log = logging.getLogger("tomsip.sip.port")

RX_TICKS_PER_READ = 4  # read up to 80 ms a call; a backlog is drained over the next ticks


def codec_family(rate: int, channels: int) -> str:
    return {8000: "g711", 16000: "g722", 48000: "opus"}.get(rate, f"{rate}Hz/{channels}ch")


class BaresipPort(PacedPort):
    BUFFERS_TX = True
    TX_LEAD_FRAMES = 3

    def __init__(
        self, call: Call, call_id: str, clock: Clock, counters: MediaCounters, supports_replaces: bool = False
    ) -> None:
        super().__init__(call_id, "unknown", clock, counters)
        self._call = call
        self._supports_replaces = supports_replaces  # the far end's INVITE said `Supported: replaces`
        self._resampler: StreamResampler | None = None
        self._framer = Framer()
        self._rx_read_bytes = 2048
        self._probe_format()

    # ---- the transport ----

    def attach(self, listener: PortListener) -> None:
        self._call.on_dtmf(self._on_digit)
        self._call.on(self._on_stack_event)
        if self._call.state.value == "closed":
            self.remote_closed("closed before media")
        super().attach(listener)

    def read_arrived(self) -> list[bytes]:
        try:
            data = self._call.audio.read(self._rx_read_bytes)
        except AudioRestarted:
            self._resampler = None  # renegotiated (re-INVITE): the format may have changed
            return []
        except AudioNotActive:
            return []
        if data and (self._resampler is not None or self._probe_format()):
            assert self._resampler is not None
            return self._framer.push(self._resampler.convert(data))
        return []

    def write_frames(self, frames: list[bytes]) -> int:
        try:
            return self._call.audio.write(b"".join(frames)) // FRAME_BYTES
        except (AudioRestarted, AudioNotActive):
            return 0

    def tx_buffered(self) -> int | None:
        try:
            return self._call.audio.info().tx_buffered // FRAME_BYTES
        except (AudioRestarted, AudioNotActive):
            return None  # on hold or media not up: keep the queue until it can play

    def drop_buffered(self) -> int | None:
        try:
            buffered = self._call.audio.info().tx_buffered // FRAME_BYTES
            self._call.audio.flush_tx()
        except BaresipError:
            return None
        return buffered

    async def close_transport(self) -> None:
        if self._call.state.value != "closed":
            try:
                await self._call.hangup()
            except BaresipError:
                pass

    async def attended_transfer(self, other: AudioPort) -> bool:
        if not self._supports_replaces or not isinstance(other, BaresipPort):
            return False
        try:
            await self._call.attended_transfer(other._call)
        except (BaresipError, ValueError) as exc:
            self.log.info("attended transfer failed: %s", type(exc).__name__)
            for call in (self._call, other._call):  # both legs were put on hold for it
                try:
                    await call.resume()
                except BaresipError:
                    pass
            return False
        return True

    async def transfer(self, target: str) -> bool:
        try:
            await self._call.transfer(target)
        except (BaresipError, ValueError) as exc:
            self.log.info("transfer failed: %s", type(exc).__name__)
            return False
        return True

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

    # ---- stack events ----

    def _on_digit(self, event: DigitEvent) -> None:
        self.digit_received(event.digit)

    def _on_stack_event(self, event: StackEvent) -> None:
        if event.event in (Event.CALL_HOLD, Event.CALL_RESUME):
            held = event.event is Event.CALL_HOLD
            self.log.info("the caller %s the call", "holds" if held else "resumes")
            self.hold_changed(held)
        elif event.event is Event.CALL_CLOSED:
            detail = event.text or ""
            self.log.info("call closed by the stack: %s", detail or "-")
            self.remote_closed("rtp_timeout" if "rtp" in detail.lower() else "remote_hangup")
