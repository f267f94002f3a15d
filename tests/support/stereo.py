"""Reading a recording back: a two-channel PCM16 WAV as its two channels."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def read_stereo(path: Path) -> tuple[int, np.ndarray, np.ndarray]:
    """(rate, channel 1, channel 2) of a PCM16 stereo WAV with a plain 44-byte header."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt ", "not a WAV file"
    _, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[20:36])
    assert channels == 2 and bits == 16, (channels, bits)
    assert data[36:40] == b"data"
    size = struct.unpack("<I", data[40:44])[0]
    assert size == len(data) - 44, "the header's size is the data's (the recording was closed)"
    samples = np.frombuffer(data[44:], dtype="<i2").reshape(-1, 2)
    return rate, samples[:, 0].copy(), samples[:, 1].copy()
