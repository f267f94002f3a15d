"""A busy machine slows a turn, never ends a call: the filler while a reply is late, the apology when a
queue refuses or the deadline passes, both from the phrase cache with no inference, and the call
listening again afterwards. Real batching pool and phrase cache; the models are stand-ins."""

from __future__ import annotations

import asyncio

from tests.support.memory_port import MemoryPort
from tests.support.speech_doubles import CountingEngine, PooledStt, ScriptedConversation, ScriptedResponder, StuckModel
from tests.test_session import speech_frames
from tomsip.call.dialplan import DialplanModel, Route
from tomsip.call.session import CallSession
from tomsip.conversation.turns import TurnKind
from tomsip.monitor.metrics import Metrics
from tomsip.speech.batching import BatchingPool
from tomsip.speech.phrase_cache import CachedSpeech, PhraseCache
from tomsip.speech.staged_brain import APOLOGY, FILLER, StagedBrain, StagedPipeline
from tomsip.speech.stages import Transcript, TurnLatency, TurnRequest
from tomsip.store.memory import MemoryStore


def prepared_tts(metrics: Metrics) -> tuple[CachedSpeech, CountingEngine]:
    engine = CountingEngine()
    tts = CachedSpeech(engine, PhraseCache(counters=metrics), "joe")
    tts.pin(APOLOGY)
    tts.pin(FILLER)
    engine.asked.clear()
    return tts, engine


async def test_a_turn_stuck_behind_a_full_queue_hears_the_filler_then_its_reply() -> None:
    metrics = Metrics()
    model = StuckModel()
    pool: BatchingPool[bytes, Transcript] = BatchingPool("stt", model.run, workers=1, max_pending=4)
    tts, engine = prepared_tts(metrics)
    brain = StagedBrain(PooledStt(pool), ScriptedConversation(), tts, metrics, filler_after_s=0.1)
    request = TurnRequest(1, TurnKind.UTTERANCE, b"\x01" * 640)
    heard: list[str] = []

    async def listen() -> None:
        async for chunk in brain.turn(request, TurnLatency()):
            heard.append(chunk.text or "...")
            if chunk.text == FILLER:
                model.release.set()  # the queue drains once the caller has heard the filler

    await asyncio.wait_for(listen(), 5)
    pool.close()
    assert heard == [FILLER, "You said Tuesday."]
    assert engine.asked == ["You said Tuesday."]  # the filler needed no inference
    assert metrics.fillers._value.get() == 1


async def test_a_turn_refused_by_a_full_queue_apologises_from_the_cache_and_the_call_goes_on() -> None:
    metrics = Metrics()
    model = StuckModel()
    pool: BatchingPool[bytes, Transcript] = BatchingPool("stt", model.run, workers=1, max_pending=0)
    tts, engine = prepared_tts(metrics)
    brain = StagedBrain(PooledStt(pool), ScriptedConversation(), tts, metrics)
    blocker = asyncio.ensure_future(pool.run(b"\x01" * 640))  # takes the only place
    await asyncio.sleep(0.05)
    chunks = [c async for c in brain.turn(TurnRequest(1, TurnKind.UTTERANCE, b"\x01" * 640), TurnLatency())]
    assert [c.text for c in chunks] == [APOLOGY, ""]  # two sentences, both from the cache
    assert engine.asked == []
    assert metrics.api_errors.labels(backend="stt", kind="overloaded")._value.get() == 1
    model.release.set()
    assert (await blocker).text == "Tuesday"
    pool.close()


async def test_a_reply_still_late_at_the_deadline_gives_way_to_the_apology() -> None:
    metrics = Metrics()
    model = StuckModel()
    pool: BatchingPool[bytes, Transcript] = BatchingPool("stt", model.run, workers=1, max_pending=4)
    tts, engine = prepared_tts(metrics)
    brain = StagedBrain(PooledStt(pool), ScriptedConversation(), tts, metrics, filler_after_s=0.1, deadline_s=0.4)
    chunks = [c async for c in brain.turn(TurnRequest(1, TurnKind.UTTERANCE, b"\x01" * 640), TurnLatency())]
    assert [c.text for c in chunks if c.text] == [FILLER, APOLOGY]
    assert engine.asked == []
    assert metrics.api_errors.labels(backend="reply", kind="timeout")._value.get() == 1
    assert pool.waiting == 0, "the abandoned job was dropped from the queue"
    model.release.set()
    pool.close()


async def test_a_call_whose_queue_stays_full_hears_filler_and_apology_and_goes_on() -> None:
    """A whole CallSession over an in-memory port: the caller's words wait behind a stuck model (its
    speculative transcription too), the caller hears the filler, then the apology, and nobody hangs
    up; once the model is free again, the next utterance gets its real reply."""
    metrics = Metrics()
    model = StuckModel()
    pool: BatchingPool[bytes, Transcript] = BatchingPool("stt", model.run, workers=1, max_pending=4)
    engine = CountingEngine()
    tts = CachedSpeech(engine, PhraseCache(counters=metrics), "joe")
    pipeline = StagedPipeline(
        "local", PooledStt(pool), ScriptedResponder(), tts, metrics, filler_after_ms=300, deadline_ms=900
    )
    plan = DialplanModel(name="t", default=True, greeting="Hello.")
    pipeline.prepare({"greeting": plan.greeting})
    engine.asked.clear()
    port = MemoryPort()
    brain = pipeline.open(port.call_id, {"greeting": plan.greeting})
    session = CallSession(port, brain, Route(plan, "local", None), MemoryStore(), metrics)  # type: ignore[arg-type]
    call = asyncio.ensure_future(session.run())
    await asyncio.sleep(0)  # the session attaches to the port

    async def live(seconds: float, frames: list[bytes] | None = None) -> None:
        """Feed the caller's frames (then silence) in real time, 20 ms apiece."""
        pending = list(frames or [])
        for _ in range(int(seconds / 0.02)):
            await port.tick(pending.pop(0) if pending else bytes(640))
            await asyncio.sleep(0.02)

    speech = speech_frames()
    await live(1.0)  # the greeting plays
    await live(len(speech) * 0.02 + 2.0, speech)  # speaks; the turn waits behind the stuck model
    said = [text for role, text in session.ledger.last_words.items() if role == "assistant"]
    assert metrics.fillers._value.get() == 1
    assert metrics.api_errors.labels(backend="reply", kind="timeout")._value.get() == 1
    assert said == [APOLOGY] and not port.hung_up and not call.done()
    model.release.set()  # the machine catches up
    await live(len(speech) * 0.02 + 2.0, speech)
    assert session.ledger.last_words["assistant"] == "You said Tuesday."
    assert not port.hung_up and not call.done()
    assert engine.asked == ["You said Tuesday."], "filler and apology came from the cache"
    session.request_hangup("test")
    await live(0.3)
    assert await asyncio.wait_for(call, 5) != "error"
    pool.close()


async def test_the_deadline_holds_with_the_filler_turned_off() -> None:
    metrics = Metrics()
    model = StuckModel()
    pool: BatchingPool[bytes, Transcript] = BatchingPool("stt", model.run, workers=1, max_pending=4)
    tts, _ = prepared_tts(metrics)
    brain = StagedBrain(PooledStt(pool), ScriptedConversation(), tts, metrics, filler_after_s=0, deadline_s=0.3)
    chunks = [c async for c in brain.turn(TurnRequest(1, TurnKind.UTTERANCE, b"\x01" * 640), TurnLatency())]
    assert [c.text for c in chunks if c.text] == [APOLOGY]
    assert metrics.fillers._value.get() == 0
    model.release.set()
    pool.close()
