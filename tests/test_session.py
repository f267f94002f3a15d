"""CallSession over an in-memory transport on the real paced port: the contract every transport
relies on.

Only the transport's reading and writing are the test's (tests/support/memory_port.py); the paced
port, session, turn taker, FSM, VAD, end-pointer and mock brain are the real ones. Frames are fed one
per event-loop iteration, which lets the turn tasks run between frames; timers are not exercised here
(the FSM tests cover them).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.support.memory_port import MemoryPort
from tests.support.pcap import read_udp
from tomsip.audio.frames import FRAME_BYTES, SILENCE_FRAME
from tomsip.audio.g711 import ulaw_to_pcm
from tomsip.audio.resample import resample_once
from tomsip.call.dialplan import DialplanModel, Route
from tomsip.call.session import CallSession
from tomsip.monitor.metrics import Metrics
from tomsip.speech.mock import build_mock_pipeline
from tomsip.speech.stages import Transcript
from tomsip.store.memory import MemoryStore

PCAP = Path(__file__).resolve().parents[1] / "sipp_scenarios" / "pcap" / "speech_short_pcmu.pcap"


def speech_frames() -> list[bytes]:
    pcm8k = b"".join(ulaw_to_pcm(p.payload[12:]) for p in read_udp(str(PCAP)))
    pcm = resample_once(pcm8k, 8000, 16000)
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


def make_session(port: MemoryPort, options: dict[str, object] | None = None) -> tuple[CallSession, Metrics]:
    plan = DialplanModel(name="t", default=True, options=options or {})
    plan.settings.silence_ms = 500
    metrics = Metrics()
    brain = build_mock_pipeline().open(port.call_id, plan.options)
    return CallSession(port, brain, Route(plan, "mock", None), MemoryStore(), metrics), metrics  # type: ignore[arg-type]


async def run_frames(port: MemoryPort, frames: list[bytes]) -> None:
    for frame in frames:
        await port.tick(frame)


@pytest.fixture
def speech() -> list[bytes]:
    return speech_frames()


async def test_greeting_then_a_reply_as_long_as_the_utterance(speech: list[bytes]) -> None:
    port = MemoryPort()
    session, _ = make_session(port)
    task = asyncio.create_task(session.run())
    await asyncio.sleep(0)
    await run_frames(port, [SILENCE_FRAME] * 60)
    assert len(port.sent) == 40  # the 800 ms greeting played out
    await run_frames(port, speech + [SILENCE_FRAME] * 250)
    reply_frames = len(port.sent) - 40
    assert abs(reply_frames * 20 - 2700) <= 400, reply_frames
    assert session.fsm.state.value == "listening"
    session.on_hangup("remote_hangup")
    assert await task == "remote_hangup"
    assert session.ledger.record.latencies_ms["turn"] >= 0


async def test_speech_during_the_reply_pauses_then_flushes_it(speech: list[bytes]) -> None:
    port = MemoryPort()
    session, metrics = make_session(port)
    task = asyncio.create_task(session.run())
    await asyncio.sleep(0)
    await run_frames(port, [SILENCE_FRAME] * 60 + speech + [SILENCE_FRAME] * 40)
    assert session.fsm.state.value == "speaking"
    await run_frames(port, speech[:5])  # 100 ms of the caller: paused, not yet flushed
    assert port.pauses == 1 and port.flushes == 0
    await run_frames(port, speech[5:20])
    assert port.flushes == 1 and session.fsm.barge_ins == 1
    assert metrics.barge_ins._value.get() == 1
    session.on_hangup("remote_hangup")
    await task


async def test_a_failing_brain_ends_only_its_call_with_a_hangup(speech: list[bytes]) -> None:
    port = MemoryPort()
    session, metrics = make_session(port, {"mock_fail_on_reply": 1})
    task = asyncio.create_task(session.run())
    await asyncio.sleep(0)
    await run_frames(port, [SILENCE_FRAME] * 60 + speech + [SILENCE_FRAME] * 40)
    assert await asyncio.wait_for(task, 2) == "error"
    assert port.hung_up
    assert metrics.call_failures.labels(stage="turn")._value.get() == 1


async def test_speech_resumed_right_after_a_turn_ended_is_heard_with_the_words_before(speech: list[bytes]) -> None:
    """The caller paused at a comma long enough to end the turn, then went on: the reply is cut, and
    the next turn's audio holds both parts, so its transcript is the whole sentence."""
    port = MemoryPort()
    session, metrics = make_session(port)
    requests: list[int] = []
    real_turn = session.brain.turn

    def recording_turn(request, latency):  # type: ignore[no-untyped-def]
        requests.append(len(request.audio))
        return real_turn(request, latency)

    session.brain.turn = recording_turn  # type: ignore[method-assign]
    task = asyncio.create_task(session.run())
    await asyncio.sleep(0)
    first, rest = speech[:60], speech[60:]
    await run_frames(port, [SILENCE_FRAME] * 60 + first + [SILENCE_FRAME] * 30)  # the turn ends at 500 ms
    assert session.fsm.state.value in ("thinking", "speaking") and len(requests) == 2
    await run_frames(port, rest + [SILENCE_FRAME] * 40)  # within a second: a barge-in that goes on
    assert session.fsm.barge_ins == 1 and len(requests) == 3
    assert requests[2] >= requests[1] + len(b"".join(rest)) - 40 * FRAME_BYTES, requests
    assert metrics.speculative_stt.labels(outcome="rejoined")._value.get() == 1
    session.on_hangup("remote_hangup")
    await task


