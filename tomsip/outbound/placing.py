"""Calls tomsip places, end to end: the API's request is queued (tomsip/outbound/dialer.py paces it),
admitted by the same speech capacity as an inbound call when its turn comes, dialled through the
trunk, and, once answered, handed to the composition root's `converse` like any call. Every call's
result is counted, logged (number masked), recorded when no session wrote a record, and POSTed to
its status_url.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tomsip.audio.port import AudioPort
from tomsip.call.conversation_limit import ConversationLimits, ConversationRefused
from tomsip.call.dialplan import Dialplans, Route
from tomsip.call.session import CallSession
from tomsip.monitor.logs import call_id_var, mask_number
from tomsip.monitor.metrics import Metrics
from tomsip.outbound.api import Refused
from tomsip.outbound.dialer import Dialer, DialerConfig
from tomsip.outbound.request import OutboundCall, OutboundRequest, not_answered_record, record_view
from tomsip.outbound.status import StatusCallbacks
from tomsip.sip.engine import DialFailed, SipEngine
from tomsip.store.base import Store

log = logging.getLogger("tomsip.outbound")

# converse(port, route, transport, context, caller): the conversation, as the composition root runs it
Converse = Callable[[AudioPort, Route, str, dict[str, str], str], Awaitable[CallSession]]


@dataclass(frozen=True)
class OutboundConfig:
    pacing: DialerConfig
    ring_s: int  # TOMSIP_OUTBOUND_RING_S, unless the dialplan says
    callback_timeout_s: float
    callback_attempts: int
    node: str


class OutboundCalls:
    def __init__(
        self,
        config: OutboundConfig,
        engine: SipEngine,
        dialplans: Dialplans,
        conversations: ConversationLimits,
        store: Store,
        metrics: Metrics,
        converse: Converse,
        draining: Callable[[], bool],
    ) -> None:
        self._config, self._engine, self._dialplans = config, engine, dialplans
        self._conversations, self._store, self._metrics = conversations, store, metrics
        self._converse, self._draining = converse, draining
        self.dialer = Dialer(config.pacing, self._place, self._placed, metrics)
        self.callbacks = StatusCallbacks(config.callback_timeout_s, config.callback_attempts, metrics)

    def submit(self, request: OutboundRequest) -> OutboundCall:
        """POST /api/calls: queue the call, or say why not (Refused, QueueFull)."""
        if self._draining():
            raise Refused(503, "draining")
        if not self._engine.can_dial():
            raise Refused(409, "no_trunk", "set TOMSIP_OUTBOUND_PROXY or TOMSIP_TRUNK_REGISTRAR")
        if self._dialplans.named(request.dialplan) is None:
            raise Refused(400, "unknown_dialplan", f"no dialplan named {request.dialplan[:64]!r}")
        call = OutboundCall(request)
        self.dialer.submit(call)
        log.info("outbound call queued to=%s dialplan=%s", mask_number(request.to), request.dialplan)
        return call

    async def status(self, call_id: str) -> dict[str, object] | None:
        """GET /api/calls/{id}: this node's memory of the call, else its record."""
        call = self.dialer.get(call_id)
        if call is not None:
            return call.view()
        try:
            record = await self._store.get_call(call_id)
        except Exception:  # noqa: BLE001 - unknown either way
            return None
        return record_view(record) if record is not None and record.direction == "outbound" else None

    async def stop(self) -> None:
        await self.dialer.stop()
        await self.callbacks.close()

    async def _place(self, call: OutboundCall) -> None:
        """The dialer's turn for `call`: a call we cannot carry is not placed."""
        call_id_var.set(call.id)
        route = self._dialplans.named(call.request.dialplan)
        if route is None or self._draining():
            call.finish("not_placed", "draining" if self._draining() else "unknown_dialplan")
            return
        try:
            pace_s = self._conversations.take(route.pipeline, time.monotonic())
        except ConversationRefused as exc:
            call.finish("not_placed", exc.reason)
            return
        try:
            if pace_s:
                await asyncio.sleep(pace_s)
            await self._dial(call, route)
        finally:
            self._conversations.release(route.pipeline)

    async def _dial(self, call: OutboundCall, route: Route) -> None:
        request = call.request
        call.state = "dialing"
        log.info("placing outbound call to=%s", mask_number(request.to))
        started = time.monotonic()
        try:
            outgoing = await self._engine.dial(request.to, call.id, request.caller_id)
            port = await outgoing.answered(route.plan.outbound.ring_s or self._config.ring_s)
        except DialFailed as exc:
            call.finish(exc.result, exc.reason[:200], exc.status)
            return
        call.answer_s = round(time.monotonic() - started, 2)
        self._metrics.outbound_answer_seconds.observe(call.answer_s)
        call.state = "in_call"
        session = await self._converse(port, route.placed(), "udp", request.context, request.to)
        record = session.ledger.record
        call.outcome, call.answered_by = session.outcome, record.answered_by
        call.duration_s, call.amd_ms = record.duration_s, record.latencies_ms.get("amd")
        call.finish("answered")

    def _placed(self, call: OutboundCall) -> None:
        """Every outbound call's result: metric, log line, record (when no session wrote one), callback."""
        self._metrics.outbound_calls.labels(result=call.result).inc()
        log.info(
            "outbound call result=%s status=%s answered_by=%s",
            call.result,
            call.sip_status or "-",
            call.answered_by or "-",
            extra={"call_id": call.id},
        )
        if call.result != "answered":
            try:
                self._store.save_call(not_answered_record(call, self._config.node, time.time()), ended=True)
            except Exception:  # noqa: BLE001 - the record is best effort, the result stands
                self._metrics.store_errors.labels(op="write").inc()
        self.callbacks.send(call)
