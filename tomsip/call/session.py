"""CallSession: the thin asyncio driver around the pure call FSM.

It listens to one AudioPort (frames, digits, hang-up), hands each frame to CallerSpeech (VAD, echo
gate, end-pointer), feeds the FSM what was heard, and carries out its actions: running a turn of the brain as a task,
flushing playout, arming timers, transferring, hanging up. Anything that goes wrong inside this call
ends this call (BYE, a log line, a metric) and nothing else.

Turn-taking: during a pause the utterance so far is transcribed speculatively and the transcript
decides how much silence ends the turn (tomsip/call/turn_taking.py); the turn then reuses it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from tomsip.audio.caller_speech import CallerSpeech
from tomsip.audio.frames import FRAME_MS
from tomsip.audio.port import AudioPort
from tomsip.audio.vad import SpeechEnd, SpeechStart, VoiceDuration, VoiceGap
from tomsip.call import fsm
from tomsip.call.dialplan import Route
from tomsip.learn.reward import CallSignals
from tomsip.monitor.logs import call_id_var
from tomsip.monitor.metrics import Metrics
from tomsip.speech.intents import find_rating
from tomsip.speech.stages import CallBrain, Transcript, TurnLatency, TurnRequest
from tomsip.store.base import CallRecord, Store

log = logging.getLogger("tomsip.call")

# A caller who speaks again this soon after their turn ended was not done (a pause at a comma taken
# for the end): what they said before is heard again with what follows, as one utterance.
REJOIN_MS = 1000


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
    ) -> None:
        self.port = port
        self.brain = brain
        self.route = route
        self.store = store
        self.metrics = metrics
        self.fsm = fsm.CallFsm(route.fsm_config)
        s = route.plan.settings
        self._caller = CallerSpeech(
            silence_ms=s.silence_ms,
            onset_ms=s.onset_ms,
            max_utterance_ms=s.max_utterance_ms,
            echo_return_loss_db=s.echo_return_loss_db,
            tail_drop_db=s.tail_drop_db,
            vad_aggressiveness=vad_aggressiveness,
        )
        self._endpointer = self._caller.endpointer
        self._echo = self._caller.echo
        self._policy = route.turn_taking
        self._speculation: asyncio.Task[Transcript | None] | None = None
        self._last_voiced_at = 0.0
        self._speech_end_at = 0.0
        self._answered: tuple[bytes, int] = (b"", 0)  # the utterance the current turn answers, its end frame
        self._turn_task: asyncio.Task[None] | None = None
        self._turn_task_turn = 0
        self._awaiting_playout = 0
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._ended = asyncio.Event()
        self._hangup_task: asyncio.Task[None] | None = None
        self._rating_task: asyncio.Task[None] | None = None
        self._voice_to_voice_ms: list[float] = []
        self._wall = wall_clock
        self.record = CallRecord(
            call_id=port.call_id,
            state=self.fsm.state.value,
            started_at=wall_clock(),
            last_activity=wall_clock(),
            transport=transport,
            codec=port.codec,
            dialplan=route.plan.name,
            policy=route.policy,
            node=node,
        )
        self.last_words: dict[str, str] = {}  # role -> the latest transcript line, for the live calls view
        self.outcome = ""
        self.log = logging.LoggerAdapter(log, {"call_id": port.call_id})
        # Transports with a display (browsers) get state changes and transcripts; SIP has none.
        self._notify: Callable[[dict[str, object]], None] = getattr(port, "notify", lambda event: None)
        brain.on_barge_in(self._on_backend_barge_in)

    @property
    def call_id(self) -> str:
        return self.port.call_id

    # ---- life cycle ----

    async def run(self) -> str:
        """Drive the call until it ends; returns the outcome."""
        call_id_var.set(self.call_id)
        self.metrics.active_calls.inc()
        self._save()
        self.log.info("call started dialplan=%s codec=%s", self.route.plan.name, self.port.codec)
        try:
            self.port.attach(self)
            self._feed(fsm.CallStarted())
            await self._ended.wait()
        finally:
            self.metrics.active_calls.dec()
            await self._cleanup()
        self.metrics.calls.labels(outcome=self.outcome).inc()
        self.log.info("call ended outcome=%s turns=%d barge_ins=%d", self.outcome, self.fsm.turn, self.fsm.barge_ins)
        return self.outcome

    def request_hangup(self, reason: str) -> None:
        """Operator or drain: end the call now, with BYE."""
        self._feed(fsm.LocalHangupRequested(reason))

    def barge_in(self) -> None:
        """The client's own VAD heard the caller talk over the reply (a browser's barge_in event)."""
        self._on_backend_barge_in()

    def rate(self, value: int, source: str = "browser") -> str | None:
        """A rating from outside the audio (the browser's rating event); returns why it was refused,
        or None when it was taken."""
        if self.fsm.state is fsm.State.ENDED:
            return "finished"
        if not isinstance(value, int) or not 1 <= value <= 5:
            return "out_of_range"
        self._feed(fsm.RatingGiven(value, source))
        return None if self.fsm.rating == value else "finished"

    def signals(self) -> CallSignals:
        """What the learning loop's reward is made of, as this call went."""
        done = self.brain.task_completed()
        latencies = self._voice_to_voice_ms
        return CallSignals(
            task_completed=done if done is not None else self.outcome == "completed",
            hung_up_while_speaking=self.fsm.hung_up_while_speaking,
            barge_ins=self.fsm.barge_ins,
            turn_latency_ms=sum(latencies) / len(latencies) if latencies else None,
            call_s=max(0.0, self._wall() - self.record.started_at),
            rating=self.fsm.rating,
        )

    async def _cleanup(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._rating_task is not None:
            self._rating_task.cancel()
        if self._turn_task is not None:
            self._turn_task.cancel()
        self._drop_speculation()
        if self._hangup_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._hangup_task), 5)
            except Exception:  # noqa: BLE001 - the call is over either way
                self.log.warning("hang-up did not complete cleanly")
        try:
            await self.brain.close()
        except Exception:
            self.log.exception("closing the brain failed")
        self.record.outcome = self.outcome
        self._save(ended=True)

    # ---- PortListener ----

    def on_frame(self, frame: bytes) -> None:
        try:
            self._on_frame(frame)
        except Exception as exc:  # noqa: BLE001 - one call's bug ends one call
            self._fail("frame", exc)

    def _on_frame(self, frame: bytes) -> None:
        if self.fsm.state is fsm.State.ENDED:
            return
        self.brain.hear(frame)
        suppressed = self._caller.echo_suppressed
        voiced, events = self._caller.hear(frame, self.port.played_ms // FRAME_MS)
        if self._caller.echo_suppressed != suppressed:
            self.metrics.echo_suppressed_frames.inc()
        if voiced:
            self._last_voiced_at = time.perf_counter()
        for event in events:
            if isinstance(event, SpeechStart):
                self._rejoin_if_too_soon()
                self._drop_speculation()
                self._feed(fsm.SpeechStarted())
            elif isinstance(event, VoiceDuration):
                if self._speculation is not None:  # the caller went on: what was transcribed is stale
                    self._drop_speculation("stale")
                    self._endpointer.set_silence_ms(self._policy.silence_ms)
                self._feed(fsm.SpeechContinues(event.speech_ms))
            elif isinstance(event, VoiceGap):
                if event.silent_ms == self._policy.speculate_after_ms:
                    self._speculate()
                self._feed(fsm.SpeechGap(event.silent_ms, event.speech_ms))
            elif isinstance(event, SpeechEnd):
                self._end_utterance(event)
        if self._awaiting_playout and not self.port.playing:
            turn, self._awaiting_playout = self._awaiting_playout, 0
            self._feed(fsm.PlayoutDone(turn))

    def _rejoin_if_too_soon(self) -> None:
        """Speech again while we answer an utterance that ended under REJOIN_MS ago: if it becomes a
        barge-in, the next turn hears the earlier words too (a cough that never confirms is dropped
        with its utterance as before)."""
        audio, end_frame = self._answered
        if not audio or self.fsm.state not in (fsm.State.THINKING, fsm.State.SPEAKING):
            return
        if (self._endpointer.frame_index - end_frame) * FRAME_MS <= REJOIN_MS:
            self._caller.continues(audio)
            self.metrics.speculative_stt.labels(outcome="rejoined").inc()

    def _end_utterance(self, event: SpeechEnd) -> None:
        self._speech_end_at = self._last_voiced_at
        self._feed(fsm.UtteranceEnded(event.speech_ms))
        if self.fsm.state is not fsm.State.THINKING:
            self._drop_speculation()  # not a turn (a cough while we spoke): nobody needs the transcript

    # ---- speculative transcription (turn-taking) ----

    def _speculate(self) -> None:
        """The caller paused: transcribe what they said so far while we wait to see if they go on."""
        if not self._policy.speculative or self.fsm.state is not fsm.State.LISTENING:
            return
        self._drop_speculation("stale")
        audio = self._caller.so_far()
        self._endpointer.set_silence_ms(self._policy.pending_silence_ms)
        task = asyncio.get_running_loop().create_task(self.brain.transcribe(audio))
        self._speculation = task
        task.add_done_callback(self._on_speculation)

    def _on_speculation(self, task: asyncio.Task[Transcript | None]) -> None:
        if task is not self._speculation or task.cancelled():
            return
        try:
            transcript = task.result()
            if not self._endpointer.in_speech:
                return  # the utterance already ended; the turn awaits this task itself
            need = self._policy.silence_for(transcript.text) if transcript else self._policy.silence_ms
            if self._endpointer.silent_ms >= need:
                end = self._caller.force_end()
                if end is not None:
                    self._end_utterance(end)
            else:
                self._endpointer.set_silence_ms(need)
        except Exception as exc:  # noqa: BLE001 - one call's failure ends one call
            self._fail("turn_taking", exc)

    def _drop_speculation(self, outcome: str = "") -> None:
        if self._speculation is not None:
            if outcome:
                self.metrics.speculative_stt.labels(outcome=outcome).inc()
            self._speculation.cancel()
            self._speculation = None

    def on_dtmf(self, digit: str) -> None:
        self.metrics.dtmf_digits.inc()
        self.log.info("dtmf digit received")
        try:
            self._feed(fsm.DigitPressed(digit))
        except Exception as exc:  # noqa: BLE001
            self._fail("dtmf", exc)

    def _on_backend_barge_in(self) -> None:
        try:
            self._feed(fsm.BackendBargeIn())
        except Exception as exc:  # noqa: BLE001
            self._fail("barge_in", exc)

    def on_hangup(self, reason: str) -> None:
        try:
            self._feed(fsm.RemoteHangup(reason))
        except Exception as exc:  # noqa: BLE001
            self._fail("hangup", exc)

    # ---- FSM plumbing ----

    def _feed(self, event: fsm.Event) -> None:
        before = self.fsm.state
        actions = self.fsm.handle(event)
        for action in actions:
            self._do(action)
        if self.fsm.state is not before:
            self.log.debug("%s -> %s on %s", before.value, self.fsm.state.value, type(event).__name__)
            self.record.state = self.fsm.state.value
            self.record.last_activity = self._wall()
            self._save()
            self._notify({"type": "state", "state": self.fsm.state.value})

    def _do(self, action: fsm.Action) -> None:
        if isinstance(action, fsm.StartTurn):
            self._start_turn(action)
        elif isinstance(action, fsm.CancelTurn):
            if self._turn_task is not None and self._turn_task_turn == action.turn:
                self._turn_task.cancel()
                self._turn_task = None
            if self._awaiting_playout == action.turn:
                self._awaiting_playout = 0
        elif isinstance(action, fsm.FlushPlayout):
            self.brain.playout_flushed(self.port.flush())
            self._echo.on_flush(self.port.played_ms // FRAME_MS)
        elif isinstance(action, fsm.PausePlayout):
            self.port.pause()
        elif isinstance(action, fsm.ResumePlayout):
            self.port.resume()
        elif isinstance(action, fsm.StartTimer):
            self._cancel_timer(action.name)
            loop = asyncio.get_running_loop()
            self._timers[action.name] = loop.call_later(action.ms / 1000, self._timer_fired, action.name)
        elif isinstance(action, fsm.CancelTimer):
            self._cancel_timer(action.name)
        elif isinstance(action, fsm.CountBargeIn):
            self.metrics.barge_ins.inc()
            self.record.barge_ins = self.fsm.barge_ins
            self.log.info("barge-in: reply interrupted")
        elif isinstance(action, fsm.TransferCall):
            self._hangup_task = asyncio.get_running_loop().create_task(self._transfer(action.target))
        elif isinstance(action, fsm.Hangup):
            self._hangup_task = asyncio.get_running_loop().create_task(self._hangup(action.reason))
        elif isinstance(action, fsm.HearRating):
            audio = self._caller.take_utterance()
            self._rating_task = asyncio.get_running_loop().create_task(self._hear_rating(audio))
        elif isinstance(action, fsm.RecordRating):
            self.metrics.ratings.labels(source=action.source).inc()
            self.log.info("rating received source=%s", action.source)
        elif isinstance(action, fsm.RatingRejected):
            self.metrics.ratings_rejected.labels(source=action.source).inc()
        elif isinstance(action, fsm.CallEnded):
            self.outcome = action.reason
            self._ended.set()

    def _cancel_timer(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _timer_fired(self, name: str) -> None:
        self._timers.pop(name, None)
        try:
            self._feed(fsm.TimerFired(name))
        except Exception as exc:  # noqa: BLE001
            self._fail("timer", exc)

    async def _hear_rating(self, audio: bytes) -> None:
        """The caller answered the rating question by voice: what number did they say?"""
        try:
            transcript = await self.brain.transcribe(audio) if audio else None
            self._feed(fsm.RatingHeard(find_rating(transcript.text) if transcript else None))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one call's failure ends one call
            self._fail("rating", exc)

    async def _hangup(self, reason: str) -> None:
        self.log.info("hanging up reason=%s", reason)
        try:
            await self.port.hangup()
        except Exception:  # noqa: BLE001 - the far end may be gone already
            self.log.warning("hang-up failed; the call is considered ended")

    async def _transfer(self, target: str) -> None:
        self.log.info("transferring the caller")
        try:
            taken = await self.port.transfer(target)
        except Exception:
            self.log.exception("transfer raised")
            taken = False
        if not taken:
            try:
                self._feed(fsm.TransferFailed())
            except Exception as exc:  # noqa: BLE001
                self._fail("transfer", exc)

    def _fail(self, stage: str, exc: BaseException) -> None:
        self.metrics.call_failures.labels(stage=stage).inc()
        self.log.error("call failed in %s: %s: %s", stage, type(exc).__name__, exc, exc_info=exc)
        if self.fsm.state is not fsm.State.ENDED:
            for action in self.fsm.handle(fsm.LocalHangupRequested("error")):
                try:
                    self._do(action)
                except Exception:
                    self.log.exception("cleanup after failure raised")
            self.outcome = "error"
            self._ended.set()

    # ---- turns ----

    def _start_turn(self, action: fsm.StartTurn) -> None:
        if self._turn_task is not None:
            self._turn_task.cancel()
        audio = self._caller.take_utterance()
        speculation = None
        if action.kind is fsm.TurnKind.UTTERANCE:  # the brain awaits the speculation under its filler
            speculation, self._speculation = self._speculation, None
            if speculation is not None:
                speculation.add_done_callback(self._heard)
            self._answered = (audio, self._endpointer.frame_index)
        else:
            audio = b""
            self._answered = (b"", 0)
            self._drop_speculation()
        request = TurnRequest(
            action.turn, action.kind, audio, action.speech_ms, action.digit, pending_transcript=speculation
        )
        self._turn_task_turn = action.turn
        speech_end = self._speech_end_at if action.kind is fsm.TurnKind.UTTERANCE else 0.0
        self._turn_task = asyncio.get_running_loop().create_task(self._run_turn(request, speech_end))

    async def _run_turn(self, request: TurnRequest, speech_end: float = 0.0) -> None:
        latency = TurnLatency()
        started = time.perf_counter()
        end_call = False
        transfer_to = ""
        first = True
        try:
            async for chunk in self.brain.turn(request, latency):
                if chunk.text:
                    self._said("assistant", chunk.text)
                end_call = end_call or chunk.end_call
                transfer_to = transfer_to or chunk.transfer_to
                if chunk.pcm:
                    self.port.play(chunk.pcm)
                    self._echo.on_play(chunk.pcm)
                    if first:
                        first = False
                        if speech_end:
                            latency.speech_end_to_audio_ms = (time.perf_counter() - speech_end) * 1000
                            self._voice_to_voice_ms.append(latency.speech_end_to_audio_ms)
                        self._feed(fsm.ReplyStarted(request.turn))
            if first and end_call is False:
                self.log.debug("turn %d produced no audio", request.turn)
            self.port.end_of_reply()
            self._echo.on_end_of_reply()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one turn's failure ends this call only
            self._fail("turn", exc)
            return
        if latency.first_audio_ms is None and not first:
            latency.first_audio_ms = (time.perf_counter() - started) * 1000
        try:
            self._record_latency(latency)
            self._awaiting_playout = request.turn
            self.record.turns = request.turn
            self._save()  # the live calls view shows the turn and its latency now, not at the next state
            self._feed(fsm.ReplyFinished(request.turn, end_call, transfer_to))
        except Exception as exc:  # noqa: BLE001
            self._fail("turn", exc)

    def _heard(self, speculation: asyncio.Task[Transcript | None]) -> None:
        if not speculation.cancelled() and speculation.exception() is None:
            transcript = speculation.result()
            self.metrics.speculative_stt.labels(outcome="used" if transcript else "failed").inc()
            if transcript is not None and transcript.text:
                self._said("caller", transcript.text)

    def _said(self, role: str, text: str) -> None:
        self.last_words[role] = text
        self._notify({"type": "transcript", "role": role, "text": text})

    def _record_latency(self, latency: TurnLatency) -> None:
        stages = {
            "stt": latency.stt_ms,
            "responder_first": latency.responder_first_ms,
            "tts_first": latency.tts_first_ms,
            "turn": latency.first_audio_ms,
            "speech_end_to_audio": latency.speech_end_to_audio_ms,
        }
        for stage, ms in stages.items():
            if ms is not None:
                self.record.latencies_ms[stage] = round(ms, 1)
                self.metrics.turn_latency_seconds.labels(stage=stage).observe(ms / 1000)

    def _save(self, ended: bool = False) -> None:
        try:
            self.store.save_call(self.record, ended=ended)
        except Exception:  # noqa: BLE001 - the store must never end a call
            self.metrics.store_errors.labels(op="write").inc()
            self.log.warning("call record write failed")
