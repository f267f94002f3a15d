"""Admission control (call limit, per-source INVITE rate), graceful drain on SIGTERM, trunk REGISTER."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import pytest

from tests.support.net import free_port
from tests.support.server import TomsipServer
from tests.support.sipp import SCENARIOS, SippResult, run_sipp

pytestmark = pytest.mark.sip


def in_background(fn, *args, **kwargs) -> tuple[threading.Thread, list[SippResult]]:  # type: ignore[no-untyped-def]
    out: list[SippResult] = []
    thread = threading.Thread(target=lambda: out.append(fn(*args, **kwargs)), daemon=True)
    thread.start()
    return thread, out


def wait_active(server: TomsipServer, n: int, timeout_s: float = 10) -> None:
    assert server.wait_metric("tomsip_active_calls", n, timeout_s) == n


def test_call_over_the_limit_is_refused_with_486(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: TomsipServer = make_server(TOMSIP_MAX_CALLS="2")
    thread, held = in_background(run_sipp, "hold_call", srv.sip_port, calls=2, duration_ms=5000)
    wait_active(srv, 2)
    refused = run_sipp("refused", srv.sip_port)
    assert refused.ok, refused.errors
    assert srv.metric('tomsip_admission_refusals_total{reason="capacity"}') == 1
    thread.join(timeout=30)
    assert held and held[0].ok, held and held[0].errors  # the two admitted calls were not disturbed


def test_invite_flood_from_one_source_is_rate_limited(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: TomsipServer = make_server(TOMSIP_INVITE_RATE="0.2", TOMSIP_INVITE_BURST="2")
    admitted = run_sipp("hold_call", srv.sip_port, calls=2, duration_ms=200)
    assert admitted.ok, admitted.errors
    refused = run_sipp("refused", srv.sip_port)
    assert refused.ok, refused.errors
    assert srv.metric('tomsip_admission_refusals_total{reason="rate"}') == 1


def test_sigterm_drains_refuses_new_calls_and_lets_live_ones_finish(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: TomsipServer = make_server(TOMSIP_DRAIN_TIMEOUT_S="20")
    thread, live = in_background(run_sipp, "hold_call", srv.sip_port, duration_ms=4000)
    wait_active(srv, 1)
    srv.signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while srv.healthz()[0] != 503 and time.monotonic() < deadline:
        time.sleep(0.05)
    status, report = srv.healthz()
    assert status == 503 and report["draining"] is True
    refused = run_sipp("refused", srv.sip_port)
    assert refused.ok, refused.errors
    thread.join(timeout=30)
    assert live and live[0].ok, live and live[0].errors  # finished by the caller, not cut off
    assert srv.proc is not None and srv.proc.wait(timeout=15) == 0


def test_drain_deadline_ends_remaining_calls_with_bye(make_server) -> None:  # type: ignore[no-untyped-def]
    srv: TomsipServer = make_server(TOMSIP_DRAIN_TIMEOUT_S="1")
    thread, live = in_background(run_sipp, "server_hangup", srv.sip_port)  # waits for the server's BYE
    wait_active(srv, 1)
    started = time.monotonic()
    srv.signal(signal.SIGTERM)
    thread.join(timeout=30)
    assert live and live[0].ok, live and live[0].errors
    assert time.monotonic() - started < 8
    assert srv.proc is not None and srv.proc.wait(timeout=15) == 0
    assert "hanging up reason=drain" in srv.log_text()


def registrar(port: int, scenario: str = "registrar") -> subprocess.Popen[bytes]:
    cmd = ["sipp", "-sf", str(SCENARIOS / f"{scenario}.xml"), "-i", "127.0.0.1", "-p", str(port), "-m", "1"]
    return subprocess.Popen(
        [*cmd, "-nostdin", "-timeout", "30s", "-timeout_error"],
        cwd=SCENARIOS,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(("password", "holds"), [("s3cret-pass", True), ("wrong-pass", False)])
def test_trunk_registration_with_digest_auth(make_server, password: str, holds: bool) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    reg = registrar(port)
    try:
        srv: TomsipServer = make_server(
            TOMSIP_TRUNK_REGISTRAR=f"127.0.0.1:{port}",
            TOMSIP_TRUNK_USER="tomsip-trunk",
            TOMSIP_TRUNK_PASSWORD=password,
        )
        assert reg.wait(timeout=30) == 0  # the registrar saw both REGISTERs and answered them
        if holds:
            assert srv.wait_metric("tomsip_trunk_registered", 1) == 1
            assert srv.metric("tomsip_registration_failures_total") == 0
        else:
            assert srv.wait_metric("tomsip_registration_failures_total", 1) >= 1
            assert srv.metric("tomsip_trunk_registered") == 0
            log = srv.log_text()
            assert "trunk registration" in log and "status=403" in log
            assert password not in log
    finally:
        if reg.poll() is None:
            reg.kill()
            reg.wait()


def test_trunk_registration_is_refreshed_before_it_expires(make_server) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    reg = registrar(port, "registrar_refresh")  # grants 4 s, then must see a re-authenticated refresh
    try:
        srv: TomsipServer = make_server(
            TOMSIP_TRUNK_REGISTRAR=f"127.0.0.1:{port}",
            TOMSIP_TRUNK_USER="tomsip-trunk",
            TOMSIP_TRUNK_PASSWORD="s3cret-pass",
        )
        assert reg.wait(timeout=30) == 0  # fails if no refresh came within 10 s of the first 200
        assert srv.metric("tomsip_trunk_registered") == 1
        assert srv.metric("tomsip_registration_failures_total") == 0
    finally:
        if reg.poll() is None:
            reg.kill()
            reg.wait()
