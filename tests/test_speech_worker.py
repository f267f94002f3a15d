"""`tomsip speech-worker` over HTTP, asked the way any client of the OpenAI audio API asks.

A real worker process (whisper and piper loaded) on loopback; requests are plain multipart forms and
JSON bodies written with the standard library (tests/support/audio_api.py), not tomsip's own client.
The caller's speech comes from the PCMU captures the SIP tests play, so an 8 kHz phone recording is
what is transcribed.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import re
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.audio_api import speak, transcribe
from tests.support.caller import utterance
from tests.support.speech_worker import SpeechWorkerProcess
from tomsip.audio.g711 import ulaw_to_pcm
from tomsip.audio.wav import read_wav, write_wav

KEY = "worker-test-key"


def phone_recording(name: str) -> bytes:
    """The capture as an 8 kHz PCM16 WAV file."""
    return write_wav(ulaw_to_pcm(b"".join(utterance(name))), 8000)


def words(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", " ", text.lower())


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpeechWorkerProcess]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {"TOMSIP_WORKER_API_KEY": KEY, "TOMSIP_WORKER_STT_WORKERS": "1", "TOMSIP_WORKER_STT_BATCH": "8"}
    proc = SpeechWorkerProcess(env, log).start()
    yield proc
    assert proc.stop() == 0, "SIGTERM drains the worker and it exits 0"
    assert "level=error" not in proc.log_text()


def test_a_phone_recording_is_transcribed_in_each_response_format(worker: SpeechWorkerProcess) -> None:
    wav = ("book.wav", phone_recording("book_tuesday"), "audio/wav")
    plain = transcribe(worker.url, wav, key=KEY)
    assert plain.status == 200, plain.body
    assert "tuesday" in words(str(plain.json()["text"]))
    assert "X-Queue-Wait-Ms" in plain.headers

    text = transcribe(worker.url, wav, {"response_format": "text"}, key=KEY)
    assert text.status == 200 and text.headers["Content-Type"].startswith("text/plain")
    assert "tuesday" in words(text.body.decode())

    verbose = transcribe(worker.url, wav, {"response_format": "verbose_json", "language": "en"}, key=KEY).json()
    assert verbose["task"] == "transcribe" and verbose["language"] == "english"
    assert 1.0 < float(verbose["duration"]) < 5.0  # type: ignore[arg-type]
    segments = verbose["segments"]
    assert isinstance(segments, list) and segments[0]["avg_logprob"] <= 0


def test_raw_pcm_is_taken_at_its_declared_rate(worker: SpeechWorkerProcess) -> None:
    pcm = ulaw_to_pcm(b"".join(utterance("yes_please")))
    by_field = transcribe(worker.url, ("yes.pcm", pcm, "application/octet-stream"), {"sample_rate": "8000"}, key=KEY)
    assert by_field.status == 200, by_field.body
    assert "yes" in words(str(by_field.json()["text"]))
    by_type = transcribe(worker.url, ("yes", pcm, "audio/L16; rate=8000"), key=KEY)
    assert by_type.status == 200 and "yes" in words(str(by_type.json()["text"]))


def test_speech_streams_sentence_by_sentence_and_reads_back(worker: SpeechWorkerProcess) -> None:
    text = "On Tuesday at ten in the morning. Shall I book that for you? Thank you for calling, goodbye."
    answer = speak(worker.url, {"model": "tts-1", "input": text, "voice": "alloy", "response_format": "wav"}, KEY)
    assert answer.status == 200, answer.body
    assert answer.headers.get("Transfer-Encoding") == "chunked"
    assert answer.headers["Content-Type"].startswith("audio/wav")
    assert len(answer.chunks) >= 3, "three sentences leave as they are made, not as one body"
    wav = read_wav(answer.body)  # the streamed header's sizes are unknown; the reader takes the rest
    assert wav.rate == 24000
    assert 3.0 < len(wav.pcm) / 2 / wav.rate < 12.0
    heard = transcribe(worker.url, ("reply.wav", answer.body, "audio/wav"), key=KEY).json()["text"]
    for expected in ("tuesday", "book that", "goodbye"):
        assert expected in words(str(heard)), heard


def test_pcm_speech_at_the_asked_rate_and_speed(worker: SpeechWorkerProcess) -> None:
    ask = {"model": "tts-1", "input": "Which day would you like to come in?", "response_format": "pcm"}
    normal = speak(worker.url, {**ask, "sample_rate": 16000}, KEY)
    assert normal.status == 200 and normal.headers["Content-Type"] == "audio/pcm;rate=16000"
    fast = speak(worker.url, {**ask, "sample_rate": 16000, "speed": 1.5}, KEY)
    assert fast.status == 200
    # piper samples its phoneme lengths, so two takes differ by some percent; 1.5x is far beyond that
    assert len(fast.body) < 0.85 * len(normal.body), "speed 1.5 speaks the sentence in less time"
    default = speak(worker.url, ask, KEY)
    assert default.headers["Content-Type"] == "audio/pcm;rate=24000", "OpenAI's pcm is 24 kHz"
    assert 1.25 < len(default.body) / len(normal.body) < 1.75, "the same sentence, 24 samples a ms against 16"


def test_a_client_that_goes_away_mid_reply_disturbs_nothing(worker: SpeechWorkerProcess) -> None:
    """A barge-in on a node closes its speech request after the first sentence; the worker stops
    there without an error (the module's teardown checks its log) and serves the next request."""
    text = " ".join(["This is one of many sentences that the caller will never hear."] * 8)
    conn = http.client.HTTPConnection("127.0.0.1", worker.http_port, timeout=10)
    body = json.dumps({"model": "tts-1", "input": text, "response_format": "pcm"})
    conn.request(
        "POST", "/v1/audio/speech", body, {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    )
    response = conn.getresponse()
    assert response.status == 200 and response.read1(1024)
    conn.sock.close()  # type: ignore[union-attr]
    conn.close()
    time.sleep(1)
    assert speak(worker.url, {"model": "tts-1", "input": "Still here."}, KEY).status == 200


def test_the_api_key_is_required(worker: SpeechWorkerProcess) -> None:
    wav = ("book.wav", phone_recording("book_tuesday"), "audio/wav")
    for key in (None, "wrong-key"):
        answer = transcribe(worker.url, wav, key=key)
        assert answer.status == 401
        assert answer.json()["error"]["code"] == "invalid_api_key"  # type: ignore[index]
        assert speak(worker.url, {"model": "tts-1", "input": "Hello."}, key).status == 401
    assert worker.health()[0] == 200, "health and metrics stay open for probes and scrapers"


def _wav(rate: int, seconds: float, bits: int = 16, channels: int = 1, fmt: int = 1) -> bytes:
    frames = int(rate * seconds)
    data = bytes(frames * channels * bits // 8)
    header = struct.pack("<HHIIHH", fmt, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + header
        + b"data"
        + (struct.pack("<I", len(data)) + data)
    )


@pytest.mark.parametrize(
    ("file", "fields", "param", "reason"),
    [
        (("notes.txt", b"this is not audio at all", "text/plain"), {}, "file", "not audio"),
        (("clip.mp3", b"ID3\x03\x00\x00\x00" + bytes(500), "audio/mpeg"), {}, "file", "not audio"),
        (("long.wav", _wav(16000, 31), "audio/wav"), {}, "file", "31.0 s long"),
        (("low.wav", _wav(4000, 2), "audio/wav"), {}, "file", "4000 Hz is not supported"),
        (("raw.pcm", bytes(3200), "audio/pcm"), {"sample_rate": "1000"}, "sample_rate", "1000 Hz"),
        (("raw.pcm", bytes(3201), "audio/pcm"), {}, "file", "odd number of bytes"),
        (("float.wav", _wav(16000, 1, bits=32, fmt=3), "audio/wav"), {}, "file", "16-bit PCM"),
        (("cut.wav", _wav(16000, 1)[:30], "audio/wav"), {}, "file", "truncated"),
        (("empty.wav", _wav(16000, 0), "audio/wav"), {}, "file", "no samples"),
        (None, {}, "file", "required"),
        (("a.wav", _wav(16000, 1), "audio/wav"), {"response_format": "srt"}, "response_format", "srt"),
        (("a.wav", _wav(16000, 1), "audio/wav"), {"language": "de"}, "language", "only English"),
    ],
)
def test_malformed_uploads_get_400_naming_the_field(
    worker: SpeechWorkerProcess, file: tuple[str, bytes, str] | None, fields: dict[str, str], param: str, reason: str
) -> None:
    answer = transcribe(worker.url, file, fields, key=KEY)
    assert answer.status == 400, answer.body
    error = answer.json()["error"]
    assert isinstance(error, dict)
    assert error["param"] == param and reason in str(error["message"]), error


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        ({"model": "tts-1"}, "input"),
        ({"input": "   "}, "input"),
        ({"input": "x" * 5000}, "input"),
        ({"input": "Hello.", "voice": "darth"}, "voice"),
        ({"input": "Hello.", "response_format": "mp3"}, "response_format"),
        ({"input": "Hello.", "speed": 9}, "speed"),
        ({"input": "Hello.", "speed": "fast"}, "speed"),
        ({"input": "Hello.", "sample_rate": 11025}, "sample_rate"),
        ({"input": "..."}, "input"),
    ],
)
def test_malformed_speech_requests_get_400_naming_the_field(
    worker: SpeechWorkerProcess, body: dict[str, object] | bytes, param: str
) -> None:
    answer = speak(worker.url, body, KEY)
    assert answer.status == 400, answer.body
    assert answer.json()["error"]["param"] == param  # type: ignore[index]


CONTENT_TYPES = [
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "multipart/form-data; boundary=" + "b" * 80,
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=st.one_of(
        st.binary(max_size=600),
        st.builds(
            lambda head, part: b"--xyz\r\n" + head + b"\r\n\r\n" + part + b"\r\n--xyz--\r\n",
            st.sampled_from(
                [
                    b'Content-Disposition: form-data; name="file"; filename="a.wav"',
                    b'Content-Disposition: form-data; name="file"\r\nContent-Transfer-Encoding: x-weird',
                    b'Content-Disposition: form-data; name="file"\r\nContent-Encoding: br',
                    b"Content-Disposition: form-data",
                    b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''%ff%fe",
                ]
            ),
            st.binary(max_size=300),
        ),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.text(max_size=20),
            lambda c: st.lists(c) | st.dictionaries(st.text(max_size=8), c),
            max_leaves=8,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    content_type=st.sampled_from(CONTENT_TYPES),
    path=st.sampled_from(["/v1/audio/transcriptions", "/v1/audio/speech"]),
)
def test_hostile_requests_get_a_4xx_never_a_500(
    worker: SpeechWorkerProcess, body: bytes, content_type: str, path: str
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", worker.http_port, timeout=10)
    try:
        conn.request("POST", path, body, {"Content-Type": content_type, "Authorization": f"Bearer {KEY}"})
        status = conn.getresponse().status
    finally:
        conn.close()
    assert status < 500 and (status == 200 or 400 <= status), status


def test_utterances_that_arrive_together_are_decoded_in_one_pass(worker: SpeechWorkerProcess) -> None:
    """One STT thread: while it decodes the first, the next ones queue and go through as one batch."""
    before = worker.metrics()
    clips = [("book.wav", phone_recording("book_tuesday"), "audio/wav")] * 5
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda clip: transcribe(worker.url, clip, key=KEY), clips))
    assert all(a.status == 200 and "tuesday" in words(str(a.json()["text"])) for a in answers)
    after = worker.metrics()
    utterances = after["tomsip_worker_stt_batch_size_sum"] - before.get("tomsip_worker_stt_batch_size_sum", 0)
    passes = after["tomsip_worker_stt_batch_size_count"] - before.get("tomsip_worker_stt_batch_size_count", 0)
    assert utterances == 5 and passes < 5, f"{utterances} utterances in {passes} passes"
    for name in (
        'tomsip_worker_queue_depth{stage="stt"}',
        'tomsip_worker_request_seconds_count{endpoint="/v1/audio/transcriptions"}',
        'tomsip_worker_requests_total{endpoint="/v1/audio/transcriptions",status="200"}',
        'tomsip_worker_queue_wait_seconds_count{stage="stt"}',
    ):
        assert name in after, name


def test_health_counts_the_conversations_the_nodes_name(tmp_path: Path) -> None:
    """Nodes name each request's call; a worker that carries two conversations is busy with two, so
    every node sharing it refuses new calls at its door."""
    proc = SpeechWorkerProcess({"TOMSIP_WORKER_CONVERSATIONS": "2"}, tmp_path / "count.log").start()
    try:
        status, health = proc.health()
        assert status == 200 and health["conversations"] == {"active": 0, "capacity": 2} and not health["busy"]
        wav = ("book.wav", phone_recording("book_tuesday"), "audio/wav")
        for call in ("call-a@node-1", "call-a@node-1", "call-b@node-2"):
            answer = transcribe(proc.url, wav, headers={"X-Tomsip-Conversation": call})
            assert answer.status == 200
        _, health = proc.health()
        assert health["conversations"] == {"active": 2, "capacity": 2} and health["busy"] is True
        assert proc.metric("tomsip_worker_conversations") == 2
    finally:
        assert proc.stop() == 0


def test_an_unset_capacity_is_measured_at_start_up(worker: SpeechWorkerProcess) -> None:
    _, health = worker.health()
    conversations = health["conversations"]
    assert isinstance(conversations, dict) and conversations["capacity"] >= 1
    assert "speech worker calibrated" in worker.log_text()


def test_a_full_queue_is_answered_503_with_retry_after(tmp_path: Path) -> None:
    """One thread and no queue: of six long utterances sent at once, one is decoded and the rest are
    refused at once, so a node can ask another worker instead of waiting."""
    env = {"TOMSIP_WORKER_STT_WORKERS": "1", "TOMSIP_WORKER_QUEUE": "0"}
    proc = SpeechWorkerProcess(env, tmp_path / "full.log").start()
    try:
        rng = np.random.default_rng(7)
        noise = (rng.standard_normal(16000 * 25) * 3000).astype("<i2").tobytes()
        clip = ("long.wav", write_wav(noise, 16000), "audio/wav")
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: transcribe(proc.url, clip), range(6)))
        refused = [a for a in answers if a.status == 503]
        assert refused and any(a.status == 200 for a in answers), [a.status for a in answers]
        assert all(int(a.headers["Retry-After"]) >= 1 for a in refused)
        assert refused[0].json()["error"]["code"] == "overloaded"  # type: ignore[index]
        assert proc.metric('tomsip_worker_refusals_total{stage="stt"}') == len(refused)
    finally:
        assert proc.stop() == 0
