"""Carrying real traffic with the offline assistant (whisper, the booking responder, piper), with real
SIPp callers: speech-aware admission refuses at the INVITE and never hangs up an answered call, the
phrase cache speaks the greeting without inference, calibration sets a limit the admission honours,
and a greeting the voice cannot say stops start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.rtp import RtpPeer
from tests.support.server import ROOT, TomsipServer
from tests.support.sipp import run_sipp

pytestmark = pytest.mark.sip

SYNTHESIZED = 'tomsip_tts_sentences_total{source="synthesized"}'
FROM_CACHE = 'tomsip_tts_sentences_total{source="cache"}'


def error_lines(server: TomsipServer) -> list[str]:
    return [line for line in server.log_text().splitlines() if "level=error" in line or "Traceback" in line]


def test_an_overloaded_server_refuses_at_the_invite_and_never_hangs_up_an_answered_call(make_server) -> None:  # type: ignore[no-untyped-def]
    """Twelve callers arrive four a second at a node that carries three conversations, with one STT and
    one TTS worker and no queue: every answered caller speaks twice and hangs up itself (a server BYE
    would fail its SIPp call), the rest are refused at the INVITE (the limit, or answers paced a
    third of a turn cycle apart)."""
    srv: TomsipServer = make_server(
        TOMSIP_MAX_CONVERSATIONS="3",
        TOMSIP_STT_WORKERS="1",
        TOMSIP_TTS_WORKERS="1",
        TOMSIP_INFERENCE_QUEUE="0",
    )
    peers = [RtpPeer() for _ in range(12)]
    try:
        result = run_sipp("speaks_or_busy", srv.sip_port, "booking", [p.port for p in peers], calls=12, rate=4,
                          timeout_s=90)  # fmt: skip
    finally:
        for peer in peers:
            peer.close()
    assert result.ok, f"a call failed (a server BYE on an answered call?):\n{result.errors}"
    refused = sum(srv.metric(f'tomsip_admission_refusals_total{{reason="{r}"}}') for r in ("conversations", "pacing"))
    answered = srv.wait_metric('tomsip_calls_total{outcome="remote_hangup"}', 12 - refused, 10)
    assert refused >= 6 and answered >= 3 and answered + refused == 12, (answered, refused)
    assert srv.metric('tomsip_calls_total{outcome="error"}') == 0
    heard = [p for p in peers if p.audio_packets()]
    assert len(heard) == answered, "only answered callers heard the assistant"
    # A refusal built nothing: no call is left in progress, and the pipeline's count is back to 0.
    assert srv.wait_metric("tomsip_active_calls", 0) == 0
    assert srv.healthz()[1]["active_calls"] == 0
    assert not error_lines(srv), error_lines(srv)[:3]


def test_the_phrase_cache_speaks_the_greeting_with_no_tts_job(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: TomsipServer = make_server()
    synthesized = srv.metric(SYNTHESIZED)
    assert synthesized >= 4, "start-up made the greeting, the apology and the filler"
    peer = RtpPeer()
    try:
        result = run_sipp("hold_call", srv.sip_port, "booking", [peer.port], duration_ms=6000)
    finally:
        peer.close()
    assert result.ok, result.errors
    assert peer.decode().std() > 0.01, "the caller heard the greeting"
    assert srv.metric(FROM_CACHE) == 2  # "Hello, this is the booking line." and its question
    assert srv.metric(SYNTHESIZED) == synthesized, "no sentence was synthesized for the call"


def test_a_calibration_on_a_tiny_budget_gives_a_limit_that_admission_honours(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: TomsipServer = make_server(TOMSIP_SPEECH_CPU_BUDGET="0.0001")
    assert srv.metric('tomsip_conversation_limit{pipeline="local"}') == 1
    assert srv.metric('tomsip_conversation_limit{pipeline="mock"}') == 100  # tones keep the SIP ceiling
    assert srv.healthz()[1]["max_conversations"] == {"local": 1, "mock": 100}
    peer = RtpPeer()
    try:
        held = subprocess.Popen(  # one offline conversation in progress
            [sys.executable, "-c", "import sys; from tests.support.sipp import run_sipp; "
             f"sys.exit(0 if run_sipp('hold_call', {srv.sip_port}, 'booking', [{peer.port}], duration_ms=6000).ok "
             "else 1)"],
            cwd=ROOT,
        )  # fmt: skip
        assert srv.wait_metric("tomsip_active_calls", 1, 10) == 1
        refused = run_sipp("refused", srv.sip_port, "booking")
        assert refused.ok, refused.errors
        assert srv.metric('tomsip_admission_refusals_total{reason="conversations"}') == 1
        tones = run_sipp("hold_call", srv.sip_port, "1000", duration_ms=500)  # the mock plan still answers
        assert tones.ok, tones.errors
        assert held.wait(30) == 0
    finally:
        peer.close()


def test_tomsip_calibrate_prints_the_limit_it_recommends() -> None:
    env = {**os.environ, "TOMSIP_PIPELINE": "local", "TOMSIP_SPEECH_CPU_BUDGET": "0.0001"}
    out = subprocess.run(
        [sys.executable, "-m", "tomsip", "calibrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "TOMSIP_MAX_CONVERSATIONS=1" in out.stdout and "STT" in out.stdout and "TTS" in out.stdout


@pytest.mark.parametrize(
    ("plan", "field"),
    [
        ('greeting = "..."', "field greeting"),
        ('[[policies]]\nname = "calm"\n\n[[policies]]\nname = "odd"\ngreeting = "?!"', "field policies.odd.greeting"),
    ],
)
def test_a_greeting_that_cannot_be_spoken_stops_start_up_naming_file_and_field(
    tmp_path: Path, plan: str, field: str
) -> None:
    folder = tmp_path / "plans"
    folder.mkdir()
    source = folder / "shop.toml"
    source.write_text(f'name = "shop"\ndefault = true\npipeline = "local"\n{plan}\n')
    env = {**os.environ, "TOMSIP_DIALPLANS": str(folder), "TOMSIP_SIP_PORT": "5999", "TOMSIP_HTTP_PORT": "0"}
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "tomsip", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert str(source) in out.stderr and field in out.stderr and "cannot be synthesized" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert time.monotonic() - started < 60


def test_healthz_reports_each_pipelines_conversation_limit(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: TomsipServer = make_server(TOMSIP_MAX_CONVERSATIONS="7")
    status, body = srv.get("/healthz")
    assert status == 200
    assert json.loads(body)["max_conversations"] == {"local": 7, "mock": 7}
