"""Text-to-speech in a speech worker, streamed: the reply's audio is played as it arrives.

A tomsip worker is asked for `pcm` at the node's own 16 kHz (an extension of the API); another
server of the API (a hosted one) gets the standard request and answers OpenAI's 24 kHz, converted here
as it streams. A worker that fails before the first byte is replaced by the next one; one that breaks
off mid-sentence ends this reply with the apology (what was already heard stays heard).

`speak_sync` is the blocking path of start-up: the phrase cache pins the greeting, the apology and
the filler through it, so being busy later never needs a worker.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import aiohttp

from tomsip.audio.frames import SAMPLE_RATE
from tomsip.audio.resample import StreamResampler, resample_once
from tomsip.speech.remote.workers import SpeechWorkers, Worker, WorkerFailed, conversation_header
from tomsip.speech.stages import PipelineError, SpeechStageError

READ_BYTES = 3200  # 100 ms at 16 kHz: what the reply's playout is fed per read at most


class RemoteSpeech:
    def __init__(self, workers: SpeechWorkers, speed: float = 1.0, voice: str = "alloy", model: str = "tts-1") -> None:
        self.workers = workers
        self._speed = speed
        self._voice = voice
        self._model = model

    def at_rate(self, rate: float) -> RemoteSpeech:
        return RemoteSpeech(self.workers, rate, self._voice, self._model)

    def _body(self, text: str, native: bool) -> dict[str, object]:
        body: dict[str, object] = {
            "model": self._model,
            "input": text,
            "voice": self._voice,
            "response_format": "pcm",
            "speed": self._speed,
        }
        if native:
            body["sample_rate"] = SAMPLE_RATE
        return body

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        workers = self.workers
        started = time.perf_counter()
        worker, response = await workers.call(lambda worker: self._open(worker, text))
        # whole samples at the node's rate, however the reads cut them (an odd byte waits for the next)
        converter = StreamResampler(_rate(response.headers.get("Content-Type", "")), 1, SAMPLE_RATE)
        finished = False
        try:
            while True:
                try:
                    chunk = await response.content.read(READ_BYTES)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    workers.mark_down(worker, f"broke off a reply ({type(exc).__name__})")
                    raise SpeechStageError(workers.backend, "broken", type(exc).__name__) from None
                if not chunk:
                    finished = True
                    break
                if started:
                    workers.served_first_audio(time.perf_counter() - started)
                    started = 0.0
                chunk = converter.convert(chunk)
                if chunk:
                    yield chunk
        finally:
            if finished:
                response.release()  # the connection goes back to the pool
            else:
                response.close()  # cut short (a barge-in): the worker sees the client go

    async def _open(self, worker: Worker, text: str) -> tuple[Worker, aiohttp.ClientResponse]:
        """The worker and its response with its status read (200), the body still to stream."""
        url = worker.url + "/v1/audio/speech"
        try:
            body = self._body(text, worker.native)
            response = await self.workers.http.session().post(url, json=body, headers=conversation_header())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WorkerFailed(type(exc).__name__) from None
        try:
            self.workers.check_answer(response)
        except BaseException:
            response.release()
            raise
        return worker, response

    def speak_sync(self, sentence: str) -> bytes:
        """One sentence, blocking (start-up): every worker that is up is tried in turn, again and
        again while they are busy or unreachable, for up to the start-up wait."""
        headers = {"Content-Type": "application/json"}
        if self.workers.config.api_key:
            headers["Authorization"] = f"Bearer {self.workers.config.api_key}"
        deadline = time.monotonic() + self.workers.config.start_wait_s
        problems: list[str] = []
        while True:
            for worker in self.workers.workers:
                if not worker.up:
                    continue
                data = json.dumps(self._body(sentence, worker.native)).encode()
                request = urllib.request.Request(worker.url + "/v1/audio/speech", data, headers)
                try:
                    with urllib.request.urlopen(request, timeout=self.workers.config.timeout_s * 4) as resp:
                        rate = _rate(resp.headers.get("Content-Type", ""))
                        data = resp.read()
                        pcm = data[: len(data) - len(data) % 2]
                        return pcm if rate == SAMPLE_RATE else resample_once(pcm, rate, SAMPLE_RATE)
                except urllib.error.HTTPError as exc:
                    problems.append(f"{worker.url}: http {exc.code}")
                    if exc.code in (400, 401, 403):  # the same request gets the same answer again
                        raise PipelineError(f"a TTS worker refused a start-up phrase ({problems[-1]})") from None
                except OSError as exc:
                    problems.append(f"{worker.url}: {type(exc).__name__}")
            if time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        shown = "; ".join(problems[-3:]) or "none up"
        raise PipelineError(f"no TTS worker could speak a start-up phrase ({shown})")


def _rate(content_type: str) -> int:
    match = re.search(r"rate=(\d+)", content_type)
    return int(match.group(1)) if match else 24000  # OpenAI's pcm
