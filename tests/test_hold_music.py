"""tomsip/audio/hold_music.py: what a caller on hold hears is audible, soft, and mostly quiet."""

from __future__ import annotations

import numpy as np

from tests.support.tones import find_tones, near
from tomsip.audio.frames import SAMPLE_RATE
from tomsip.audio.hold_music import CYCLE_S, hold_cycle


def test_the_hold_chime_is_two_soft_notes_then_quiet() -> None:
    samples = np.frombuffer(hold_cycle(), dtype="<i2")
    assert len(samples) == int(CYCLE_S * SAMPLE_RATE)
    peak_dbfs = 20 * np.log10(np.abs(samples).max() / 32768)
    assert -30 < peak_dbfs < -20, "audible, well under the assistant's speech"
    notes = [t for t in find_tones(samples.astype(np.float64), SAMPLE_RATE, min_level_dbfs=-45) if t.length_ms >= 60]
    assert [round(t.hz / 10) * 10 for t in notes][:2] and near(notes[0].hz, 660) and near(notes[1].hz, 880), notes
    loud = np.abs(samples) > 32768 * 10 ** (-45 / 20)
    assert loud[: SAMPLE_RATE // 2].any() and not loud[SAMPLE_RATE:].any(), "the chime, then a quiet cycle"
