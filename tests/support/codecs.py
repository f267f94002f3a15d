"""G.722 and Opus for the test's RTP peer, through PyAV (FFmpeg): decode what the server sends, and
encode a caller's speech where SIPp has no encoder."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from tests.support.rtp import RtpIn


def _codec_for(pt: int) -> tuple[str, int, int]:
    """(PyAV codec, sample rate, RTP clock rate)."""
    if pt == 9:
        return "g722", 16000, 8000  # RFC 3551: G.722's RTP clock is 8000 for historical reasons
    return "opus", 48000, 48000


def decode_packets(pt: int, packets: list[RtpIn]) -> tuple[int, list[tuple[int, np.ndarray]]]:
    """Decode to mono int16 chunks keyed by position in samples of the output rate."""
    name, rate, clock = _codec_for(pt)
    ctx = av.CodecContext.create(name, "r")
    ctx.sample_rate = rate
    ctx.layout = "mono" if name == "g722" else "stereo"
    out: list[tuple[int, np.ndarray]] = []
    for p in sorted(packets, key=lambda p: p.seq):
        for frame in ctx.decode(av.Packet(p.payload)):
            samples = frame.to_ndarray().astype(np.float64)
            if frame.format.name.startswith(("flt", "dbl")):
                samples = np.clip(samples, -1, 1) * 32767
            # Planar frames are (channels, n); packed ones are (1, n * channels) interleaved.
            channels = frame.layout.nb_channels
            mono = samples.mean(axis=0) if frame.format.is_planar else samples.reshape(-1, channels).mean(axis=1)
            out.append(((p.ts * rate // clock), mono.astype(np.int16)))
    return rate, out


def encode_frames(pt: int, pcm16k: bytes) -> list[tuple[bytes, int]]:
    """Encode 16 kHz mono PCM into 20 ms RTP payloads with their RTP timestamp increments."""
    name, rate, clock = _codec_for(pt)
    samples = np.frombuffer(pcm16k, dtype="<i2")
    if rate != 16000:
        import soxr

        samples = soxr.resample(samples, 16000, rate).astype("<i2")
    ctx = av.CodecContext.create("g722" if name == "g722" else "libopus", "w")
    ctx.sample_rate = rate
    ctx.layout = "mono" if name == "g722" else "stereo"
    ctx.format = "s16"
    ctx.time_base = Fraction(1, rate)
    if name != "g722":
        ctx.bit_rate = 32000
    n = rate // 50
    payloads: list[tuple[bytes, int]] = []
    for i in range(0, len(samples) - n + 1, n):
        chunk = samples[i : i + n]
        if name != "g722":
            chunk = np.repeat(chunk, 2)
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=ctx.layout.name)
        frame.sample_rate = rate
        frame.pts = i
        for packet in ctx.encode(frame):
            payloads.append((bytes(packet), clock // 50))
    return payloads
