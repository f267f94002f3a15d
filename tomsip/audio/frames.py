"""The one internal audio format of the whole pipeline.

Every transport converts to this at its edge, so that VAD, speech stages and the call FSM never care
whether a frame came from G.711, G.722, Opus or a browser. 16 kHz is what whisper and webrtcvad both
take natively and what G.722 carries; G.711 is upsampled, Opus downsampled.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 16_000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
SILENCE_FRAME = bytes(FRAME_BYTES)


def bytes_to_ms(n: int, rate: int = SAMPLE_RATE) -> int:
    """Milliseconds that `n` bytes of mono PCM16 last at `rate`."""
    return n * 1000 // (rate * 2)


FULL_SCALE_POWER = 32768.0 * 32768.0


def rms_dbfs(pcm: bytes) -> float:
    """Level of a PCM16 block in dBFS; -120 for digital silence. Called for nearly every frame of every
    call, so it avoids np.mean's Python-level overhead: a dot product is a quarter of the cost."""
    if not pcm:
        return -120.0
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
    power = float(np.dot(samples, samples)) / len(samples)
    if power <= 0.0:
        return -120.0
    return 10.0 * math.log10(power / FULL_SCALE_POWER)


def frame_levels_dbfs(pcm: bytes, frame_bytes: int = FRAME_BYTES) -> list[float]:
    """rms_dbfs of each whole frame of `pcm` in one vectorised pass (a reply's frames, say)."""
    count = len(pcm) // frame_bytes
    if count == 0:
        return []
    frames = np.frombuffer(pcm, dtype=np.int16, count=count * frame_bytes // 2).astype(np.float32).reshape(count, -1)
    power = np.einsum("ij,ij->i", frames, frames) / frames.shape[1]
    with np.errstate(divide="ignore"):
        levels = 10.0 * np.log10(power / FULL_SCALE_POWER)
    out: list[float] = np.maximum(levels, -120.0).tolist()
    return out
