"""The assistant's turns: each streamed from the brain to the port as one task. The audio is queued
for paced playout as it comes, the text goes to the transcript, and the latency of the first audio is
measured from the caller's last voiced frame (voice to voice: what the caller waits). Cancelling the
task (a barge-in) stops the brain wherever it is."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from tomsip.audio.port import AudioPort
from tomsip.call import fsm
from tomsip.call.ledger import CallLedger
from tomsip.call.turn_taker import TurnTaker
from tomsip.speech.stages import CallBrain, Transcript, TurnLatency, TurnRequest


@dataclass
class ReplyOutcome:
    end_call: bool = False  # hang up once it has played
    transfer_to: str = ""  # hand the caller over once it has played
    audible: bool = False  # any audio came at all


async def stream_reply(
    brain: CallBrain,
    request: TurnRequest,
    latency: TurnLatency,
    *,
    play: Callable[[bytes], None],
    said: Callable[[str], None],
    first_audio: Callable[[], None],
    speech_end: float = 0.0,
) -> ReplyOutcome:
    """Stream turn `request`; `first_audio` is called once, when its first audio is queued.
    `speech_end` is the perf_counter() time of the caller's last voiced frame (0: not a reply to speech)."""
    started = time.perf_counter()
    out = ReplyOutcome()
    async for chunk in brain.turn(request, latency):
        if chunk.text:
            said(chunk.text)
        out.end_call = out.end_call or chunk.end_call
        out.transfer_to = out.transfer_to or chunk.transfer_to
        if chunk.pcm:
            play(chunk.pcm)
            if not out.audible:
                out.audible = True
                if speech_end:
                    latency.speech_end_to_audio_ms = (time.perf_counter() - speech_end) * 1000
                first_audio()
    if latency.first_audio_ms is None and out.audible:
        latency.first_audio_ms = (time.perf_counter() - started) * 1000
    return out


class TurnRunner:
    """The FSM's turns in flight: at most one task, streaming turn `n` to the port, cancelled by
    CancelTurn(n) or by the next turn; once its audio is queued, PlayoutDone(n) when the port has
    played it all. Errors reach the session's guard (`guarded`), which ends the call."""

    def __init__(
        self,
        brain: CallBrain,
        port: AudioPort,
        taker: TurnTaker,
        ledger: CallLedger,
        feed: Callable[[fsm.Event], None],
        guarded: Callable[[str, Coroutine[Any, Any, None]], Coroutine[Any, Any, None]],
    ) -> None:
        self._brain, self._port, self._taker, self._ledger = brain, port, taker, ledger
        self._feed, self._guarded = feed, guarded
        self._task: asyncio.Task[None] | None = None
        self._turn = 0
        self._awaiting_playout = 0

    def start(
        self, action: fsm.StartTurn, audio: bytes, speculation: Awaitable[Transcript | None] | None, speech_end: float
    ) -> None:
        self.cancel_all()
        request = TurnRequest(
            action.turn, action.kind, audio, action.speech_ms, action.digit, pending_transcript=speculation
        )
        self._turn = action.turn
        self._task = asyncio.get_running_loop().create_task(self._guarded("turn", self._run(request, speech_end)))

    def cancel(self, turn: int) -> None:
        if self._task is not None and self._turn == turn:
            self._task.cancel()
            self._task = None
        if self._awaiting_playout == turn:
            self._awaiting_playout = 0

    def cancel_all(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def check_playout(self) -> None:
        """Per frame: has the finished reply played out?"""
        if self._awaiting_playout and not self._port.playing:
            turn, self._awaiting_playout = self._awaiting_playout, 0
            self._feed(fsm.PlayoutDone(turn))

    async def _run(self, request: TurnRequest, speech_end: float) -> None:
        latency = TurnLatency()

        def play(pcm: bytes) -> None:
            self._port.play(pcm)
            self._taker.reply_audio(pcm)

        def first_audio() -> None:
            if latency.speech_end_to_audio_ms is not None:
                self._ledger.voice_to_voice(latency.speech_end_to_audio_ms)
            self._feed(fsm.ReplyStarted(request.turn))

        def said(text: str) -> None:
            self._ledger.said("assistant", text)

        reply = await stream_reply(
            self._brain, request, latency, play=play, said=said, first_audio=first_audio, speech_end=speech_end
        )
        self._port.end_of_reply()
        self._taker.reply_ended()
        self._ledger.turn_done(request.turn, latency)
        self._awaiting_playout = request.turn
        self._feed(fsm.ReplyFinished(request.turn, reply.end_call, reply.transfer_to))
