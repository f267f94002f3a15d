"""What a speech worker exports on /metrics: queue depth, batch sizes and per-request latency, the
figures an operator sizes workers by (docs/deployment.md)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REQUEST_BUCKETS_S = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class WorkerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "tomsip_worker_requests_total",
            "Audio API requests by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "tomsip_worker_request_seconds",
            "Time from a request's arrival to its last byte",
            ["endpoint"],
            buckets=REQUEST_BUCKETS_S,
            registry=r,
        )
        self.first_audio_seconds = Histogram(
            "tomsip_worker_first_audio_seconds",
            "Time from a speech request's arrival to its first audio byte",
            buckets=REQUEST_BUCKETS_S,
            registry=r,
        )
        self.queue_wait_seconds = Histogram(
            "tomsip_worker_queue_wait_seconds",
            "Time an inference job waited for a thread",
            ["stage"],
            buckets=REQUEST_BUCKETS_S,
            registry=r,
        )
        self.batch_size = Histogram(
            "tomsip_worker_stt_batch_size",
            "Utterances decoded in one speech-to-text pass",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32),
            registry=r,
        )
        self.queue_depth = Gauge(
            "tomsip_worker_queue_depth", "Inference jobs waiting for a thread", ["stage"], registry=r
        )
        self.in_flight = Gauge("tomsip_worker_in_flight", "Inference jobs queued or running", ["stage"], registry=r)
        self.conversations = Gauge(
            "tomsip_worker_conversations",
            "Conversations heard from within the last 20 s, from every node (X-Tomsip-Conversation)",
            registry=r,
        )
        self.refusals = Counter(
            "tomsip_worker_refusals_total",
            "Requests answered 503 because a stage's queue was full",
            ["stage"],
            registry=r,
        )

    def watch(self, stage: str, waiting: Callable[[], int], in_flight: Callable[[], int]) -> None:
        self.queue_depth.labels(stage=stage).set_function(waiting)
        self.in_flight.labels(stage=stage).set_function(in_flight)
