"""CallSession: the thin asyncio driver of one conversation.

The decisions live in pure parts: the call FSM (tomsip/call/fsm.py) decides what the call does, the
turn taker (tomsip/call/turn_taker.py) what the caller's audio means, and the ledger
(tomsip/call/ledger.py) keeps the books. The session wires them to one AudioPort and one brain: it
hands frames to the turn taker, feeds what it hears to the FSM, serves its transcription requests, and
carries out the FSM's actions. Anything that goes wrong inside this call goes through one guard and
ends this call (BYE, a log line, a metric), nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from tomsip.audio.frames import FRAME_MS
from tomsip.audio.port import AudioPort
from tomsip.call import fsm
from tomsip.call.answer_watch import AnswerWatch
from tomsip.call.dialplan import Route
from tomsip.call.ledger import CallLedger, CallSummary, Conduct
from tomsip.call.message_box import MessageBox
from tomsip.call.reply import TurnRunner
from tomsip.call.speculation import Speculation, Transcription
from tomsip.call.timers import CallTimers
from tomsip.call.turn_taker import DropSpeculation, EchoSuppressed, Heard, Rejoined, Transcribe, TurnTaker
from tomsip.call.warm_transfer import DialAgent, TransferPlan, TransferUnavailable, WarmTransfer
from tomsip.conversation.rating import is_rating
from tomsip.conversation.turns import TurnKind
from tomsip.monitor.logs import call_id_var
from tomsip.monitor.metrics import Metrics
from tomsip.recording.folder import RecordingFolder
from tomsip.recording.recorder import CallRecording
from tomsip.speech.intents import find_consent, find_rating
from tomsip.speech.stages import CallBrain
from tomsip.store.base import CallRecord, Store

log = logging.getLogger("tomsip.call")

MESSAGE_GRACE_S = 15.0


class CallSession:
    def __init__(
        self,
        port: AudioPort,
        brain: CallBrain,
        route: Route,
        store: Store,
        metrics: Metrics,
        *,
        transport: str = "",
        node: str = "",
        vad_aggressiveness: int = 2,
        wall_clock: Callable[[], float] = time.time,
        recordings: RecordingFolder | None = None,
        dial_agent: DialAgent | None = None,
        messages: MessageBox | None = None,
        caller: str = "",
    ) -> None:
        self.port, self.brain, self.route, self.metrics = port, brain, route, metrics
        self.fsm = fsm.CallFsm(route.fsm_config)
        self._taker = TurnTaker.for_route(route, vad_aggressiveness)
        self.log = logging.LoggerAdapter(log, {"call_id": port.call_id})
        now = wall_clock()
        record = CallRecord(port.call_id, self.fsm.state.value, now, now, transport, port.codec, route.plan.name)
        record.policy, record.node = route.policy, node
        if route.outbound:
            record.direction, record.result = "outbound", "answered"
        self.ledger = CallLedger(record, store, metrics, self.log, wall_clock, port.notify)
        self._timers = CallTimers(lambda name: self._guard("timer", self._feed, fsm.TimerFired(name)))
        self._speculation = Speculation(
            brain.transcribe, self.ledger, lambda task: self._guard("turn_taking", self._transcribed, task)
        )
        self._last_voiced_at = self._speech_end_at = 0.0
        self._turns = TurnRunner(brain, port, self._taker, self.ledger, self._feed, self._guarded)
        config = self.fsm.config
        self._watch = AnswerWatch(leave_message=config.leave_voicemail) if config.detect_answer else None
        self._hangup_task: asyncio.Task[None] | None = None
        self._rating_task: asyncio.Task[None] | None = None
        self._consent_task: asyncio.Task[None] | None = None
        self._recordings = recordings
        self._recording: CallRecording | None = None
        self._dial_agent, self._messages, self._caller = dial_agent, messages, caller
        t = route.plan.transfer
        self._transfer_plan = TransferPlan(t.ring_s, t.accept_digit, t.accept_s)
        self._warm: WarmTransfer | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()  # a warm transfer (cancelled when the call ends)
        self._message_tasks: set[asyncio.Task[None]] = set()  # a message being written (awaited)
        self._ended = asyncio.Event()
        self._outcome = ""
        brain.on_barge_in(self.barge_in)

    @property
    def call_id(self) -> str:
        return self.port.call_id

    async def run(self) -> str:
        """Drive the call until it ends; returns the outcome."""
        call_id_var.set(self.call_id)
        self.ledger.started()
        try:
            self.port.attach(self)
            self._feed(fsm.CallStarted())
            await self._ended.wait()
        finally:
            await self._cleanup()
        return self._outcome

    def request_hangup(self, reason: str) -> None:
        """Operator or drain: end the call now, with BYE."""
        self._guard("hangup", self._feed, fsm.LocalHangupRequested(reason))

    def barge_in(self) -> None:
        """The caller talked over the reply, as a browser's VAD or a speech-to-speech backend heard it."""
        self._guard("barge_in", self._feed, fsm.BackendBargeIn())

    def rate(self, value: int, source: str = "browser") -> str | None:
        """A rating from outside the audio; returns why it was refused, or None when it was taken."""
        if self.fsm.state is fsm.State.ENDED:
            return "finished"
        if not is_rating(value):
            return "out_of_range"
        self._feed(fsm.RatingGiven(value, source))
        return None if self.fsm.rating == value else "finished"

    def summary(self) -> CallSummary:
        f = self.fsm
        conduct = Conduct(self.brain.task_completed(), f.hung_up_while_speaking, f.barge_ins, f.rating)
        return self.ledger.summary(conduct)

    async def _cleanup(self) -> None:
        self._timers.cancel_all()
        self._turns.cancel_all()
        for task in (self._rating_task, self._consent_task, *self._side_tasks):
            if task is not None:
                task.cancel()
        self._stop_recording()
        if self._warm is not None:
            await self._guarded("transfer", self._warm.close())
        if self._message_tasks:  # a caller who hangs up right after their message still leaves it
            await asyncio.wait(self._message_tasks, timeout=MESSAGE_GRACE_S)
        self._speculation.drop()
        if self._hangup_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._hangup_task), 5)
            except Exception:  # noqa: BLE001 - the call is over either way
                self.log.warning("hang-up did not complete cleanly")
        await self._guarded("close", self.brain.close())
        self.ledger.ended(self._outcome, self.fsm.turn)

    # ---- PortListener ----

    def on_frame(self, frame: bytes) -> None:
        self._guard("frame", self._on_frame, frame)

    def on_dtmf(self, digit: str) -> None:
        self.ledger.digit()
        self._guard("dtmf", self._feed, fsm.DigitPressed(digit))

    def on_hangup(self, reason: str) -> None:
        if self._warm is not None and self._warm.handing_over and not self._warm.counted:
            self._guard("transfer", self._referred)  # the stack ends our leg once the REFER was taken
        self._guard("hangup", self._feed, fsm.RemoteHangup(reason))

    def _referred(self) -> None:
        assert self._warm is not None
        self._warm.referred = self._warm.counted = True
        self.ledger.transfer("referred")
        self._feed(fsm.TransferConnected())

    def on_hold(self, held: bool) -> None:
        if held:
            self.ledger.held()
        self._guard("hold", self._feed, fsm.CallerHeld() if held else fsm.CallerResumed())

    def _on_frame(self, frame: bytes) -> None:
        if self.fsm.state is fsm.State.ENDED or self.fsm.held:
            return  # a held line carries music or nothing: neither is the caller speaking
        if self._warm is not None and self._warm.bridged:
            self._warm.from_caller(frame)  # the caller talks to the agent now, not to us
            return
        self.brain.hear(frame)
        heard = self._taker.hear(frame, self.port.played_ms // FRAME_MS, self.fsm.state)
        if self._taker.voiced:
            self._last_voiced_at = time.perf_counter()
        for item in heard:
            self._apply(item)
        if self._watch is not None:
            self._watch_answer(frame)
        self._turns.check_playout()

    def _watch_answer(self, frame: bytes) -> None:
        """An outbound call's first seconds: who answered, and for a machine when to leave the message."""
        assert self._watch is not None
        for event in self._watch.push(self._taker.voiced, frame):
            if isinstance(event, fsm.AnswerDetected) and self._watch.verdict is not None:
                self.ledger.answered_by(self._watch.verdict)
            self._feed(event)
        if self._watch.done:
            self._watch = None

    @property
    def outcome(self) -> str:
        """How the call ended ("" while it runs)."""
        return self._outcome

    def _apply(self, heard: Heard) -> None:
        """Serve one thing the turn taker heard or asks for."""
        match heard:
            case Transcribe(audio=audio):
                self._speculation.start(audio)
            case DropSpeculation(outcome=outcome):
                self._speculation.drop(outcome)
            case Rejoined():
                self.ledger.speculation("rejoined")
            case EchoSuppressed():
                self.metrics.echo_suppressed_frames.inc()
            case fsm.UtteranceEnded():
                self._speech_end_at = self._last_voiced_at
                self._feed(heard)
            case _:
                self._feed(heard)

    def _transcribed(self, task: Transcription) -> None:
        transcript = task.result()
        for item in self._taker.transcribed(transcript.text if transcript else None, self.fsm.state):
            self._apply(item)

    # ---- the FSM's actions ----

    def _feed(self, event: fsm.Event) -> None:
        before = self.fsm.state
        for action in self.fsm.handle(event):
            self._do(action)
        if self.fsm.state is not before:
            self.log.debug("%s -> %s on %s", before.value, self.fsm.state.value, type(event).__name__)
            self.ledger.state_changed(self.fsm.state.value)

    def _do(self, action: fsm.Action) -> None:
        loop = asyncio.get_running_loop()
        match action:
            case fsm.StartTurn(kind=kind):
                audio, reuse = self._taker.take_turn(kind)
                speculation = self._speculation.hand_over() if reuse else None  # the brain awaits it
                self._speculation.drop()
                self._turns.start(action, audio, speculation, self._speech_end_at if kind is TurnKind.UTTERANCE else 0)
            case fsm.CancelTurn(turn=turn):
                self._turns.cancel(turn)
            case fsm.FlushPlayout():
                self.brain.playout_flushed(self.port.flush())
                self._taker.playout_flushed(self.port.played_ms // FRAME_MS)
            case fsm.PausePlayout():
                self.port.pause()
            case fsm.ResumePlayout():
                self.port.resume()
            case fsm.StartTimer() | fsm.CancelTimer():
                self._timers.carry_out(action)
            case fsm.CountBargeIn() | fsm.RecordRating() | fsm.RatingRejected():
                self.ledger.book(action, self.fsm.barge_ins)
            case fsm.TransferCall(target=target, warm=True):
                self._side_task(self._guarded("transfer", self._warm_transfer(target)))
            case fsm.TransferCall(target=target):
                self._hangup_task = loop.create_task(self._guarded("transfer", self._transfer(target)))
            case fsm.TakeMessage():
                task = loop.create_task(self._guarded("message", self._take_message(self._taker.take_answer())))
                self._message_tasks.add(task)
                task.add_done_callback(self._message_tasks.discard)
            case fsm.Hangup(reason=reason):
                self.log.info("hanging up reason=%s", reason)
                self._hangup_task = loop.create_task(self.port.hangup())  # never raises
            case fsm.HearRating():
                audio = self._taker.take_answer()
                self._rating_task = loop.create_task(self._guarded("rating", self._hear_rating(audio)))
            case fsm.HearConsent():
                audio = self._taker.take_answer()
                self._consent_task = loop.create_task(self._guarded("consent", self._hear_consent(audio)))
            case fsm.StartRecording():
                self._start_recording()
            case fsm.RecordingDeclined(how=how):
                self.ledger.recording_declined(how)
            case fsm.CallEnded(reason=reason):
                self._outcome = reason
                self._ended.set()

    async def _hear_rating(self, audio: bytes) -> None:
        """The caller answered the rating question by voice: what number did they say?"""
        transcript = await self.brain.transcribe(audio) if audio else None
        self._feed(fsm.RatingHeard(find_rating(transcript.text) if transcript else None))

    async def _hear_consent(self, audio: bytes) -> None:
        """The caller answered the recording notice or question by voice: yes, no, or unclear?"""
        transcript = await self.brain.transcribe(audio) if audio else None
        self._feed(fsm.ConsentHeard(find_consent(transcript.text) if transcript else None))

    def _start_recording(self) -> None:
        """Consent given: the file is opened now, and the port's audio both ways goes into it. A
        folder that cannot take it leaves the call unrecorded (counted, a warning), never ended."""
        if self._recordings is None:
            self.ledger.recording_failed("no recordings folder")
            return
        recording = CallRecording(self._recordings.path_for(self.call_id), self.call_id)
        try:
            recording.open()
        except OSError as exc:
            self.ledger.recording_failed(type(exc).__name__)
            return
        self._recording = recording
        self.port.set_tap(recording)
        self.ledger.recording_started(self._recordings.name_of(recording.path))

    def _stop_recording(self) -> None:
        recording, self._recording = self._recording, None
        if recording is None:
            return
        self.port.set_tap(None)
        recording.close()
        if recording.failed:
            self.ledger.recording_failed("write")
        self.ledger.recording_stopped(recording.seconds)

    def _side_task(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _warm_transfer(self, target: str) -> None:
        """Hold, call and brief the agent, connect; the call then lasts until one side hangs up."""
        if self._dial_agent is None:
            self._feed(fsm.TransferFailed())
            return
        self.log.info("warm transfer: calling the agent")
        self._warm = WarmTransfer(self.port, self.brain, self._dial_agent, self._transfer_plan, self.log)
        try:
            how = await self._warm.connect(target)
        except TransferUnavailable as exc:
            self._warm = None
            self.ledger.transfer(f"failed_{exc.reason}")
            self._feed(fsm.TransferFailed())
            return
        if how == "referred":
            if not self._warm.counted:  # the caller's leg may have closed first (on_hangup counted it)
                self._referred()
            return
        self.ledger.transfer(how)
        self._feed(fsm.TransferConnected())
        if how == "bridged":
            await self._warm.agent_gone()
            self._feed(fsm.LocalHangupRequested("transferred"))

    async def _take_message(self, audio: bytes) -> None:
        transcript = await self.brain.transcribe(audio) if audio else None
        text = transcript.text.strip() if transcript else ""
        self.ledger.message_taken()
        if self._messages is not None:
            await self._messages.leave(self.call_id, self.route.plan.name, self._caller, text)

    async def _transfer(self, target: str) -> None:
        self.log.info("transferring the caller")
        if not await self.port.transfer(target):  # refused or impossible: the assistant carries on
            self._feed(fsm.TransferFailed())

    # ---- the one error guard ----

    def _guard(self, stage: str, work: Callable[..., None], *args: Any) -> None:
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001 - one call's failure ends this call only
            self._fail(stage, exc)

    async def _guarded(self, stage: str, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one call's failure ends this call only
            self._fail(stage, exc)

    def _fail(self, stage: str, exc: BaseException) -> None:
        self.metrics.call_failures.labels(stage=stage).inc()
        self.log.error("call failed in %s: %s: %s", stage, type(exc).__name__, exc, exc_info=exc)
        if self.fsm.state is not fsm.State.ENDED:
            for action in self.fsm.handle(fsm.LocalHangupRequested("error")):
                try:
                    self._do(action)
                except Exception:
                    self.log.exception("cleanup after failure raised")
            self._outcome = "error"
            self._ended.set()