async def test_a_spoken_rating_ends_the_call_and_feeds_the_signals(speech: list[bytes]) -> None:
    """The rating question is answered by voice: the utterance is transcribed (the STT is stubbed to
    hear "Four."; the session, FSM and end-pointer are real) and read as a rating."""
    port = MemoryPort()
    plan = DialplanModel.model_validate({"name": "t", "default": True, "learning": {"ask_rating": True}})
    metrics = Metrics()
    brain = build_mock_pipeline().open(port.call_id, {})
    heard: list[int] = []

    async def hears_four(audio: bytes) -> Transcript:
        heard.append(len(audio))
        return Transcript("Four.")

    brain.transcribe = hears_four  # type: ignore[method-assign]
    session = CallSession(port, brain, Route(plan, "mock", None, "default"), MemoryStore(), metrics)  # type: ignore[arg-type]
    task = asyncio.create_task(session.run())
    await asyncio.sleep(0)
    await run_frames(port, [SILENCE_FRAME] * 50)
    session.on_dtmf("#")  # the mock brain ends the conversation
    await run_frames(port, [SILENCE_FRAME] * 50)
    assert session.fsm.state.value == "rating"
    assert session.rate(9) == "out_of_range"
    await run_frames(port, speech + [SILENCE_FRAME] * 80)
    assert heard and heard[-1] > 0, "the answer's audio was transcribed"
    assert (session.fsm.rating, session.ledger.rating_source) == (4, "speech")
    assert metrics.ratings.labels(source="speech")._value.get() == 1
    await run_frames(port, [SILENCE_FRAME] * 60)  # the goodbye plays, then the server hangs up
    assert await asyncio.wait_for(task, 2) == "completed" and port.hung_up
    signals = session.summary().signals
    assert signals.rating == 4 and signals.task_completed and not signals.hung_up_while_speaking
    assert session.rate(5) == "finished"


async def test_a_consented_recording_is_named_in_the_call_record_and_holds_both_sides(
    speech: list[bytes], tmp_path: Path
) -> None:
    from tests.support.stereo import read_stereo
    from tomsip.recording.folder import RecordingFolder

    port = MemoryPort()
    plan = DialplanModel.model_validate({"name": "t", "default": True, "recording": {"mode": "ask"}})
    store, metrics = MemoryStore(), Metrics()
    brain = build_mock_pipeline().open(port.call_id, {"recording_prompt": "May I?"})
    folder = RecordingFolder(tmp_path, 30)
    session = CallSession(port, brain, Route(plan, "mock", None), store, metrics, recordings=folder)  # type: ignore[arg-type]
    task = asyncio.create_task(session.run())
    await asyncio.sleep(0)
    await run_frames(port, [SILENCE_FRAME] * 30)  # the 400 ms question, played: nothing recorded yet
    assert folder.files() == []
    session.on_dtmf("1")
    await run_frames(port, [SILENCE_FRAME] * 60 + speech + [SILENCE_FRAME] * 200)
    session.on_hangup("remote_hangup")
    await task
    [item] = folder.files()
    assert session.ledger.record.recording == item.name == folder.name_of(item.path)
    assert (await store.get_call(port.call_id)).recording == item.name  # type: ignore[union-attr]
    _, caller, assistant = read_stereo(item.path)
    assert np.abs(caller).max() > 3000 and np.abs(assistant).max() > 3000, "both sides are in it"
