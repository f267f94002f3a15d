"""Every Prometheus metric tomsip exports, in one registry per process.

A registry of our own (not the global default) keeps tests that build several apps in one process
from colliding, and keeps /metrics to what we chose to export.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_S = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.active_calls = Gauge("tomsip_active_calls", "Calls in progress", registry=r)
        self.calls = Counter("tomsip_calls_total", "Finished calls by outcome", ["outcome"], registry=r)
        self.call_failures = Counter(
            "tomsip_call_failures_total", "Calls ended by an internal failure", ["stage"], registry=r
        )
        self.barge_ins = Counter("tomsip_barge_ins_total", "Replies interrupted by the caller", registry=r)
        self.admission_refusals = Counter(
            "tomsip_admission_refusals_total", "Calls refused at admission", ["reason"], registry=r
        )
        self.caller_holds = Counter(
            "tomsip_caller_holds_total", "Times callers put a call on hold (the assistant pauses)", registry=r
        )
        self.dtmf_digits = Counter("tomsip_dtmf_digits_total", "DTMF digits received", registry=r)
        self.outbound_calls = Counter(
            "tomsip_outbound_calls_total",
            "Calls tomsip placed, by result (answered, busy, no_answer, rejected, failed, not_placed)",
            ["result"],
            registry=r,
        )
        self.outbound_answer_seconds = Histogram(
            "tomsip_outbound_answer_seconds",
            "From our INVITE to the answer of an outbound call",
            buckets=(0.5, 1, 2, 3, 5, 8, 12, 20, 30, 60),
            registry=r,
        )
        self.outbound_queued = Gauge("tomsip_outbound_queued", "Outbound calls waiting to be placed", registry=r)
        self.outbound_in_progress = Gauge(
            "tomsip_outbound_in_progress", "Outbound calls placed and not yet over (ringing or answered)", registry=r
        )
        self.outbound_refused = Counter(
            "tomsip_outbound_refused_total", "POST /api/calls refused before queueing", ["reason"], registry=r
        )
        self.status_callbacks = Counter(
            "tomsip_status_callbacks_total",
            "Outbound results POSTed to status_url, by outcome",
            ["outcome"],
            registry=r,
        )
        self.warm_transfers = Counter(
            "tomsip_warm_transfers_total",
            "Warm transfers: bridged, referred, or failed_<no_answer|busy|rejected|failed|not_accepted|agent_hung_up>",
            ["result"],
            registry=r,
        )
        self.messages_taken = Counter(
            "tomsip_messages_taken_total", "Messages callers left when a warm transfer found nobody", registry=r
        )
        self.recordings = Counter(
            "tomsip_recordings_total",
            "Consent outcomes: recorded, declined (by dtmf, speech or timeout), failed (could not write)",
            ["result"],
            registry=r,
        )
        self.recorded_seconds = Counter(
            "tomsip_recorded_seconds_total", "Seconds of consented call audio written", registry=r
        )
        self.amd_decisions = Counter(
            "tomsip_amd_decisions_total",
            "Who answered outbound calls, and why so decided",
            ["answer", "reason"],
            registry=r,
        )
        self.amd_decision_seconds = Histogram(
            "tomsip_amd_decision_seconds",
            "From the answer to the answering-machine detector's verdict",
            buckets=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0),
            registry=r,
        )
        self.media_tick_seconds = Histogram(
            "tomsip_media_tick_seconds",
            "Time one media clock tick spends servicing all ports",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05),
            registry=r,
        )
        self.media_tick_lateness_seconds = Histogram(
            "tomsip_media_tick_lateness_seconds",
            "How late the media clock woke up against its 20 ms schedule",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
            registry=r,
        )
        self.silence_frames_inserted = Counter(
            "tomsip_silence_frames_inserted_total",
            "Silence frames inserted while a caller sent no audio (any transport)",
            registry=r,
        )
        self.turn_latency_seconds = Histogram(
            "tomsip_turn_latency_seconds",
            "Per-stage turn latency",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.api_errors = Counter(
            "tomsip_api_errors_total",
            "Speech stages that could not serve a turn (hosted API errors, timeouts, malformed events, overload)",
            ["backend", "kind"],
            registry=r,
        )
        self.inference_queue_wait_seconds = Histogram(
            "tomsip_inference_queue_wait_seconds",
            "Time a model inference job waited for a worker thread",
            ["stage"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0),
            registry=r,
        )
        self.speech_to_speech_latency_ms = Histogram(
            "tomsip_speech_to_speech_latency_ms",
            "Speech-to-speech backend: caller's speech end (server VAD) to the first reply audio, in ms",
            buckets=(100, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000),
            registry=r,
        )
        self.speech_worker_requests = Counter(
            "tomsip_speech_worker_requests_total",
            "Requests to remote speech workers, by stage, worker and outcome (ok, busy, failed)",
            ["stage", "worker", "outcome"],
            registry=r,
        )
        self.speech_worker_seconds = Histogram(
            "tomsip_speech_worker_seconds",
            "Round trip of a remote speech request, to the transcript or to the first audio",
            ["stage"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.speech_workers_up = Gauge(
            "tomsip_speech_workers_up", "Remote speech workers answering their health check", ["stage"], registry=r
        )
        self.speech_workers_ready = Gauge(
            "tomsip_speech_workers_ready",
            "Remote speech workers up and neither full nor busy: 0 refuses new calls at the door",
            ["stage"],
            registry=r,
        )
        self.speculative_stt = Counter(
            "tomsip_speculative_stt_total",
            "Transcriptions started during the caller's pause, by what became of them",
            ["outcome"],
            registry=r,
        )
        self.echo_suppressed_frames = Counter(
            "tomsip_echo_suppressed_frames_total",
            "Voiced caller frames taken for the assistant's own echo and not for speech",
            registry=r,
        )
        self.policy_selections = Counter(
            "tomsip_policy_selections_total",
            "Calls served under each conversation policy, by why it was served",
            ["dialplan", "policy", "reason"],
            registry=r,
        )
        self.guard_decisions = Counter(
            "tomsip_guard_decisions_total",
            "Deploy guard decisions: bandit, capped, shadow, killed, store_unavailable, blacklisted",
            ["dialplan", "decision"],
            registry=r,
        )
        self.policy_rewards = Histogram(
            "tomsip_policy_reward",
            "Reward of each finished call, per policy",
            ["dialplan", "policy"],
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=r,
        )
        self.ratings = Counter(
            "tomsip_ratings_total", "End-of-call ratings received, by source", ["source"], registry=r
        )
        self.ratings_rejected = Counter(
            "tomsip_ratings_rejected_total",
            "Answers to the rating question that were not a rating 1-5, by source",
            ["source"],
            registry=r,
        )
        self.feedback_refused = Counter(
            "tomsip_feedback_refused_total",
            "Feedback refused: unknown_call, finished, out_of_range",
            ["reason"],
            registry=r,
        )
        self.learning_state_resets = Counter(
            "tomsip_learning_state_resets_total",
            "Stored bandit state ignored or reset: corrupt, unknown_policy",
            ["reason"],
            registry=r,
        )
        self.episodes = Counter(
            "tomsip_episodes_total",
            "Learning episodes by what became of them (logged, failed)",
            ["outcome"],
            registry=r,
        )
        self.websocket_connections = Counter(
            "tomsip_websocket_connections_total",
            "Browser WebSocket connections by outcome (accepted, refused)",
            ["outcome"],
            registry=r,
        )
        self.auth_success = Counter("tomsip_auth_success_total", "Browser tokens accepted", registry=r)
        self.auth_failures = Counter(
            "tomsip_auth_failures_total", "Browser tokens refused, by reason", ["reason"], registry=r
        )
        self.rate_limit_hits = Counter(
            "tomsip_rate_limit_hits_total",
            "Browser requests over a limit: message (per connection), connect (per address)",
            ["scope"],
            registry=r,
        )
        self.bridge_bad_input = Counter(
            "tomsip_bridge_bad_input_total", "Browser messages refused, by kind", ["kind"], registry=r
        )
        self.store_errors = Counter("tomsip_store_errors_total", "Store operations that failed", ["op"], registry=r)
        self.store_dropped_writes = Counter("tomsip_store_dropped_writes_total", "Store writes given up on", registry=r)
        self.registration_failures = Counter(
            "tomsip_registration_failures_total", "Trunk REGISTER attempts that failed", registry=r
        )
        self.registered = Gauge("tomsip_trunk_registered", "1 while the trunk registration holds", registry=r)
        self.draining = Gauge("tomsip_draining", "1 while the process drains", registry=r)
        self.tts_sentences = Counter(
            "tomsip_tts_sentences_total",
            "Sentences spoken by TTS, by where the audio came from: cache (no inference) or synthesized",
            ["source"],
            registry=r,
        )
        self.phrase_cache_entries = Gauge("tomsip_phrase_cache_entries", "Sentences held as PCM", registry=r)
        self.phrase_cache_bytes = Gauge("tomsip_phrase_cache_bytes", "PCM bytes held by the phrase cache", registry=r)
        self.fillers = Counter(
            "tomsip_fillers_total", "Turns that played the cached filler while their reply was late", registry=r
        )
        self.conversation_limit = Gauge(
            "tomsip_conversation_limit",
            "Concurrent conversations each pipeline admits (measured at start-up or TOMSIP_MAX_CONVERSATIONS)",
            ["pipeline"],
            registry=r,
        )
        self.stt_batch_size = Histogram(
            "tomsip_stt_batch_size",
            "Utterances recognised in one model pass",
            buckets=(1, 2, 3, 4, 6, 8),
            registry=r,
        )

    def silence_inserted(self) -> None:
        """A port inserted a silence frame (tomsip/audio/paced_port.py's MediaCounters)."""
        self.silence_frames_inserted.inc()

    def media_failed(self) -> None:
        self.call_failures.labels(stage="media").inc()

    def sentence_spoken(self, source: str) -> None:
        self.tts_sentences.labels(source=source).inc()

    def cache_size(self, entries: int, size: int) -> None:
        self.phrase_cache_entries.set(entries)
        self.phrase_cache_bytes.set(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)
