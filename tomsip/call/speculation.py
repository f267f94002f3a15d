"""The call's one speculative transcription in flight (the turn taker's Transcribe request).

It is started during a pause, dropped when the caller goes on (counted as stale), or handed to the
turn that answers the utterance, which awaits it (counted as used, or failed when nothing came back).
Its result, while it is still the current one, goes back to the turn taker through `on_result`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tomsip.call.ledger import CallLedger
from tomsip.speech.stages import Transcript

Transcription = asyncio.Task[Transcript | None]


class Speculation:
    def __init__(
        self,
        transcribe: Callable[[bytes], Awaitable[Transcript | None]],
        ledger: CallLedger,
        on_result: Callable[[Transcription], None],
    ) -> None:
        self._transcribe = transcribe
        self._ledger = ledger
        self._on_result = on_result
        self._task: Transcription | None = None

    def start(self, audio: bytes) -> None:
        self.drop()
        self._task = task = asyncio.get_running_loop().create_task(self._run(audio))
        task.add_done_callback(self._done)

    def drop(self, outcome: str = "") -> None:
        """Cancel it; `outcome` (when not empty) is counted."""
        if self._task is not None:
            if outcome:
                self._ledger.speculation(outcome)
            self._task.cancel()
            self._task = None

    def hand_over(self) -> Transcription | None:
        """The turn takes it over: it is no longer this call's to drop."""
        task, self._task = self._task, None
        if task is not None:
            task.add_done_callback(self._used)
        return task

    async def _run(self, audio: bytes) -> Transcript | None:
        return await self._transcribe(audio)

    def _done(self, task: Transcription) -> None:
        if task is self._task and not task.cancelled():
            self._on_result(task)

    def _used(self, task: Transcription) -> None:
        if not task.cancelled() and task.exception() is None:
            transcript = task.result()
            self._ledger.speculation("used" if transcript else "failed")
            if transcript is not None and transcript.text:
                self._ledger.said("caller", transcript.text)
