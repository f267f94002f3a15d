"""SIP nodes without models, whose speech runs in `tomsip speech-worker` processes.

Everything is a real process on loopback: speech workers (whisper and piper), tomsip nodes with
TOMSIP_STT_URLS / TOMSIP_TTS_URLS, SIPp for the signalling and a Python RTP peer that speaks the
caller's recorded sentences. What the caller heard is transcribed from the received RTP.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.audio_api import transcribe
from tests.support.caller import ConversingCaller, utterance
from tests.support.hearing import heard
from tests.support.rtp import RtpPeer
from tests.support.server import TomsipServer
from tests.support.sipp import SippResult, run_sipp
from tests.support.speech_worker import SpeechWorkerProcess
from tomsip.audio.wav import write_wav
from tomsip.speech.local.whisper_stt import load_whisper

pytestmark = pytest.mark.sip

MODEL_LIBRARIES = ("ctranslate2", "onnxruntime")


@pytest.fixture(scope="module")
def whisper() -> object:
    return load_whisper(2)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., SpeechWorkerProcess]]:
    started: list[SpeechWorkerProcess] = []

    def _start(**env: str) -> SpeechWorkerProcess:
        worker = SpeechWorkerProcess(env, tmp_path / f"worker{len(started)}.log").start()
        started.append(worker)
        return worker

    yield _start
    for worker in started:
        worker.stop()


def remote_node(make_server: Callable[..., TomsipServer], *workers: SpeechWorkerProcess, **env: str) -> TomsipServer:
    urls = ",".join(w.url for w in workers)
    return make_server(TOMSIP_STT_URLS=urls, TOMSIP_TTS_URLS=urls, TOMSIP_SPEECH_WORKER_PROBE_S="0.3", **env)


def loaded_models(node: TomsipServer) -> list[str]:
    assert node.proc is not None
    maps = Path(f"/proc/{node.proc.pid}/maps").read_text()
    return [lib for lib in MODEL_LIBRARIES if lib in maps]


def converse(node: TomsipServer, peer: RtpPeer, sentences: list[str], **sipp: object) -> SippResult:
    caller = ConversingCaller(peer, [utterance(name) for name in sentences]).start()
    try:
        return run_sipp(
            str(sipp.pop("scenario", "converse")), node.sip_port, "booking", [peer.port], timeout_s=90, **sipp
        )  # type: ignore[arg-type]
    finally:
        caller.stop()


def when(condition: Callable[[], bool], then: Callable[[], None], timeout_s: float = 60) -> threading.Thread:
    """Run `then` once `condition` holds (polled), in the background."""

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                then()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_two_nodes_without_models_share_one_worker(
    make_server: Callable[..., TomsipServer], start_worker: Callable[..., SpeechWorkerProcess], whisper: object
) -> None:
    worker = start_worker()
    nodes = [remote_node(make_server, worker), remote_node(make_server, worker)]
    for node in nodes:
        assert loaded_models(node) == [], "a node with speech workers loads no model runtime"
    peers = [RtpPeer(), RtpPeer()]
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda i: converse(nodes[i], peers[i], ["book_tuesday", "yes_please"]), range(2)))
        for node, peer, result in zip(nodes, peers, results, strict=True):
            assert result.ok, result.errors
            words = heard(peer, whisper)
            for expected in ("which day", "tuesday", "that for you", "bye"):
                assert expected in words, f"{expected!r} not in what the caller heard: {words!r}"
            # "You're booked" is one piper take per node; whisper tiny hears some as "you are both"
            assert "booked" in words or "you are both" in words, words
            assert node.wait_metric('tomsip_calls_total{outcome="completed"}', 1) == 1
            served = node.metric(
                f'tomsip_speech_worker_requests_total{{outcome="ok",stage="stt",worker="{worker.url}"}}'
            )
            assert served >= 2, "each node's turns were transcribed by the worker"
            assert node.metric('tomsip_turn_latency_seconds_count{stage="speech_end_to_audio"}') >= 2
            assert loaded_models(node) == []
    finally:
        for peer in peers:
            peer.close()
    assert worker.metric('tomsip_worker_requests_total{endpoint="/v1/audio/transcriptions",status="200"}') >= 4
    for node in nodes:
        assert node.stop() == 0, "a node with remote speech drains and exits 0"
        assert "level=error" not in node.log_text()
    assert worker.stop() == 0


def test_a_worker_stopped_mid_call_sends_the_next_turn_to_the_other(
    make_server: Callable[..., TomsipServer], start_worker: Callable[..., SpeechWorkerProcess], whisper: object
) -> None:
    first, second = start_worker(), start_worker()
    node = remote_node(make_server, first, second)
    peer = RtpPeer()
    caller = ConversingCaller(peer, [utterance("book_tuesday"), utterance("yes_please")]).start()
    killed: list[float] = []
    # Once the caller's first sentence is out, a worker goes away without a word (SIGKILL).
    when(lambda: len(caller.spoke_at) >= 1, lambda: (first.kill(), killed.append(time.monotonic())))
    try:
        result = run_sipp("converse", node.sip_port, "booking", [peer.port], timeout_s=90)
    finally:
        caller.stop()
    try:
        assert killed and len(caller.spoke_at) == 2 and killed[0] < caller.spoke_at[1][0]
        assert result.ok, result.errors
        words = heard(peer, whisper)
        assert ("booked" in words or "you are both" in words or "your book on" in words) and "bye" in words, words
        assert node.wait_metric('tomsip_calls_total{outcome="completed"}', 1) == 1
        assert node.metric('tomsip_speech_workers_up{stage="stt"}') == 1
        ok = f'tomsip_speech_worker_requests_total{{outcome="ok",stage="stt",worker="{second.url}"}}'
        assert node.metric(ok) >= 1, "the turn after the stop was transcribed by the other worker"
        assert node.metric('tomsip_calls_total{outcome="error"}') == 0
    finally:
        peer.close()


def test_with_no_worker_left_the_caller_hears_the_apology_and_the_call_goes_on(
    make_server: Callable[..., TomsipServer], start_worker: Callable[..., SpeechWorkerProcess], whisper: object
) -> None:
    worker = start_worker()
    node = remote_node(make_server, worker)
    peer = RtpPeer()
    caller = ConversingCaller(peer, [utterance("book_tuesday")]).start()
    when(lambda: any(index == 0 for _, _, index in caller.sent), worker.kill)  # as the caller starts to speak
    try:
        result = run_sipp("hold_call", node.sip_port, "booking", [peer.port], duration_ms=14_000, timeout_s=40)
    finally:
        caller.stop()
    try:
        assert result.ok, result.errors  # the caller hung up after 14 s: the server did not
        words = heard(peer, whisper)
        assert "sorry" in words and "again" in words, f"the cached apology: {words!r}"
        assert node.wait_metric('tomsip_calls_total{outcome="remote_hangup"}', 1) == 1
        assert node.metric('tomsip_api_errors_total{backend="stt_remote",kind="unavailable"}') >= 1
        # a new caller is refused at the door while no worker answers
        refused = run_sipp("refused", node.sip_port, "booking", timeout_s=20)
        assert refused.ok, refused.errors
        assert node.metric('tomsip_admission_refusals_total{reason="speech_workers_down"}') == 1
    finally:
        peer.close()
    assert "level=error" not in node.log_text()


def test_a_full_worker_makes_the_node_refuse_new_calls(
    make_server: Callable[..., TomsipServer], start_worker: Callable[..., SpeechWorkerProcess]
) -> None:
    """One STT thread and no queue, kept busy by another client: the node sees the worker full and
    answers new calls busy; once the load is gone it answers again."""
    worker = start_worker(TOMSIP_WORKER_STT_WORKERS="1", TOMSIP_WORKER_QUEUE="0")
    node = remote_node(make_server, worker)
    noise = (np.random.default_rng(3).standard_normal(16000 * 25) * 3000).astype("<i2").tobytes()
    clip = ("load.wav", write_wav(noise, 16000), "audio/wav")
    stop = threading.Event()
    statuses: list[int] = []

    def load() -> None:
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            statuses.append(transcribe(worker.url, clip).status)

    loaders = [threading.Thread(target=load, daemon=True) for _ in range(3)]
    for thread in loaders:
        thread.start()
    try:
        assert node.wait_metric('tomsip_speech_workers_ready{stage="stt"}', 0, timeout_s=10) == 0
        result = run_sipp("refused", node.sip_port, "booking", timeout_s=20)
        assert result.ok, result.errors
        assert node.metric('tomsip_admission_refusals_total{reason="speech_workers_busy"}') >= 1
        assert 503 in statuses, "the worker itself refused the other client's excess"
    finally:
        stop.set()
        for thread in loaders:
            thread.join(timeout=30)
    assert node.wait_metric('tomsip_speech_workers_ready{stage="stt"}', 1, timeout_s=10) == 1
    answered = run_sipp("hold_call", node.sip_port, "booking", duration_ms=2000, timeout_s=20)
    assert answered.ok, answered.errors
