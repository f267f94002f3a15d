"""Writes deploy/grafana-dashboard.json: the tomsip dashboard for Grafana over Prometheus.

The dashboard is generated so that its panels stay few, consistent and checked: the test suite
asserts that every metric a panel queries is one tomsip exports (tests/test_operations.py).
    python deploy/make_dashboard.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "grafana-dashboard.json"
V2V = 'tomsip_turn_latency_seconds_bucket{stage="speech_end_to_audio"}'

# (title, unit, [(PromQL, legend)], width)
PANELS: list[tuple[str, str, list[tuple[str, str]], int]] = [
    ("Active calls", "short", [("sum by (instance) (tomsip_active_calls)", "{{instance}}")], 8),
    ("Calls ended / s by outcome", "ops", [("sum by (outcome) (rate(tomsip_calls_total[1m]))", "{{outcome}}")], 8),
    (
        "Refusals / s",
        "ops",
        [
            ("sum by (reason) (rate(tomsip_admission_refusals_total[1m]))", "SIP {{reason}}"),
            ("sum by (reason) (rate(tomsip_auth_failures_total[1m]))", "browser auth {{reason}}"),
            ("sum by (scope) (rate(tomsip_rate_limit_hits_total[1m]))", "rate limit {{scope}}"),
        ],
        8,
    ),
    (
        "Voice-to-voice latency (speech end to first reply audio)",
        "s",
        [
            (
                f"histogram_quantile(0.5, sum by (le) (rate({V2V}[5m])))",
                "p50",
            ),
            (
                f"histogram_quantile(0.9, sum by (le) (rate({V2V}[5m])))",
                "p90",
            ),
        ],
        12,
    ),
    (
        "Turn stages p90",
        "s",
        [
            (
                "histogram_quantile(0.9, sum by (le, stage) (rate(tomsip_turn_latency_seconds_bucket[5m])))",
                "{{stage}}",
            )
        ],
        12,
    ),
    (
        "Barge-ins and DTMF / s",
        "ops",
        [
            ("sum(rate(tomsip_barge_ins_total[1m]))", "barge-ins"),
            ("sum(rate(tomsip_dtmf_digits_total[1m]))", "digits"),
            ("sum(rate(tomsip_echo_suppressed_frames_total[1m]))", "echo frames suppressed"),
        ],
        8,
    ),
    (
        "Inference queue wait p90",
        "s",
        [
            (
                "histogram_quantile(0.9, sum by (le, stage) (rate(tomsip_inference_queue_wait_seconds_bucket[5m])))",
                "{{stage}}",
            )
        ],
        8,
    ),
    (
        "Speech API errors / s",
        "ops",
        [("sum by (backend, kind) (rate(tomsip_api_errors_total[5m]))", "{{backend}} {{kind}}")],
        8,
    ),
    (
        "Media clock lateness p99",
        "s",
        [
            (
                "histogram_quantile(0.99, sum by (le, instance) (rate(tomsip_media_tick_lateness_seconds_bucket[5m])))",
                "{{instance}}",
            )
        ],
        8,
    ),
    (
        "Browser sessions / s",
        "ops",
        [
            ("sum by (outcome) (rate(tomsip_websocket_connections_total[1m]))", "{{outcome}}"),
            ("sum(rate(tomsip_auth_success_total[1m]))", "auth ok"),
        ],
        8,
    ),
    (
        "Policy share (calls / s by policy)",
        "ops",
        [("sum by (dialplan, policy) (rate(tomsip_policy_selections_total[15m]))", "{{dialplan}}/{{policy}}")],
        8,
    ),
    (
        "Mean reward by policy",
        "percentunit",
        [
            (
                "sum by (policy) (rate(tomsip_policy_reward_sum[1h]))"
                " / sum by (policy) (rate(tomsip_policy_reward_count[1h]))",
                "{{policy}}",
            )
        ],
        8,
    ),
    (
        "Guard decisions and ratings / s",
        "ops",
        [
            ("sum by (decision) (rate(tomsip_guard_decisions_total[15m]))", "guard {{decision}}"),
            ("sum by (source) (rate(tomsip_ratings_total[15m]))", "rating {{source}}"),
        ],
        8,
    ),
    (
        "Store health",
        "short",
        [
            ("sum by (op) (rate(tomsip_store_errors_total[5m]))", "errors {{op}} / s"),
            ("sum(rate(tomsip_store_dropped_writes_total[5m]))", "dropped writes / s"),
            ("sum(tomsip_draining)", "nodes draining"),
        ],
        8,
    ),
]


def dashboard() -> dict[str, object]:
    panels = []
    x = y = 0
    for i, (title, unit, queries, width) in enumerate(PANELS, start=1):
        if x + width > 24:
            x, y = 0, y + 8
        panels.append(
            {
                "id": i,
                "type": "timeseries",
                "title": title,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"x": x, "y": y, "w": width, "h": 8},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend}
                    for j, (expr, legend) in enumerate(queries)
                ],
            }
        )
        x += width
    return {
        "title": "tomsip",
        "uid": "tomsip-overview",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "10s",
        "tags": ["tomsip", "telephony"],
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        },
        "panels": panels,
    }


if __name__ == "__main__":
    OUT.write_text(json.dumps(dashboard(), indent=2) + "\n")
    print(f"wrote {OUT}")
