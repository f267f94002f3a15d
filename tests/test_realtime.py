"""Speech-to-speech: a CallSession over an in-memory port, its brain talking to a local server that
speaks the OpenAI Realtime protocol (tests/support/fake_realtime.py). The session, FSM, adapter,
WebSocket and event handling are real; the port is a stand-in for the transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.fake_realtime import FakeRealtimeServer
from tests.support.memory_port import MemoryPort
from tests.test_session import speech_frames
from tomsip.audio.frames import SILENCE_FRAME
from tomsip.call.dialplan import DialplanModel, Route
from tomsip.call.session import CallSession
from tomsip.conversation.turns import TurnKind
from tomsip.monitor.metrics import Metrics
from tomsip.settings import Settings
from tomsip.speech.realtime import RealtimeConfig, RealtimePipeline
from tomsip.speech.registry import build_pipeline
from tomsip.speech.stages import TurnLatency, TurnRequest
from tomsip.store.memory import MemoryStore

TICK_S = 0.005  # frames go in four times faster than real time; the fake sends five times faster
APOLOGY = b"\x10\x00" * 8000  # 0.5 s of a recognisable non-silence


@pytest.fixture
async def backend() -> AsyncIterator[FakeRealtimeServer]:
    server = await FakeRealtimeServer().start()
    yield server
    await server.stop()


class Call:
    def __init__(self, url: str, codec: str = "pcm16", protocol: str = "ga", barge_in: bool = True) -> None:
        self.metrics = Metrics()
        config = RealtimeConfig(url, "sk-test", "alloy", 3.0, "auto", protocol)
        self.pipeline = RealtimePipeline(config, self.metrics, APOLOGY)
        self.port = MemoryPort(codec=codec)
        plan = DialplanModel(name="rt", default=True, greeting="Hi there.")
        plan.settings.silence_ms = 500
        plan.settings.barge_in = barge_in
        self.brain = self.pipeline.open("rt-1", {"greeting": plan.greeting, "codec": codec})
        self.session = CallSession(self.port, self.brain, Route(plan, "realtime", None), MemoryStore(), self.metrics)  # type: ignore[arg-type]
        self.task: asyncio.Task[str] | None = None

    async def start(self) -> Call:
        self.task = asyncio.create_task(self.session.run())
        await asyncio.sleep(0)
        return self

    async def frames(self, frames: list[bytes]) -> None:
        for frame in frames:
            await self.port.tick(frame)
            await asyncio.sleep(TICK_S)

    async def until(self, state: str, limit: int = 600) -> None:
        for _ in range(limit):
            if self.session.fsm.state.value == state and not self.port.playing:
                return
            await self.frames([SILENCE_FRAME])
        raise AssertionError(f"still {self.session.fsm.state.value} after {limit} frames")

    async def reply(self, limit: int = 600) -> None:
        """Wait for the turn the caller's last words start, and for its audio to play out."""
        for _ in range(limit):
            if self.session.fsm.state.value != "listening":
                break
            await self.frames([SILENCE_FRAME])
        await self.until("listening", limit)

    async def end(self) -> None:
        self.session.on_hangup("remote_hangup")
        assert self.task is not None
        await self.task
        await self.pipeline.close()


@pytest.mark.parametrize(("codec", "protocol"), [("pcm16", "ga"), ("g711", "ga"), ("pcm16", "beta")])
async def test_greeting_and_reply_come_from_the_backend(backend: FakeRealtimeServer, codec: str, protocol: str) -> None:
    backend.beta = protocol == "beta"
    call = await Call(backend.url, codec, protocol).start()
    await call.until("listening")
    greeting_frames = len(call.port.sent)
    assert abs(greeting_frames * 20 - 2000) <= 100, "the backend's 2 s greeting played in full"
    await call.frames(speech_frames())
    await call.reply()
    assert abs((len(call.port.sent) - greeting_frames) * 20 - 2000) <= 100, "and its 2 s reply"
    assert backend.appended_ms >= 2500, "the caller's audio streamed to the backend"
    wanted = {"pcm16": ("pcm16", "audio/pcm"), "g711": ("g711_ulaw", "audio/pcmu")}[codec]
    session = backend.session
    fmt = session.get("input_audio_format") or session["audio"]["input"]["format"]["type"]  # type: ignore[index]
    assert fmt in wanted
    assert "response.create" in backend.types() and "input_audio_buffer.commit" in backend.types()
    assert call.metrics.speech_to_speech_latency_ms._sum.get() > 0
    assert call.session.ledger.record.latencies_ms["turn"] >= 0
    await call.end()


