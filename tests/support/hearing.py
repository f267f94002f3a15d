"""What a caller heard on the phone, as whisper writes it: the assertion side of speech tests."""

from __future__ import annotations

import numpy as np

from tests.support.rtp import RtpPeer
from tomsip.audio.frames import SAMPLE_RATE


def heard(peer: RtpPeer, whisper: object) -> str:
    """What a person on the phone heard (lower case, no punctuation), from the RTP the peer received."""
    audio = peer.decode(SAMPLE_RATE).astype(np.float32) / 32768.0
    segments, _ = whisper.transcribe(audio, language="en", beam_size=1, condition_on_previous_text=False)  # type: ignore[attr-defined]
    text = " ".join(s.text for s in segments).lower()
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text)
