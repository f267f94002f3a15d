"""G.711 mu-law and A-law by lookup tables.

`audioop` is deprecated and gone in Python 3.13, so the tables are built here once; they are
bit-exact with audioop (see tests/test_g711.py). The browser bridge, the test tools and the SIPp
pcap maker all use these.
"""

from __future__ import annotations

import numpy as np


def _ulaw_decode_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    u = ~codes & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


def _ulaw_encode_table() -> np.ndarray:
    sample = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit domain, floor as in G.711
    sign = np.where(sample < 0, 0x80, 0x00)
    magnitude = np.minimum(np.abs(sample), 8159) + 33  # with the bias
    exponent = np.zeros_like(magnitude)
    for e in range(7, -1, -1):
        exponent = np.where((exponent == 0) & (magnitude >= (1 << (e + 5))), e, exponent)
    mantissa = (magnitude >> (exponent + 1)) & 0x0F
    code = np.where(magnitude >= 8192, 0x7F, (exponent << 4) | mantissa)  # clip, as G.711 does
    return (~(sign | code) & 0xFF).astype(np.uint8)


def _alaw_encode_table() -> np.ndarray:
    sample = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit domain
    sign = np.where(sample >= 0, 0x80, 0x00)
    magnitude = np.where(sample >= 0, sample, -sample - 1)
    exponent = np.zeros_like(magnitude)
    for e in range(7, 0, -1):
        exponent = np.where((exponent == 0) & (magnitude >= (16 << e)), e, exponent)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    code = np.where(magnitude >= 4096, 0x7F, (exponent << 4) | mantissa)
    return ((sign | code) ^ 0x55).astype(np.uint8)


ULAW_DECODE = _ulaw_decode_table()
ALAW_DECODE = _alaw_decode_table()
ULAW_ENCODE = _ulaw_encode_table()
ALAW_ENCODE = _alaw_encode_table()


def ulaw_to_pcm(data: bytes) -> bytes:
    """Decode mu-law bytes to PCM16 little-endian."""
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def alaw_to_pcm(data: bytes) -> bytes:
    """Decode A-law bytes to PCM16 little-endian."""
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def pcm_to_ulaw(pcm: bytes) -> bytes:
    """Encode PCM16 little-endian to mu-law bytes."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32) + 32768
    return ULAW_ENCODE[samples].tobytes()


def pcm_to_alaw(pcm: bytes) -> bytes:
    """Encode PCM16 little-endian to A-law bytes."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32) + 32768
    return ALAW_ENCODE[samples].tobytes()
