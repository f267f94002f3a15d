"""Reading the mock brain's tone replies back out of received audio.

The mock speaks in pure tones (tomsip/speech/mock.py); this finds them: per 20 ms window the dominant
frequency and level, then runs of the same frequency merged into segments with start and length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tone:
    hz: float
    start_ms: int
    length_ms: int


def dominant(samples: np.ndarray, rate: int) -> tuple[float, float]:
    """(frequency Hz, level dBFS) of the strongest component of a window."""
    if len(samples) == 0:
        return 0.0, -120.0
    window = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(window, n=max(len(samples), 2048)))
    peak = int(np.argmax(spectrum[1:]) + 1)
    freq = peak * rate / max(len(samples), 2048)
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    level = 20 * np.log10(max(rms, 1e-9) / 32768)
    return freq, level


def find_tones(
    samples: np.ndarray, rate: int = 8000, min_level_dbfs: float = -35.0, tolerance_hz: float = 40.0
) -> list[Tone]:
    """Segments of steady tone, in order; windows under `min_level_dbfs` are silence."""
    win = rate // 50
    tones: list[Tone] = []
    current: list[float] = []
    start = 0
    for i in range(0, len(samples) - win + 1, win):
        freq, level = dominant(samples[i : i + win], rate)
        voiced = level >= min_level_dbfs
        if voiced and current and abs(freq - float(np.median(current))) <= tolerance_hz:
            current.append(freq)
            continue
        if current:
            tones.append(Tone(float(np.median(current)), start * 20, len(current) * 20))
            current = []
        if voiced:
            current = [freq]
            start = i // win
    if current:
        tones.append(Tone(float(np.median(current)), start * 20, len(current) * 20))
    return [t for t in tones if t.length_ms >= 60]


def near(hz: float, target: float, tolerance: float = 40.0) -> bool:
    return abs(hz - target) <= tolerance


def tone_frames(level_dbfs: float, n: int, hz: float = 300.0) -> list[bytes]:
    """`n` 20 ms internal-format frames of a sine at `level_dbfs` RMS (a stand-in for a voice)."""
    t = np.arange(320 * n) / 16000
    amplitude = 32768 * 10 ** (level_dbfs / 20) * np.sqrt(2)
    pcm = (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()
    return [pcm[i : i + 640] for i in range(0, len(pcm), 640)]
