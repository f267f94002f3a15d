"""The SIP engine seam: what the composition root needs from any SIP stack.

An engine accepts inbound calls and hands each to `on_call` as an IncomingCall; the application
decides (admission, routing) and either refuses it or answers it and receives an AudioPort. A pjsua2
engine could implement the same where it installs (see shared/research/sip-stack.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from tomsip.audio.port import AudioPort


@dataclass(frozen=True)
class CallInfo:
    call_id: str
    caller: str  # the From URI: log only through mask_uri
    called: str  # the called number (To user part)
    source: str  # sending host, from the top Via
    transport: str


class IncomingCall(Protocol):
    info: CallInfo

    async def answer(self) -> AudioPort:
        """Answer with 200 OK and wait until media is up."""
        ...

    async def refuse(self) -> None:
        """Refuse the call (486 Busy Here)."""
        ...


OnCall = Callable[[IncomingCall], Awaitable[None]]


class NoTrunk(RuntimeError):
    """Outbound calls need a trunk: an outbound proxy or a registered trunk account."""


class DialFailed(Exception):
    """An outbound call that was not answered: `result` is busy, no_answer, rejected or failed, with
    the final SIP status when there was one."""

    def __init__(self, result: str, status: int | None = None, reason: str = "") -> None:
        super().__init__(f"{result} {status or ''} {reason}".strip())
        self.result = result
        self.status = status
        self.reason = reason


class OutgoingCall(Protocol):
    async def answered(self, ring_s: float) -> AudioPort:
        """Wait for the answer (at most `ring_s` of ringing) and media; raises DialFailed."""
        ...


class SipEngine(Protocol):
    async def start(self, on_call: OnCall) -> None: ...

    async def stop(self) -> None: ...

    def can_dial(self) -> bool:
        """Whether a trunk for outbound calls is configured."""
        ...

    async def dial(self, number: str, call_id: str, caller_id: str | None) -> OutgoingCall:
        """Send the INVITE for `number` through the trunk; raises NoTrunk or DialFailed."""
        ...

    async def dial_agent(self, uri: str, call_id: str) -> OutgoingCall:
        """Call a SIP URI (a warm transfer's human agent); raises DialFailed."""
        ...
