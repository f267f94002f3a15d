"""The hosted chat responder against a local OpenAI-compatible server streaming server-sent events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.support.fake_chat import FakeChatServer
from tomsip.conversation.turns import TurnKind
from tomsip.monitor.metrics import Metrics
from tomsip.speech.chat import ChatClient, ChatConfig, ChatResponder
from tomsip.speech.staged_brain import APOLOGY, StagedBrain
from tomsip.speech.stages import Transcript, TurnLatency, TurnRequest


class WordsStt:
    """Stands in for STT: the 'audio' is the text."""

    async def transcribe(self, audio: bytes) -> Transcript:
        return Transcript(audio.decode())


class TextTts:
    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        yield text.encode()


@pytest.fixture
async def chat() -> AsyncIterator[FakeChatServer]:
    server = await FakeChatServer().start()
    yield server
    await server.stop()


def client_for(server: FakeChatServer, timeout_s: float = 2.0) -> ChatClient:
    return ChatClient(ChatConfig(server.base_url, "fake-model", "sk-test", timeout_s, max_history=6))


async def say(brain: StagedBrain, text: str, turn: int = 1) -> list[tuple[float, object]]:
    request = TurnRequest(turn, TurnKind.UTTERANCE, text.encode())
    return [(time.perf_counter(), chunk) async for chunk in brain.turn(request, TurnLatency())]


async def test_sentences_are_spoken_as_they_stream_and_history_is_per_call(chat: FakeChatServer) -> None:
    client = client_for(chat)
    responder = ChatResponder(client)
    brain = StagedBrain(WordsStt(), responder.open("a", {"greeting": "Hi."}), TextTts())
    other = StagedBrain(WordsStt(), responder.open("b", {}), TextTts())
    started = time.perf_counter()
    chunks = await say(brain, "I want an appointment")
    texts = [c.pcm.decode() for _, c in chunks]  # type: ignore[attr-defined]
    assert texts[:2] == ["Sure.", "Tuesday at ten works."] and texts[-1] == "Shall I book it?"
    assert [c.text for _, c in chunks] == texts, "each sentence's audio says what it is (transcript events)"  # type: ignore[attr-defined]
    assert chunks[1][0] - started < chat.pause_s, "the first sentences came before the stream ended"
    await say(brain, "Yes please", turn=2)
    await say(other, "Hello there")
    second, third = chat.requests[1]["messages"], chat.requests[2]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]  # type: ignore[index]
    assert second[2]["content"] == "Sure. Tuesday at ten works. Shall I book it?"  # type: ignore[index]
    assert len(third) == 2, "another call does not see this call's history"  # type: ignore[arg-type]
    assert chat.auth[0] == "Bearer sk-test"
    await client.close()


async def test_markers_end_or_transfer_the_call_and_are_never_spoken(chat: FakeChatServer) -> None:
    client = client_for(chat)
    conv = ChatResponder(client).open("c", {"transfer_uri": "sip:desk@127.0.0.1"})
    brain = StagedBrain(WordsStt(), conv, TextTts())
    bye = [c for _, c in await say(brain, "ok bye")]
    assert bye[-1].end_call and "[hangup]" not in b"".join(c.pcm for c in bye).decode()  # type: ignore[attr-defined]
    human = [c for _, c in await say(brain, "a human please", turn=2)]
    assert human[-1].transfer_to == "sip:desk@127.0.0.1"  # type: ignore[attr-defined]
    assert "transfer" not in b"".join(c.pcm for c in human).decode()  # type: ignore[attr-defined]
    await client.close()


@pytest.mark.parametrize(("text", "kind"), [("error", "http_500"), ("slow", "timeout"), ("garbage", "malformed")])
async def test_api_failures_are_an_apology_and_a_counted_error(chat: FakeChatServer, text: str, kind: str) -> None:
    metrics = Metrics()
    client = client_for(chat, timeout_s=0.5)
    brain = StagedBrain(WordsStt(), ChatResponder(client).open("d", {}), TextTts(), metrics)
    spoken = [c.pcm.decode() for _, c in await say(brain, text)]  # type: ignore[attr-defined]
    assert spoken == [APOLOGY]
    assert metrics.api_errors.labels(backend="chat", kind=kind)._value.get() == 1
    again = [c.pcm.decode() for _, c in await say(brain, "hello again", 2)]  # type: ignore[attr-defined]
    assert again[0] == "Sure.", "the call goes on"
    await client.close()


async def test_an_unreachable_endpoint_is_an_apology_and_the_probe_says_so(chat: FakeChatServer) -> None:
    metrics = Metrics()
    dead = ChatClient(ChatConfig("http://127.0.0.1:9/v1", "m", None, 0.5, 6))
    brain = StagedBrain(WordsStt(), ChatResponder(dead).open("e", {}), TextTts(), metrics)
    assert [c.pcm.decode() for _, c in await say(brain, "hello")] == [APOLOGY]  # type: ignore[attr-defined]
    assert metrics.api_errors.labels(backend="chat", kind="unreachable")._value.get() == 1
    assert (await dead.probe())["ok"] is False
    live = client_for(chat)
    assert (await live.probe())["ok"] is True
    await dead.close()
    await live.close()


async def test_barge_in_cancels_the_stream_and_history_says_interrupted(chat: FakeChatServer) -> None:
    chat.pause_s = 2.0
    client = client_for(chat)
    conv = ChatResponder(client).open("f", {})
    brain = StagedBrain(WordsStt(), conv, TextTts())
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in brain.turn(TurnRequest(1, TurnKind.UTTERANCE, b"book me in"), TurnLatency()):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(40):  # the server notices when it next writes, after its pause
        if chat.disconnected:
            break
        await asyncio.sleep(0.1)
    assert chat.disconnected == 1, "the HTTP stream was closed, so the model stops writing for us"
    assert conv.history[-1]["content"].endswith("(interrupted)")
    await client.close()
