"""Streaming conversion of a transport's PCM to the internal format.

soxr's higher qualities hold audio back in bursts (up to ~115 ms at 8k<->16k, measured in
shared/research/speech-stack.md), which would delay VAD and therefore barge-in. The quick quality
(QQ) has essentially no delay and is plenty for speech at telephone bandwidth, so the live paths use
it; one-shot conversions of whole utterances can afford HQ.
"""

from __future__ import annotations

import numpy as np
import soxr

from tomsip.audio.frames import SAMPLE_RATE


class StreamResampler:
    """Converts interleaved PCM16 at (rate, channels) into mono PCM16 at `out_rate`, chunk by chunk."""

    def __init__(self, in_rate: int, channels: int = 1, out_rate: int = SAMPLE_RATE) -> None:
        if in_rate <= 0 or channels <= 0:
            raise ValueError(f"bad input format: {in_rate} Hz x {channels} channels")
        self.in_rate = in_rate
        self.channels = channels
        self.out_rate = out_rate
        self._stream = (
            None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="QQ")
        )
        self._odd = b""  # a trailing partial sample frame carried to the next chunk

    def convert(self, pcm: bytes) -> bytes:
        """Convert one chunk; returns whatever output is ready (possibly empty)."""
        frame_bytes = 2 * self.channels
        data = self._odd + pcm
        usable = len(data) - len(data) % frame_bytes
        self._odd = data[usable:]
        if usable == 0:
            return b""
        samples = np.frombuffer(data[:usable], dtype="<i2")
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels).mean(axis=1).astype(np.int16)
        if self._stream is None:
            return samples.tobytes()
        out: bytes = self._stream.resample_chunk(samples).tobytes()  # soxr ships no types
        return out


def resample_once(pcm: bytes, in_rate: int, out_rate: int) -> bytes:
    """High-quality one-shot conversion of a whole mono PCM16 block (utterances, prompts)."""
    if in_rate == out_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2")
    out: bytes = soxr.resample(samples, in_rate, out_rate, quality="HQ").astype("<i2").tobytes()
    return out
