"""Speech-to-text in a speech worker (`tomsip speech-worker`, or any OpenAI-compatible audio API).

The utterance goes up as a 16 kHz WAV in a multipart form, exactly as a client of the hosted API
sends it, and `verbose_json` brings back the text with its average log-probability (the confidence
the in-process STT gives too). Speculative transcription during the caller's pause works as in
process: the request is simply made earlier, and cancelled (its connection closed, its queued job
dropped by the worker) when the caller goes on speaking.
"""

from __future__ import annotations

import math

import aiohttp

from tomsip.audio.frames import SAMPLE_RATE
from tomsip.audio.wav import write_wav
from tomsip.speech.remote.workers import SpeechWorkers, Worker, WorkerFailed, conversation_header
from tomsip.speech.stages import SpeechStageError, Transcript

MIN_UTTERANCE_BYTES = SAMPLE_RATE // 5 * 2  # under 200 ms: nothing to recognise, nothing to send


class RemoteSpeechToText:
    def __init__(self, workers: SpeechWorkers, model: str = "whisper-1") -> None:
        self.workers = workers
        self._model = model

    async def transcribe(self, audio: bytes) -> Transcript:
        if len(audio) < MIN_UTTERANCE_BYTES:
            return Transcript("", 0.0)
        wav = write_wav(audio, SAMPLE_RATE)
        return await self.workers.call(lambda worker: self._ask(worker, wav))

    async def _ask(self, worker: Worker, wav: bytes) -> Transcript:
        form = aiohttp.FormData()
        form.add_field("file", wav, filename="utterance.wav", content_type="audio/wav")
        form.add_field("model", self._model)
        form.add_field("language", "en")
        form.add_field("response_format", "verbose_json")
        url = worker.url + "/v1/audio/transcriptions"
        try:
            async with self.workers.http.session().post(url, data=form, headers=conversation_header()) as resp:
                self.workers.check_answer(resp)
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WorkerFailed(type(exc).__name__) from None
        except ValueError:
            raise SpeechStageError(self.workers.backend, "malformed", "not JSON") from None
        return _transcript(body, self.workers.backend)


def _transcript(body: object, backend: str) -> Transcript:
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise SpeechStageError(backend, "malformed", "no text in the transcription")
    confidence = 1.0
    segments = body.get("segments")
    if isinstance(segments, list) and segments and isinstance(segments[0], dict):
        logprob = segments[0].get("avg_logprob")
        if isinstance(logprob, (int, float)) and math.isfinite(logprob):
            confidence = round(math.exp(min(0.0, logprob)), 3)
    return Transcript(body["text"].strip(), confidence)
