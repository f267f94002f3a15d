"""tomsip/audio/wav.py: the WAV files the speech workers read and write."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from tomsip.audio.wav import PCM_SUBFORMAT, WavError, read_wav, wav_header, write_wav


def _chunk(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def _riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _fmt(tag: int = 1, channels: int = 1, rate: int = 16000, bits: int = 16, extra: bytes = b"") -> bytes:
    block = channels * bits // 8
    return _chunk(b"fmt ", struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits) + extra)


def test_a_written_file_reads_back() -> None:
    pcm = np.arange(-500, 500, dtype="<i2").tobytes()
    wav = read_wav(write_wav(pcm, 8000))
    assert wav.pcm == pcm and wav.rate == 8000


def test_a_streamed_file_with_unknown_sizes_reads_to_its_end() -> None:
    pcm = bytes(range(200)) * 4
    assert read_wav(wav_header(24000) + pcm).pcm == pcm


def test_extensible_pcm_and_other_chunks_before_the_data_are_read() -> None:
    extensible = struct.pack("<HHI", 22, 16, 4) + PCM_SUBFORMAT
    data = struct.pack("<4h", 1, 2, 3, 4)
    wav = read_wav(_riff(_fmt(0xFFFE, extra=extensible), _chunk(b"LIST", b"odd"), _chunk(b"data", data)))
    assert wav.pcm == data and wav.rate == 16000


def test_stereo_is_mixed_down_to_mono() -> None:
    data = struct.pack("<4h", 100, 300, -200, -400)
    assert read_wav(_riff(_fmt(channels=2), _chunk(b"data", data))).pcm == struct.pack("<2h", 200, -300)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not a wav file", "no RIFF/WAVE"),
        (_riff(_chunk(b"data", bytes(4)), _fmt()), "before its fmt"),
        (_riff(_fmt()), "no data chunk"),
        (_riff(_fmt(bits=8), _chunk(b"data", bytes(4))), "16-bit PCM"),
        (_riff(_fmt(tag=3, bits=32), _chunk(b"data", bytes(8))), "16-bit PCM"),
        (_riff(_fmt(channels=6), _chunk(b"data", bytes(24))), "mono or stereo"),
        (_riff(_chunk(b"fmt ", bytes(6)), _chunk(b"data", bytes(4))), "truncated"),
        (_riff(_fmt(0xFFFE, extra=bytes(24)), _chunk(b"data", bytes(4))), "another subformat"),
    ],
)
def test_what_is_not_pcm16_wav_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(WavError, match=reason):
        read_wav(data)
