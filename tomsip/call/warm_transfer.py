"""Warm transfer: the caller waits on hold music while the assistant calls a person, tells them who
is waiting (the brain's briefing, spoken to the agent), and connects the two once the agent accepts
(answers, or presses the dialplan's key). Connecting is an attended transfer (REFER with Replaces:
the two talk directly, we leave) where the caller's side offered Replaces, else a bridge: each
side's frames are played to the other through their paced ports until one of them hangs up.

Anything short of an agent who accepts (no answer, busy, declined, no key in time, hung up during
the briefing) raises TransferUnavailable; the session then tells the FSM, which offers to take a
message. The agent's leg is ours to end in every case but a REFER that was taken.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tomsip.audio.hold_music import hold_cycle
from tomsip.audio.port import AudioPort
from tomsip.conversation.turns import TurnKind
from tomsip.sip.engine import DialFailed, OutgoingCall
from tomsip.speech.stages import CallBrain, TurnLatency, TurnRequest

DialAgent = Callable[[str, str], Awaitable[OutgoingCall]]
BRIEFING_TURN = 10_000  # the briefing is not one of the caller's turns
REFERRED_LEG_GUARD_S = 30.0  # after a REFER: the agent's side ends the replaced leg; if not, we do


class TransferUnavailable(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TransferPlan:
    ring_s: float
    accept_digit: str  # "" : answering is accepting
    accept_s: float


class AgentLeg:
    """The agent's side of the call, as a port listener: their keys, their hang-up, and (bridged)
    their voice forwarded to the caller."""

    def __init__(self) -> None:
        self.digits: asyncio.Queue[str] = asyncio.Queue()
        self.gone = asyncio.Event()
        self.forward_to: AudioPort | None = None

    def on_frame(self, frame: bytes) -> None:
        if self.forward_to is not None:
            self.forward_to.play(frame)

    def on_dtmf(self, digit: str) -> None:
        self.digits.put_nowait(digit)

    def on_hangup(self, reason: str) -> None:
        self.gone.set()

    def on_hold(self, held: bool) -> None:
        return None


class WarmTransfer:
    def __init__(
        self,
        caller: AudioPort,
        brain: CallBrain,
        dial_agent: DialAgent,
        plan: TransferPlan,
        log: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self._caller, self._brain, self._dial, self._plan, self._log = caller, brain, dial_agent, plan, log
        self._leg = AgentLeg()
        self.agent: AudioPort | None = None
        self.bridged = False
        self.referred = False
        self.handing_over = False  # the REFER is out: the caller's leg closing now means it was taken
        self.counted = False  # the session has booked the referral

    async def connect(self, target: str) -> str:
        """Hold, call, brief, accept, connect: "referred" or "bridged"; raises TransferUnavailable."""
        holding = asyncio.get_running_loop().create_task(self._hold_music())
        try:
            self.agent = await self._call_agent(target)
            await self._brief(self.agent)
            if self._plan.accept_digit:
                await self._wait_for_acceptance()
        except BaseException:
            await self.close()
            raise
        finally:
            holding.cancel()
            self._caller.flush()
        self.handing_over = True
        if await self._caller.attended_transfer(self.agent):
            self.referred = True
            return "referred"
        self.handing_over = False
        self._leg.forward_to = self._caller
        self.bridged = True
        return "bridged"

    def from_caller(self, frame: bytes) -> None:
        """Bridged: a frame of the caller's voice, for the agent."""
        if self.bridged and self.agent is not None:
            self.agent.play(frame)

    async def agent_gone(self) -> None:
        await self._leg.gone.wait()

    async def close(self) -> None:
        """End the agent's leg (not after a REFER was taken: the agent's side ends it, or the guard)."""
        agent, self.agent = self.agent, None
        if agent is None:
            return
        self.bridged = False
        if self.referred or self.handing_over:
            loop = asyncio.get_running_loop()
            loop.call_later(REFERRED_LEG_GUARD_S, lambda: loop.create_task(agent.hangup()))
            return
        await agent.hangup()

    # ---- inside ----

    async def _hold_music(self) -> None:
        while True:
            if not self._caller.playing:
                self._caller.play(hold_cycle())
            await asyncio.sleep(0.5)

    async def _call_agent(self, target: str) -> AudioPort:
        try:
            outgoing = await self._dial(target, f"{self._caller.call_id}-agent")
            agent = await outgoing.answered(self._plan.ring_s)
        except DialFailed as exc:
            raise TransferUnavailable(exc.result) from None
        agent.attach(self._leg)
        self._log.info("warm transfer: the agent answered")
        return agent

    async def _brief(self, agent: AudioPort) -> None:
        request = TurnRequest(BRIEFING_TURN, TurnKind.BRIEFING)
        async for chunk in self._brain.turn(request, TurnLatency()):
            if chunk.pcm:
                agent.play(chunk.pcm)
        agent.end_of_reply()
        while agent.playing:
            if self._leg.gone.is_set():
                raise TransferUnavailable("agent_hung_up")
            await asyncio.sleep(0.05)

    async def _wait_for_acceptance(self) -> None:
        async def accepted() -> None:
            while await self._leg.digits.get() != self._plan.accept_digit:
                continue

        gone = asyncio.ensure_future(self._leg.gone.wait())
        pressed = asyncio.ensure_future(accepted())
        try:
            done, _ = await asyncio.wait({gone, pressed}, timeout=self._plan.accept_s, return_when="FIRST_COMPLETED")
        finally:
            gone.cancel()
            pressed.cancel()
        if pressed not in done:
            raise TransferUnavailable("agent_hung_up" if gone in done else "not_accepted")
