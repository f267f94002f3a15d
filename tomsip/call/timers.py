"""The FSM's named timers on the event loop: one handle per name, re-arming replaces, and all of them
go when the call ends. The FSM only names them (StartTimer / CancelTimer); this keeps the handles."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tomsip.call.fsm import CancelTimer, StartTimer


class CallTimers:
    def __init__(self, fired: Callable[[str], None]) -> None:
        self._fired = fired
        self._handles: dict[str, asyncio.TimerHandle] = {}

    def carry_out(self, action: StartTimer | CancelTimer) -> None:
        if isinstance(action, StartTimer):
            self.start(action.name, action.ms)
        else:
            self.cancel(action.name)

    def start(self, name: str, ms: int) -> None:
        self.cancel(name)
        self._handles[name] = asyncio.get_running_loop().call_later(ms / 1000, self._fire, name)

    def cancel(self, name: str) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def _fire(self, name: str) -> None:
        self._handles.pop(name, None)
        self._fired(name)
