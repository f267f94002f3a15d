"""One outbound call on baresip-python, from our INVITE to the answer, and what its failure means.

The stack reports a call that never came up as CallBusy / CallDeclined / CallTimeout / CallFailed with
the final status; an operator wants the telephony outcome: busy, no answer (it rang and nobody took
it, or the far end said so with 408/480/487), rejected (any other final answer, with its code), or
failed (no answer at all: an unreachable trunk, a transport error).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

from baresip import BaresipError
from baresip.call import Call
from baresip.errors import CallBusy, CallDeclined, CallFailed, CallTimeout
from baresip.events import Event, StackEvent

from tomsip.audio.port import AudioPort
from tomsip.sip.engine import DialFailed

log = logging.getLogger("tomsip.sip.outgoing")

NO_ANSWER_STATUSES = {408, 480, 487}
BUSY_STATUSES = {486, 600}


def dial_failure(exc: CallFailed, rang: bool) -> DialFailed:
    """The outcome of a call the stack gave up on; `rang`: the far end said it was ringing."""
    status = exc.status
    if isinstance(exc, CallBusy) or status in BUSY_STATUSES:
        return DialFailed("busy", status or 486, exc.reason)
    if isinstance(exc, CallTimeout):
        return DialFailed("no_answer" if rang else "failed", None, "ring timeout" if rang else "no response")
    if isinstance(exc, CallDeclined):
        return DialFailed("rejected", status or 603, exc.reason)
    if status in NO_ANSWER_STATUSES:
        return DialFailed("no_answer", status, exc.reason)
    if status is not None:
        return DialFailed("rejected", status, exc.reason)
    return DialFailed("failed", None, exc.reason or str(exc))


class EarlyOutcomes:
    """The stack can answer a call before `dial` has returned its Call: a 486 on loopback comes back
    in a millisecond, and its CALL_CLOSED reaches the runtime's listeners before the Call exists to
    hear it (the Call would then wait for its ring time). This runtime-wide listener keeps the last
    outcome events of recent calls, so that a new outgoing call can pick up what it missed."""

    KEPT = 512

    def __init__(self) -> None:
        self._events: OrderedDict[int, StackEvent] = OrderedDict()

    def __call__(self, event: StackEvent) -> None:
        if event.event in (Event.CALL_CLOSED, Event.CALL_ESTABLISHED, Event.CALL_RINGING, Event.CALL_PROGRESS):
            if event.event is Event.CALL_CLOSED or self._events.get(event.call) is None:
                self._events[event.call] = event
            while len(self._events) > self.KEPT:
                self._events.popitem(last=False)

    def take(self, handle: int) -> StackEvent | None:
        return self._events.pop(handle, None)


class BaresipOutgoing:
    def __init__(self, call: Call, make_port: Callable[[Call], AudioPort], early: StackEvent | None = None) -> None:
        self._call = call
        self._make_port = make_port
        self._rang = early is not None and early.event in (Event.CALL_RINGING, Event.CALL_PROGRESS)
        self._early_close = early if early is not None and early.event is Event.CALL_CLOSED else None
        self._early_answer = early is not None and early.event is Event.CALL_ESTABLISHED
        call.on(self._on_event)

    def _on_event(self, event: StackEvent) -> None:
        if event.event in (Event.CALL_RINGING, Event.CALL_PROGRESS):
            self._rang = True

    async def answered(self, ring_s: float) -> AudioPort:
        established = False
        if self._early_close is not None:  # over before the Call could hear it
            self._call.off(self._on_event)
            raise dial_failure(CallFailed.from_close_reason(self._early_close.text or ""), self._rang)
        try:
            if not self._early_answer:
                await self._call.wait_established(timeout=ring_s)
            established = True
        except CallFailed as exc:
            raise dial_failure(exc, self._rang) from None
        finally:
            self._call.off(self._on_event)
            if not established and self._call.state.value != "closed":
                try:  # cancelled while ringing (shutdown): CANCEL it, leave nothing open in the stack
                    await self._call.hangup()
                except BaresipError:
                    pass
        return self._make_port(self._call)
