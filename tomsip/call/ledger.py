"""The call ledger: the books of one call, kept apart from driving it.

The call record (state, turns, barge-ins, per-stage latencies: what the store and the live calls view
show), the metric counts, the transcript lines and state changes (also told to a transport with a
display, through the port's typed `notify`), and the learning signals with the rating and where it
came from. The session reports what happened; the app reads a `CallSummary` when
the call is over and never looks inside the session's FSM.

Writing the record never ends a call: a store failure is counted and logged, and the call goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from tomsip.audio.answer_detector import Verdict
from tomsip.call.fsm import CountBargeIn, RatingRejected, RecordRating
from tomsip.conversation.events import ConversationEvent, StateChanged, TranscriptLine
from tomsip.learn.reward import CallSignals
from tomsip.monitor.metrics import Metrics
from tomsip.speech.stages import TurnLatency
from tomsip.store.base import CallRecord, Store


@dataclass(frozen=True)
class CallSummary:
    """What a finished call leaves for the learning loop."""

    call_id: str
    outcome: str
    signals: CallSignals
    rating_source: str


@dataclass(frozen=True)
class Conduct:
    """How the caller and the brain behaved, from the FSM and the brain at the end of the call."""

    task_completed: bool | None
    hung_up_while_speaking: bool
    barge_ins: int
    rating: int | None


class CallLedger:
    def __init__(
        self,
        record: CallRecord,
        store: Store,
        metrics: Metrics,
        log: logging.LoggerAdapter[logging.Logger],
        wall_clock: Callable[[], float],
        notify: Callable[[ConversationEvent], None],
    ) -> None:
        self.record = record
        self._notify = notify
        self._store = store
        self._metrics = metrics
        self._log = log
        self._wall = wall_clock
        self._voice_to_voice_ms: list[float] = []
        self.last_words: dict[str, str] = {}  # role -> the latest transcript line, for the live calls view
        self.rating_source = ""

    def state_changed(self, state: str) -> None:
        self.record.state = state
        self.record.last_activity = self._wall()
        self.save()
        self._notify(StateChanged(state=state))

    def said(self, role: Literal["caller", "assistant"], text: str) -> None:
        self.last_words[role] = text
        self._notify(TranscriptLine(role=role, text=text))

    def book(self, action: CountBargeIn | RecordRating | RatingRejected, barge_ins: int) -> None:
        """The FSM's actions that only count: a barge-in (`barge_ins` so far), a rating, a non-rating."""
        match action:
            case CountBargeIn():
                self._metrics.barge_ins.inc()
                self.record.barge_ins = barge_ins
                self._log.info("barge-in: reply interrupted")
            case RecordRating(source=source):
                self.rating_source = source
                self._metrics.ratings.labels(source=source).inc()
                self._log.info("rating received source=%s", source)
            case RatingRejected(source=source):
                self._metrics.ratings_rejected.labels(source=source).inc()

    def speculation(self, outcome: str) -> None:
        """A speculative transcription was used, failed, went stale, or a turn was rejoined."""
        self._metrics.speculative_stt.labels(outcome=outcome).inc()

    def voice_to_voice(self, ms: float) -> None:
        self._voice_to_voice_ms.append(ms)

    def turn_done(self, turn: int, latency: TurnLatency) -> None:
        """A reply was produced: its per-stage latencies go to the record (shown live) and metrics."""
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
                self._metrics.turn_latency_seconds.labels(stage=stage).observe(ms / 1000)
        self.record.turns = turn
        self.save()

    def started(self) -> None:
        self._metrics.active_calls.inc()
        self.save()
        self._log.info("call started dialplan=%s codec=%s", self.record.dialplan, self.record.codec)

    def answered_by(self, verdict: Verdict) -> None:
        """Who answered our outbound call, and how long the detector listened to know."""
        self.record.answered_by = verdict.answer.value
        self.record.latencies_ms["amd"] = float(verdict.at_ms)
        self._metrics.amd_decisions.labels(answer=verdict.answer.value, reason=verdict.reason).inc()
        self._metrics.amd_decision_seconds.observe(verdict.at_ms / 1000)
        self._log.info("answered by %s (%s) after %d ms", verdict.answer.value, verdict.reason, verdict.at_ms)
        self.save()

    def transfer(self, result: str) -> None:
        """A warm transfer's outcome: bridged, referred, or failed_<why>."""
        self._metrics.warm_transfers.labels(result=result).inc()
        self._log.info("warm transfer %s", result)

    def message_taken(self) -> None:
        self._metrics.messages_taken.inc()
        self._log.info("the caller left a message")

    def recording_started(self, name: str) -> None:
        self.record.recording = name
        self._metrics.recordings.labels(result="recorded").inc()
        self._log.info("recording with consent")
        self.save()

    def recording_declined(self, how: str) -> None:
        self._metrics.recordings.labels(result=f"declined_{how}").inc()
        self._log.info("not recorded: declined (%s)", how)

    def recording_failed(self, why: str) -> None:
        self._metrics.recordings.labels(result="failed").inc()
        self._log.warning("recording failed (%s); the call goes on unrecorded", why)

    def recording_stopped(self, seconds: float) -> None:
        self._metrics.recorded_seconds.inc(seconds)

    def ended(self, outcome: str, turns: int) -> None:
        self._metrics.active_calls.dec()
        self.record.outcome = outcome
        self.record.duration_s = round(max(0.0, self._wall() - self.record.started_at), 1)
        self.save(ended=True)
        self._metrics.calls.labels(outcome=outcome).inc()
        self._log.info("call ended outcome=%s turns=%d barge_ins=%d", outcome, turns, self.record.barge_ins)

    def digit(self) -> None:
        self._metrics.dtmf_digits.inc()
        self._log.info("dtmf digit received")

    def held(self) -> None:
        self._metrics.caller_holds.inc()

    def signals(self, conduct: Conduct) -> CallSignals:
        """What the learning loop's reward is made of, as this call went."""
        latencies = self._voice_to_voice_ms
        done = conduct.task_completed
        return CallSignals(
            task_completed=done if done is not None else self.record.outcome == "completed",
            hung_up_while_speaking=conduct.hung_up_while_speaking,
            barge_ins=conduct.barge_ins,
            turn_latency_ms=sum(latencies) / len(latencies) if latencies else None,
            call_s=max(0.0, self._wall() - self.record.started_at),
            rating=conduct.rating,
        )

    def summary(self, conduct: Conduct) -> CallSummary:
        return CallSummary(self.record.call_id, self.record.outcome, self.signals(conduct), self.rating_source)

    def save(self, ended: bool = False) -> None:
        try:
            self._store.save_call(self.record, ended=ended)
        except Exception:  # noqa: BLE001 - the store must never end a call
            self._metrics.store_errors.labels(op="write").inc()
            self._log.warning("call record write failed")
