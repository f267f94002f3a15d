"""What a caller hears while we fetch a person for them: not silence (they would think the line
dropped), a soft two-note chime every three seconds, well under speech level so that it never reads
as the assistant talking."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from tomsip.audio.frames import SAMPLE_RATE

LEVEL_DBFS = -24.0
NOTES_HZ = (660.0, 880.0)
NOTE_S = 0.35
CYCLE_S = 3.0


@lru_cache(maxsize=1)
def hold_cycle() -> bytes:
    """One cycle: the chime, then quiet; PCM16 at the internal rate."""
    amplitude = 32767 * 10 ** (LEVEL_DBFS / 20)
    n = int(NOTE_S * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    decay = np.exp(-t * 6.0)  # a bell, not a beep
    attack = np.minimum(1.0, t / 0.01)
    notes = [amplitude * attack * decay * np.sin(2 * np.pi * hz * t) for hz in NOTES_HZ]
    quiet = np.zeros(int(CYCLE_S * SAMPLE_RATE) - len(notes) * n)
    return np.concatenate([*notes, quiet]).astype("<i2").tobytes()
