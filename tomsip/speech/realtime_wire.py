"""What travels on the wire to an OpenAI Realtime backend: audio formats (converted to and from
tomsip's internal format) and the session set-up, in its GA and beta shapes.

The backend takes and gives PCM16 at 24 kHz, or G.711 at 8 kHz. On a G.711 call leg, G.711 goes to
the backend as it is: the caller's audio was 8 kHz G.711 anyway, it is a third of the bytes of
24 kHz PCM, and the backend's reply needs no resampling before it is G.711 again on the wire. (The
SIP stack decodes RTP for us, so the G.711 sent is re-encoded from the same samples, not the
original bytes; G.711 re-encoding of decoded G.711 is lossless.)
"""

from __future__ import annotations

import enum

from tomsip.audio.frames import SAMPLE_RATE
from tomsip.audio.g711 import alaw_to_pcm, pcm_to_alaw, pcm_to_ulaw, ulaw_to_pcm
from tomsip.audio.resample import StreamResampler


class WireFormat(enum.Enum):
    PCM16 = "pcm16"
    G711_ULAW = "g711_ulaw"
    G711_ALAW = "g711_alaw"

    @property
    def rate(self) -> int:
        return 24_000 if self is WireFormat.PCM16 else 8_000

    @property
    def beta_name(self) -> str:
        return self.value

    @property
    def ga_format(self) -> dict[str, object]:
        if self is WireFormat.PCM16:
            return {"type": "audio/pcm", "rate": 24_000}
        return {"type": "audio/pcmu" if self is WireFormat.G711_ULAW else "audio/pcma"}

    @staticmethod
    def choose(setting: str, codec: str) -> WireFormat:
        """`auto`: G.711 through on a G.711 leg (PCMU; PCMA legs are told apart by the stack only as
        "g711", and PCMU is what the backend documents first), PCM16 otherwise."""
        if setting == "auto":
            return WireFormat.G711_ULAW if codec.startswith("g711") else WireFormat.PCM16
        return WireFormat(setting)


class Encoder:
    """Internal-format PCM in, the backend's input format out."""

    def __init__(self, fmt: WireFormat) -> None:
        self._fmt = fmt
        self._resample = StreamResampler(SAMPLE_RATE, out_rate=fmt.rate)

    def encode(self, pcm: bytes) -> bytes:
        samples = self._resample.convert(pcm)
        if self._fmt is WireFormat.G711_ULAW:
            return pcm_to_ulaw(samples)
        if self._fmt is WireFormat.G711_ALAW:
            return pcm_to_alaw(samples)
        return samples


class Decoder:
    """The backend's output format in, internal-format PCM out."""

    def __init__(self, fmt: WireFormat) -> None:
        self._fmt = fmt
        self._resample = StreamResampler(fmt.rate)

    def decode(self, data: bytes) -> bytes:
        if self._fmt is WireFormat.G711_ULAW:
            data = ulaw_to_pcm(data)
        elif self._fmt is WireFormat.G711_ALAW:
            data = alaw_to_pcm(data)
        return self._resample.convert(data)


def session_update(protocol: str, fmt: WireFormat, voice: str, instructions: str) -> dict[str, object]:
    """The session set-up. The backend's VAD only reports speech (barge-in); tomsip decides turns."""
    vad = {"type": "server_vad", "create_response": False, "interrupt_response": True, "silence_duration_ms": 500}
    if protocol == "beta":
        session: dict[str, object] = {
            "input_audio_format": fmt.beta_name,
            "output_audio_format": fmt.beta_name,
            "turn_detection": vad,
            "voice": voice,
            "instructions": instructions,
            "modalities": ["audio", "text"],
        }
    else:
        session = {
            "type": "realtime",
            "instructions": instructions,
            "audio": {
                "input": {"format": fmt.ga_format, "turn_detection": vad},
                "output": {"format": fmt.ga_format, "voice": voice},
            },
        }
    return {"type": "session.update", "session": session}
