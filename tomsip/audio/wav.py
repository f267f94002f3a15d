"""WAV in and out, for the speech workers' HTTP audio API. Pure: bytes in, bytes out.

Python 3.11's `wave` module refuses WAVE_FORMAT_EXTENSIBLE headers (what many recorders and sox
write for plain PCM) and a streamed file whose sizes are unknown (0 or 0xFFFFFFFF, what a server that
streams WAV has to write). So the RIFF chunks are walked here: PCM16 only, one or two channels, any
chunk order, unknown sizes taken as "the rest of the file".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

PCM = 1
EXTENSIBLE = 0xFFFE
PCM_SUBFORMAT = b"\x01\x00\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
UNKNOWN_SIZE = 0xFFFFFFFF


class WavError(ValueError):
    """The bytes are not a WAV file this API reads; the message says why, for the 400 answer."""


@dataclass(frozen=True)
class Wav:
    pcm: bytes  # mono PCM16 little-endian
    rate: int


def is_wav(data: bytes) -> bool:
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def read_wav(data: bytes) -> Wav:
    """Mono PCM16 and its rate from a PCM16 WAV (stereo is mixed down)."""
    if not is_wav(data):
        raise WavError("not a WAV file (no RIFF/WAVE header)")
    fmt: tuple[int, int, int, int] | None = None
    at = 12
    while at + 8 <= len(data):
        tag, size = data[at : at + 4], struct.unpack_from("<I", data, at + 4)[0]
        body_at = at + 8
        if tag == b"data":
            end = len(data) if size in (0, UNKNOWN_SIZE) else min(len(data), body_at + size)
            if fmt is None:
                raise WavError("WAV data comes before its fmt chunk")
            return _decode(fmt, data[body_at:end])
        if tag == b"fmt ":
            fmt = _parse_fmt(data[body_at : body_at + size])
        at = body_at + size + (size & 1)  # chunks are word aligned
    raise WavError("WAV file has no data chunk")


def _parse_fmt(chunk: bytes) -> tuple[int, int, int, int]:
    if len(chunk) < 16:
        raise WavError("WAV fmt chunk is truncated")
    tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", chunk)
    if tag == EXTENSIBLE:
        if len(chunk) < 40 or chunk[24:40] != PCM_SUBFORMAT:
            raise WavError("WAV is not PCM (extensible format with another subformat)")
        tag = PCM
    return tag, channels, rate, bits


def _decode(fmt: tuple[int, int, int, int], body: bytes) -> Wav:
    tag, channels, rate, bits = fmt
    if tag != PCM or bits != 16:
        raise WavError(f"WAV must be 16-bit PCM; this one is format {tag} with {bits} bits")
    if channels not in (1, 2):
        raise WavError(f"WAV must be mono or stereo; this one has {channels} channels")
    usable = len(body) - len(body) % (2 * channels)
    samples = np.frombuffer(body[:usable], dtype="<i2")
    if channels == 2:
        samples = ((samples[0::2].astype(np.int32) + samples[1::2]) // 2).astype("<i2")
    return Wav(samples.tobytes(), rate)


def wav_header(rate: int, data_bytes: int | None = None, channels: int = 1) -> bytes:
    """A PCM16 WAV header; `data_bytes` None writes the unknown sizes of a streamed file."""
    data_size = UNKNOWN_SIZE if data_bytes is None else data_bytes
    riff_size = UNKNOWN_SIZE if data_bytes is None else 36 + data_bytes
    block = 2 * channels
    return (
        b"RIFF"
        + struct.pack("<I", riff_size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, PCM, channels, rate, rate * block, block, 16)
        + b"data"
        + struct.pack("<I", data_size)
    )


def write_wav(pcm: bytes, rate: int) -> bytes:
    """A whole mono PCM16 WAV file."""
    return wav_header(rate, len(pcm)) + pcm
