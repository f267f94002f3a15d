"""The composition root: builds settings, store, metrics, pipelines, the SIP engine and the web app,
and owns start-up, drain and shutdown. Nothing else knows all of these."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

from aiohttp import web

from tomsip.audio.media_clock import MediaClock
from tomsip.audio.port import AudioPort
from tomsip.bridge.browser_port import BrowserPort
from tomsip.bridge.gate import BrowserGate, GateConfig
from tomsip.bridge.page import page_routes
from tomsip.bridge.rtc import offer_host_candidates_on
from tomsip.bridge.ws_stream import HostBusy, StreamLimits, stream_route
from tomsip.call.conversation_limit import ConversationLimit, ConversationLimits, ConversationRefused
from tomsip.call.dialplan import DialplanError, Dialplans, Route
from tomsip.call.message_box import MessageBox
from tomsip.call.session import CallSession
from tomsip.conversation.rating import is_rating
from tomsip.learn.learner import Assignment, PolicyLearner
from tomsip.monitor.calls_view import CallsViewConfig, calls_routes
from tomsip.monitor.health import health_routes
from tomsip.monitor.logs import call_id_var
from tomsip.monitor.metrics import Metrics
from tomsip.outbound.api import OutboundApi, outbound_routes
from tomsip.outbound.dialer import DialerConfig
from tomsip.outbound.placing import OutboundCalls, OutboundConfig
from tomsip.outbound.request import (
    outbound_options,
)
from tomsip.recording.folder import RecordingFolder
from tomsip.security.tokens import AuthRefused, TokenVerifier, load_key
from tomsip.settings import Settings
from tomsip.sip.admission import Admission
from tomsip.sip.engine import IncomingCall, SipEngine
from tomsip.speech.calibration import TURN_EVERY_S
from tomsip.speech.phrase_cache import UnspeakablePhrase
from tomsip.speech.registry import build_pipeline
from tomsip.speech.stages import Pipeline
from tomsip.store.call_ids import CallIdClaimer
from tomsip.store.factory import build_store
from tomsip.tasks import cancel_and_wait

log = logging.getLogger("tomsip.app")


def brain_options(route: Route) -> dict[str, object]:
    """What a pipeline gets from the dialplan: its free [options], the greeting and, where the plan
    records, the recording notice or question."""
    recording = route.plan.recording
    extra = {"recording_prompt": recording.prompt} if recording.mode != "off" else {}
    if route.plan.transfer.mode == "warm" and route.plan.transfer.accept_digit:
        extra["agent_accept_digit"] = route.plan.transfer.accept_digit
    return {"greeting": route.plan.greeting, **extra, **route.plan.options}


def phrase_field(route: Route, text: str) -> str:
    """Which dialplan field holds words that cannot be spoken (for the start-up error)."""
    policy = next((p for p in route.plan.policies if p.name == route.policy), None)
    if " ".join(text.split()) == " ".join(route.plan.greeting.split()):
        return f"policies.{policy.name}.greeting" if policy is not None and policy.greeting else "greeting"
    if text == route.plan.options.get("rating_prompt"):
        return "options.rating_prompt"
    if route.plan.recording.mode != "off" and text == route.plan.recording.prompt:
        return f"recording.{'notice' if route.plan.recording.mode == 'announce' else 'question'}"
    return "(a built-in phrase)"


class App:
    def __init__(self, settings: Settings, engine: SipEngine | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store = build_store(
            settings.redis_url,
            settings.episode_log,
            settings.episode_log_max,
            on_error=lambda op: self.metrics.store_errors.labels(op=op).inc(),
            on_drop=self.metrics.store_dropped_writes.inc,
        )
        self.learner = PolicyLearner(self.store, self.metrics)
        self.dialplans = Dialplans.load(settings.dialplans, settings.pipeline)
        # Every pipeline a dialplan names is built now, and every dialplan's options checked against its
        # pipeline: a missing model, an unknown name or a bad option fails start-up, never a call.
        self.pipelines: dict[str, Pipeline] = {
            name: build_pipeline(name, settings, self.metrics) for name in sorted(self.dialplans.pipelines())
        }
        for route in self.dialplans.routes():
            pipeline = self.pipelines[route.pipeline]
            try:
                pipeline.check(brain_options(route))
            except ValueError as exc:
                raise DialplanError(f"{route.source or route.plan.name}: options: {exc}") from None
            try:
                pipeline.prepare(brain_options(route))
            except UnspeakablePhrase as exc:
                where = route.source or route.plan.name
                raise DialplanError(f"{where}: field {phrase_field(route, exc.text)}: {exc}") from None
        self.conversations = ConversationLimits(
            {name: self._conversation_limit(pipeline) for name, pipeline in self.pipelines.items()}
        )
        for name in self.pipelines:
            self.metrics.conversation_limit.labels(pipeline=name).set(self.conversations.limit(name))
        self.draining = False  # refuses every new conversation, SIP or browser
        self.admission = Admission(settings.max_calls, settings.invite_rate, settings.invite_burst)
        if engine is None:
            from tomsip.sip.baresip_engine import BaresipEngine

            engine = BaresipEngine(settings, self.metrics)
        self.engine = engine
        self.sessions: dict[str, CallSession] = {}
        self.node_name = settings.node_name or f"{socket.gethostname()}:{settings.sip_port}"
        self.bridge_clock = MediaClock(self.metrics.media_tick_seconds, self.metrics.media_tick_lateness_seconds)
        offer_host_candidates_on(settings.rtc_host)
        gate_config = GateConfig(
            settings.ws_connect_rate, settings.ws_connect_burst, tuple(settings.trusted_proxies), settings.jwt_leeway_s
        )
        self.call_ids = CallIdClaimer(self.store, self.node_name, settings.call_id_claim_ttl_s)
        self.gate = BrowserGate(gate_config, _verifier(settings), self.store, self.metrics, self.call_ids, self.busy)
        self._learning: set[asyncio.Task[None]] = set()
        self._answering = 0
        self.recordings: RecordingFolder | None = None
        if any(plan.recording.mode != "off" for plan in self.dialplans.plans()):
            self.recordings = RecordingFolder(settings.recordings_dir, settings.recordings_retention_days)
            self.recordings.check_writable()  # a folder that cannot take them stops start-up, not a call
        self._purging: asyncio.Task[None] | None = None
        self.messages = MessageBox(settings.messages_file)
        outbound = OutboundConfig(
            DialerConfig(settings.outbound_rate, settings.outbound_max, settings.outbound_queue),
            settings.outbound_ring_s,
            settings.status_callback_timeout_s,
            settings.status_callback_attempts,
            self.node_name,
        )
        self.outbound = OutboundCalls(
            outbound,
            self.engine,
            self.dialplans,
            self.conversations,
            self.store,
            self.metrics,
            self._converse,
            lambda: self.draining,
        )
        self._runner: web.AppRunner | None = None
        self._stopped = asyncio.Event()

    def _conversations_allowed(self, pipeline: Pipeline) -> int:
        """TOMSIP_MAX_CONVERSATIONS, or what the pipeline's calibration says this machine carries; a
        pipeline that costs this machine nothing (tones, a hosted backend) keeps the SIP ceiling."""
        ceiling = self.settings.max_calls
        if self.settings.max_conversations:
            limit = min(ceiling, self.settings.max_conversations)
            log.info("%s pipeline: conversation limit %d (TOMSIP_MAX_CONVERSATIONS)", pipeline.name, limit)
            return limit
        measured = pipeline.calibrate(self.settings.speech_cpu_budget)
        if measured is None:
            return ceiling
        log.info("%s pipeline calibrated: %s", pipeline.name, measured.describe())
        return min(ceiling, measured.conversations)

    def _conversation_limit(self, pipeline: Pipeline) -> ConversationLimit:
        """Where speech, not the SIP stack, is the constraint, answers are also paced: `limit` new
        calls per turn cycle (tomsip/call/conversation_limit.py)."""
        limit = self._conversations_allowed(pipeline)
        pace_s = TURN_EVERY_S / limit if limit < self.settings.max_calls else 0.0
        return ConversationLimit(
            limit, pipeline.queue_wait_s, self.settings.speech_busy_ms / 1000, pace_s, pipeline.busy_reason
        )

    def busy(self, to: str | None) -> str | None:
        """Why a new browser conversation to `to` is refused now (503), or None; `to` None: before the
        token is read, only what holds for every number (draining)."""
        if self.draining:
            return "draining"
        if to is None:
            return None
        route = self.dialplans.route(to)
        return self.conversations.refuse_reason(route.pipeline) if route is not None else None

    # ---- life cycle ----

    def web_app(self) -> web.Application:
        app = web.Application()
        app.add_routes(health_routes(self.metrics, self.readiness, self.speech_probe))
        s = self.settings
        limits = StreamLimits(s.ws_rate, s.ws_burst, s.ws_max_message, s.ws_start_timeout_s)
        app.add_routes([stream_route(self.gate, self, self.bridge_clock, limits, self.metrics)])
        app.add_routes(page_routes())
        token = self.settings.admin_token
        view = CallsViewConfig(token.get_secret_value() if token else None, self.settings.calls_show_transcripts)
        app.add_routes(calls_routes(self.store, view, self.local_words))
        outbound = OutboundApi(token.get_secret_value() if token else None, self.outbound.submit, self.outbound.status)
        app.add_routes(outbound_routes(outbound, self.metrics))
        return app

    async def start(self) -> None:
        await self.store.start()
        await self.learner.restore(self.dialplans.plans())
        self.bridge_clock.start()
        self.call_ids.start()
        # SIP first: /healthz answering is what says "ready" (to orchestrators, to tests), and an
        # INVITE sent on that word must find the stack's user agents there, not a 404.
        await self.engine.start(self.on_call)
        self.outbound.dialer.start()
        if self.recordings is not None:
            self._purging = asyncio.get_running_loop().create_task(self._purge_recordings(), name="purge")
        self._runner = web.AppRunner(self.web_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        log.info("tomsip ready; http on %s:%d", self.settings.http_host, self.settings.http_port)

    async def drain(self, timeout_s: float | None = None) -> None:
        """Refuse new calls, let live ones finish until the deadline, then end the rest with BYE."""
        timeout = self.settings.drain_timeout_s if timeout_s is None else timeout_s
        self.draining = True
        self.metrics.draining.set(1)
        log.info("draining: %d live calls, deadline %.0f s", len(self.sessions), timeout)
        deadline = time.monotonic() + timeout
        await self.outbound.dialer.close_queue()
        while (self.sessions or self._answering or self.outbound.dialer.in_progress) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for session in list(self.sessions.values()):
            session.request_hangup("drain")
        end = time.monotonic() + 5
        while self.sessions and time.monotonic() < end:
            await asyncio.sleep(0.05)
        if self._learning:  # the last calls' episodes
            await asyncio.wait(self._learning, timeout=max(0.1, end - time.monotonic()))
        log.info("drained")

    async def _purge_recordings(self) -> None:
        """Retention: recordings older than TOMSIP_RECORDINGS_RETENTION_DAYS go, at start and hourly."""
        assert self.recordings is not None
        while True:
            gone = await asyncio.to_thread(self.recordings.purge)
            if gone:
                log.info("purged %d recordings past retention", len(gone))
            await asyncio.sleep(3600)

    async def stop(self) -> None:
        await cancel_and_wait(self._purging)
        await self.outbound.stop()
        await self.engine.stop()
        await self.bridge_clock.stop()
        await self.call_ids.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.store.close()
        for pipeline in self.pipelines.values():
            await pipeline.close()
        self._stopped.set()

    async def readiness(self) -> dict[str, object]:
        store_ok = await self.store.ping()
        ready = store_ok and not self.draining
        return {
            "ready": ready,
            "draining": self.draining,
            "store": "ok" if store_ok else "unreachable",
            "active_calls": len(self.sessions),
            "max_calls": self.settings.max_calls,
            "max_conversations": {name: self.conversations.limit(name) for name in self.pipelines},
        }

    async def speech_probe(self) -> dict[str, object]:
        """GET /healthz/speech_api: can the configured speech backend serve a call right now?"""
        pipeline = self.pipelines.get(self.settings.pipeline) or next(iter(self.pipelines.values()))
        try:
            return await asyncio.wait_for(pipeline.probe(), 10)
        except Exception as exc:  # noqa: BLE001 - the probe reports, it never raises
            return {"pipeline": pipeline.name, "ok": False, "error": type(exc).__name__}

    # ---- calls ----

    async def on_call(self, incoming: IncomingCall) -> None:
        info = incoming.info
        call_id_var.set(info.call_id)
        active = len(self.sessions) + self._answering
        reason = "draining" if self.draining else self.admission.refuse_reason(info.source, active, time.monotonic())
        route = None if reason else self.dialplans.route(info.called)
        if reason is None and route is None:
            reason = "no_route"
        ring_s = 0.0
        if reason is None and route is not None:
            try:
                ring_s = self.conversations.take(route.pipeline, time.monotonic())
            except ConversationRefused as exc:
                reason = exc.reason
        if reason is not None or route is None:
            self.metrics.admission_refusals.labels(reason=reason).inc()
            log.info("call refused reason=%s", reason)
            await incoming.refuse()  # nothing was built for it: no session, no brain, no record
            return
        try:
            self._answering += 1
            try:
                ring_s = max(ring_s, route.plan.settings.answer_after_ms / 1000)
                if ring_s:
                    await asyncio.sleep(ring_s)
                port = await incoming.answer()
            except Exception as exc:  # noqa: BLE001 - CANCEL before answer, or media never came up
                self.metrics.calls.labels(outcome="not_answered").inc()
                log.info("call not established: %s", type(exc).__name__)
                return
            finally:
                self._answering -= 1
            await self._converse(port, route, info.transport, caller=info.caller)
        finally:
            self.conversations.release(route.pipeline)

    async def converse(self, port: BrowserPort, to: str, transport: str) -> str:
        """A browser conversation (tomsip/bridge): routed like a call to `to`, or to the default plan.
        Raises LookupError without a route, HostBusy when its pipeline is full (browsers are not paced:
        the client decides when it starts)."""
        if self.draining:
            raise LookupError("draining")
        route = self.dialplans.route(to) if to else self.dialplans.route("")
        if route is None:
            raise LookupError(f"no dialplan for {to!r}")
        try:
            self.conversations.take(route.pipeline)
        except ConversationRefused as exc:
            self.metrics.admission_refusals.labels(reason=exc.reason).inc()
            raise HostBusy(exc.reason) from None
        try:
            return (await self._converse(port, route, transport)).outcome
        finally:
            self.conversations.release(route.pipeline)

    async def _converse(
        self, port: AudioPort, route: Route, transport: str, context: dict[str, str] | None = None, caller: str = ""
    ) -> CallSession:
        """One conversation on any transport: policy, brain, session, and the episode it leaves.
        `context`: a call we placed (its request's variables)."""
        assignment = await self.learner.assign(route.plan)
        route = route.with_policy(assignment.policy)
        options = {**brain_options(route), "codec": port.codec}
        if route.outbound:
            options.update(outbound_options(route, context or {}))
        brain = self.pipelines[route.pipeline].open(port.call_id, options)
        session = CallSession(
            port,
            brain,
            route,
            self.store,
            self.metrics,
            transport=transport,
            node=self.node_name,
            vad_aggressiveness=self.settings.vad_aggressiveness,
            recordings=self.recordings,
            dial_agent=self.engine.dial_agent,
            messages=self.messages,
            caller=caller,
        )
        key = port.call_id
        while key in self.sessions:  # a reused Call-ID must not evict a live session
            key += "+"
        self.sessions[key] = session
        try:
            await session.run()
            return session
        finally:
            self.sessions.pop(key, None)
            self._learn_from(session, assignment)

    def local_words(self) -> dict[str, dict[str, str]]:
        """This node's live calls' last transcript lines (shown only when a setting allows)."""
        return {s.call_id: dict(s.ledger.last_words) for s in self.sessions.values()}

    def barge_in(self, call_id: str) -> None:
        session = self.sessions.get(call_id)
        if session is not None:
            session.barge_in()

    def _learn_from(self, session: CallSession, assignment: Assignment) -> None:
        """The finished call becomes an episode, off the call's path."""

        async def learn() -> None:
            try:
                summary = session.summary()
                await self.learner.finish(
                    session.route.plan,
                    assignment,
                    summary.call_id,
                    summary.outcome,
                    summary.signals,
                    summary.rating_source,
                )
            except Exception:
                self.metrics.episodes.labels("failed").inc()
                log.exception("learning from a finished call failed")

        task = asyncio.get_running_loop().create_task(learn())
        self._learning.add(task)
        task.add_done_callback(self._learning.discard)

    async def feedback(self, call_id: str, rating: object, source: str = "browser") -> str | None:
        """A rating for a call from outside its audio (the browser's rating event, issue 4): taken only
        for a live call on this node; returns why it was refused (counted), or None."""
        reason: str | None
        session = self.sessions.get(call_id)
        if not is_rating(rating):
            reason = "out_of_range"
        elif session is not None:
            reason = session.rate(rating, source)
        else:
            try:
                known = await self.store.get_call(call_id) is not None
            except Exception:  # noqa: BLE001 - unknown either way
                known = False
            reason = "finished" if known else "unknown_call"
        if reason is not None:
            self.metrics.feedback_refused.labels(reason=reason).inc()
            log.info("feedback refused reason=%s", reason)
        return reason


def _verifier(settings: Settings) -> TokenVerifier | None:
    """Browser sessions need a token key; without one they are refused (auth_not_configured)."""
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    try:
        key = load_key(secret, settings.jwt_public_key)
    except AuthRefused:
        return None
    except OSError as exc:
        raise DialplanError(f"jwt_public_key: cannot read {settings.jwt_public_key}: {exc}") from None
    return TokenVerifier(key, settings.jwt_algorithms, settings.jwt_leeway_s, settings.jwt_max_lifetime_s)