async def _talk_over_the_reply(call: Call) -> int:
    """Reach the reply, let it play 400 ms, then talk over it; returns frames of reply sent by then."""
    await call.until("listening")
    greeting = len(call.port.sent)
    await call.frames(speech_frames())
    for _ in range(400):
        if call.session.fsm.state.value == "speaking" and len(call.port.sent) - greeting >= 20:
            break
        await call.frames([SILENCE_FRAME])
    played = len(call.port.sent) - greeting
    await call.frames(speech_frames()[30:60])
    return played


async def test_the_backends_own_vad_barges_in_and_truncates_to_what_was_heard(backend: FakeRealtimeServer) -> None:
    call = await Call(backend.url, barge_in=False).start()  # only the backend can interrupt
    played = await _talk_over_the_reply(call)
    assert call.port.flushes == 1 and call.session.fsm.barge_ins == 1
    assert backend.truncates, "the backend was told what the caller heard"
    heard = backend.truncates[-1]["audio_end_ms"]
    assert backend.truncates[-1]["item_id"] == "item_2"
    assert played * 20 <= heard <= played * 20 + 200, (played, heard)  # type: ignore[operator]
    assert call.brain.late_deltas_dropped >= 1, "deltas of the cancelled response were dropped"
    await call.end()


async def test_local_barge_in_cancels_the_response_and_truncates(backend: FakeRealtimeServer) -> None:
    backend.vad = False
    call = await Call(backend.url).start()
    await _talk_over_the_reply(call)
    assert call.session.fsm.barge_ins == 1
    assert "response.cancel" in backend.types() and backend.truncates
    await call.end()


async def test_a_backend_error_is_an_apology_and_the_call_goes_on(backend: FakeRealtimeServer) -> None:
    call = await Call(backend.url).start()
    await call.until("listening")
    greeting = len(call.port.sent)
    backend.fail_next = True
    await call.frames(speech_frames())
    await call.reply()
    assert call.port.sent[greeting] == APOLOGY[:640], "the caller heard the apology"
    assert call.metrics.api_errors.labels(backend="realtime", kind="server_error")._value.get() == 1
    before = len(call.port.sent)
    await call.frames(speech_frames())
    await call.reply()
    assert len(call.port.sent) - before >= 95, "the next turn gets a real reply"
    await call.end()


async def test_malformed_events_are_counted_and_ignored(backend: FakeRealtimeServer) -> None:
    call = await Call(backend.url).start()
    await call.until("listening")
    for text in ("not json", '{"no": "type"}', '{"type": "response.output_audio.delta"}', '{"type": "error"}'):
        call.brain._on_event(text)
    assert call.metrics.api_errors.labels(backend="realtime", kind="malformed")._value.get() == 3
    await call.end()


async def test_an_unreachable_backend_apologises_and_the_probe_says_so(backend: FakeRealtimeServer) -> None:
    call = await Call("ws://127.0.0.1:9/v1/realtime").start()
    await call.until("listening")
    assert call.port.sent[0] == APOLOGY[:640]
    assert call.metrics.api_errors.labels(backend="realtime", kind="unreachable")._value.get() >= 1
    assert (await call.pipeline.probe())["ok"] is False
    await call.end()
    live = RealtimePipeline(RealtimeConfig(backend.url, None, "alloy", 3.0, "auto", "ga"), Metrics(), APOLOGY)
    assert (await live.probe())["ok"] is True
    await live.close()


async def test_the_registry_builds_the_pipeline_with_a_spoken_apology(backend: FakeRealtimeServer) -> None:
    pipeline = build_pipeline("realtime", Settings(pipeline="realtime", realtime_url=backend.url), Metrics())
    assert len(pipeline._apology) > 16000  # type: ignore[attr-defined]
    await pipeline.close()


async def test_reply_audio_carries_the_backends_transcript(backend: FakeRealtimeServer) -> None:
    pipeline = RealtimePipeline(RealtimeConfig(backend.url, None, "alloy", 3.0, "auto", "ga"), Metrics(), APOLOGY)
    brain = pipeline.open("rt-2", {"greeting": "Hi."})
    chunks = [c async for c in brain.turn(TurnRequest(1, TurnKind.GREETING), TurnLatency())]
    assert "".join(c.text for c in chunks) == "A tone for you."
    assert sum(len(c.pcm) for c in chunks) >= 32000 * 19 // 10, "and its 2 s of audio (16 kHz PCM16)"
    await brain.close()
    await pipeline.close()
