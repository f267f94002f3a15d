"""Calls tomsip places (POST /api/calls, `tomsip dial`), to SIPp playing the called side.

tomsip's outbound proxy points at SIPp's UAS; the called side's SDP names the test's RTP peer, which
records what tomsip says. The reminder dialplan (tests/dialplans/reminder.toml) detects who answered
before it speaks: the mock brain greets a person with 440 Hz and leaves a machine 1200 Hz for 1 s.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.admin_api import admin_api
from tests.support.net import free_port
from tests.support.rtp import RtpPeer
from tests.support.server import ROOT, TomsipServer
from tests.support.sipp import SippUas
from tests.support.status_receiver import StatusReceiver
from tests.support.tones import Tone, find_tones, near

pytestmark = pytest.mark.sip

TOKEN = "outbound-test-admin-token"
GREETING_HZ, VOICEMAIL_HZ, GOODBYE_HZ = 440, 1200, 350


@pytest.fixture(scope="module")
def uas_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def dialer(tmp_path_factory: pytest.TempPathFactory, uas_port: int) -> Iterator[TomsipServer]:
    """A tomsip whose outbound calls go through SIPp on `uas_port`."""
    env = {
        "TOMSIP_ADMIN_TOKEN": TOKEN,
        "TOMSIP_OUTBOUND_PROXY": f"127.0.0.1:{uas_port}",
        "TOMSIP_STATUS_CALLBACK_TIMEOUT_S": "0.5",
        "TOMSIP_STATUS_CALLBACK_ATTEMPTS": "2",
    }
    srv = TomsipServer(env=env, log_path=tmp_path_factory.mktemp("outbound") / "server.log").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[StatusReceiver]:
    r = StatusReceiver()
    yield r
    r.close()


def api(server: TomsipServer, path: str, body: object = None, token: str | None = TOKEN) -> tuple[int, Any]:
    return admin_api(server.http_port, path, body, token)


def place(server: TomsipServer, status_url: str | None = None, **extra: object) -> dict[str, Any]:
    body: dict[str, object] = {"to": "+4930123456", "dialplan": "reminder", "context": {"name": "Anna"}}
    if status_url:
        body["status_url"] = status_url
    body.update(extra)
    status, answer = api(server, "/api/calls", body)
    assert status == 202, answer
    assert answer["state"] == "queued" and answer["to"].endswith("56") and "30123" not in answer["to"]
    return answer


def result_of(server: TomsipServer, call_id: str, timeout_s: float = 40) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, answer = api(server, f"/api/calls/{call_id}")
        assert status == 200, answer
        if answer["state"] == "done":
            return answer
        time.sleep(0.1)
    raise AssertionError(f"{call_id} has no result: {answer}")


def answered_call(server: TomsipServer, uas_port: int, pcap: str | None, receiver: StatusReceiver) -> tuple:
    peer = RtpPeer()
    uas = SippUas("uas_answers", peer.port, pcap=pcap, port=uas_port)
    try:
        call = place(server, receiver.url)
        sipp = uas.wait()
        assert sipp.ok, sipp.stdout + sipp.errors
        return result_of(server, call["id"]), find_tones(peer.decode()), receiver.wait_for(call["id"])
    finally:
        uas.close()
        peer.close()


def tone(tones: list[Tone], hz: float) -> Tone | None:
    return next((t for t in tones if near(t.hz, hz)), None)


def test_a_person_who_says_hello_is_greeted_as_soon_as_they_pause(
    dialer: TomsipServer, uas_port: int, receiver: StatusReceiver
) -> None:
    result, tones, posted = answered_call(dialer, uas_port, "amd_hello_pcmu.pcap", receiver)
    assert result["result"] == "answered" and result["answered_by"] == "human", result
    greeting = tone(tones, GREETING_HZ)
    assert greeting is not None, tones
    # "Hello?" ends about 1 s after the answer; the greeting follows the 700 ms pause that decides.
    assert 1200 <= greeting.start_ms <= 2800, greeting
    assert 1000 <= result["amd_ms"] <= 2600, result
    assert tone(tones, VOICEMAIL_HZ) is None, tones
    assert result["outcome"] == "no_input" and result["answer_s"] < 3, result
    assert posted["result"] == "answered" and posted["answered_by"] == "human" and posted["id"] == result["id"]
    assert dialer.metric('tomsip_amd_decisions_total{answer="human",reason="short_greeting"}') >= 1


def test_a_person_who_talks_on_after_a_pause_is_still_a_person(
    dialer: TomsipServer, uas_port: int, receiver: StatusReceiver
) -> None:
    result, tones, _ = answered_call(dialer, uas_port, "amd_talkative_pcmu.pcap", receiver)
    assert result["answered_by"] == "human", result
    assert tone(tones, GREETING_HZ) is not None and tone(tones, VOICEMAIL_HZ) is None, tones


def test_a_silent_line_is_greeted_after_the_detector_gives_up(
    dialer: TomsipServer, uas_port: int, receiver: StatusReceiver
) -> None:
    result, tones, _ = answered_call(dialer, uas_port, None, receiver)
    assert result["answered_by"] == "unknown", result
    greeting = tone(tones, GREETING_HZ)
    assert greeting is not None and 2300 <= greeting.start_ms <= 3600, tones


def test_an_answering_machine_gets_the_message_after_its_beep_and_the_call_ends(
    dialer: TomsipServer, uas_port: int, receiver: StatusReceiver
) -> None:
    before = dialer.metric('tomsip_calls_total{outcome="voicemail"}')
    result, tones, posted = answered_call(dialer, uas_port, "amd_voicemail_pcmu.pcap", receiver)
    assert result["answered_by"] == "machine" and result["outcome"] == "voicemail", result
    assert 2900 <= result["amd_ms"] <= 3600, result  # a greeting still going at 3 s
    assert tone(tones, GREETING_HZ) is None, f"a person's greeting was spoken to the machine: {tones}"
    message = tone(tones, VOICEMAIL_HZ)
    assert message is not None and abs(message.length_ms - 1000) <= 100, tones
    # The beep ends 11.76 s into the pcap, which starts with the answer: the message follows it at once.
    assert 11_760 <= message.start_ms <= 12_600, message
    assert posted["outcome"] == "voicemail"
    assert dialer.wait_metric('tomsip_calls_total{outcome="voicemail"}', before + 1) == before + 1


def test_busy_no_answer_and_a_dead_status_url_are_results_not_errors(
    dialer: TomsipServer, uas_port: int, receiver: StatusReceiver
) -> None:
    # A status_url that accepts connections and never answers: the result is still kept and counted.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    dead_url = f"http://127.0.0.1:{silent.getsockname()[1]}/never"
    failed_before = dialer.metric('tomsip_status_callbacks_total{outcome="failed"}')
    try:
        uas = SippUas("uas_busy", port=uas_port)
        call = place(dialer, dead_url)
        assert uas.wait().ok
        busy = result_of(dialer, call["id"])
        assert busy["result"] == "busy" and busy["sip_status"] == 486, busy
        assert dialer.wait_metric('tomsip_status_callbacks_total{outcome="failed"}', failed_before + 1, 10) == (
            failed_before + 1
        )
    finally:
        silent.close()

    uas = SippUas("uas_no_answer", port=uas_port)
    started = time.monotonic()
    call = place(dialer, receiver.url)
    sipp = uas.wait()
    assert sipp.ok, sipp.stdout + sipp.errors
    unanswered = result_of(dialer, call["id"])
    assert unanswered["result"] == "no_answer", unanswered  # rang for the dialplan's 5 s
    assert 4.5 <= time.monotonic() - started <= 9
    assert receiver.wait_for(call["id"])["result"] == "no_answer"
    assert dialer.metric('tomsip_outbound_calls_total{result="busy"}') >= 1
    assert dialer.metric('tomsip_outbound_calls_total{result="no_answer"}') >= 1
    assert "+4930123456" not in dialer.log_text() and "4930123456" not in dialer.log_text()
    assert " ERROR " not in dialer.log_text() and "Traceback" not in dialer.log_text()


def test_malformed_requests_get_400_naming_the_field(dialer: TomsipServer) -> None:
    good = {"to": "+4930123456", "dialplan": "reminder"}
    cases: list[tuple[object, str]] = [
        ({**good, "to": "sip:evil@example.com"}, "to"),
        ({**good, "to": "12\r\n34"}, "to"),
        ({**good, "dialplan": "nope"}, "dialplan"),
        ({**good, "context": {"bad key": "x"}}, "context"),
        ({**good, "context": {"name": "a\x00b"}}, "context"),
        ({**good, "status_url": "file:///etc/passwd"}, "status_url"),
        ({**good, "caller_id": "anonymous"}, "caller_id"),
        ({**good, "extra": 1}, "extra"),
        ({"dialplan": "reminder"}, "to"),
    ]
    for body, field in cases:
        status, answer = api(dialer, "/api/calls", body)
        assert status == 400 and answer.get("field") == field, (body, status, answer)
    for raw in (b"{", b"[1, 2]", b"\xff\xfe", b"null"):
        status, answer = api(dialer, "/api/calls", raw)
        assert status == 400 and answer["error"] == "invalid_json", (raw, answer)
    assert api(dialer, "/api/calls", good, token="wrong")[0] == 401
    assert api(dialer, "/api/calls", good, token=None)[0] == 401
    assert api(dialer, "/api/calls/out-nope")[0] == 404
    assert dialer.healthz()[0] == 200


def test_without_an_admin_token_or_a_trunk_no_call_is_placed(server: TomsipServer, make_server: Any) -> None:
    body = {"to": "123", "dialplan": "reminder"}
    status, answer = api(server, "/api/calls", body, token=None)
    assert status == 403 and answer["error"] == "outbound_disabled", answer
    no_trunk = make_server(TOMSIP_ADMIN_TOKEN=TOKEN)
    status, answer = api(no_trunk, "/api/calls", body)
    assert status == 409 and answer["error"] == "no_trunk", answer


def test_pacing_refuses_past_the_queue_and_an_unreachable_trunk_fails_cleanly(make_server: Any) -> None:
    dead = free_port()  # nothing listens: the INVITE gets no answer (or an ICMP refusal)
    srv = make_server(
        TOMSIP_ADMIN_TOKEN=TOKEN,
        TOMSIP_OUTBOUND_PROXY=f"127.0.0.1:{dead}",
        TOMSIP_OUTBOUND_MAX="1",
        TOMSIP_OUTBOUND_RATE="0.2",
        TOMSIP_OUTBOUND_QUEUE="1",
    )
    answers = [api(srv, "/api/calls", {"to": f"10{i}", "dialplan": "reminder"}) for i in range(4)]
    statuses = [status for status, _ in answers]
    assert statuses.count(202) == 3 and statuses[-1] == 503, answers
    assert answers[-1][1]["error"] == "queue_full"
    first = result_of(srv, answers[0][1]["id"], timeout_s=45)
    assert first["result"] == "failed" and first["answered_by"] == "", first
    assert srv.metric('tomsip_outbound_refused_total{reason="queue_full"}') == 1
    assert srv.healthz()[0] == 200 and " ERROR " not in srv.log_text()


def test_tomsip_dial_waits_for_the_result_and_says_it(dialer: TomsipServer, uas_port: int) -> None:
    uas = SippUas("uas_busy", port=uas_port)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tomsip", "dial", "--to", "5551234", "--dialplan", "reminder", "--wait"],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "TOMSIP_ADMIN_TOKEN": TOKEN, "TOMSIP_HTTP_PORT": str(dialer.http_port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        assert uas.wait().ok
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["result"] == "busy" and result["sip_status"] == 486 and result["to"] == "*****34", done.stdout


def test_a_registered_trunk_places_the_call_and_answers_its_digest_challenge(make_server: Any) -> None:
    trunk_port = free_port()
    scenarios = ROOT / "sipp_scenarios"
    trunk = subprocess.Popen(
        [
            *("sipp", "-sf", str(scenarios / "trunk.xml"), "-i", "127.0.0.1", "-p", str(trunk_port), "-m", "2"),
            *("-timeout", "60s", "-timeout_error", "-nostdin", "-mp", str(free_port(span=4))),
        ],
        cwd=scenarios,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        srv = make_server(
            TOMSIP_ADMIN_TOKEN=TOKEN,
            TOMSIP_TRUNK_REGISTRAR=f"127.0.0.1:{trunk_port}",
            TOMSIP_TRUNK_USER="tomsip-trunk",
            TOMSIP_TRUNK_PASSWORD="s3cret-pass",
        )
        assert srv.wait_metric("tomsip_trunk_registered", 1, timeout_s=15) == 1, srv.log_text()[-3000:]
        call = place(srv)
        result = result_of(srv, call["id"])
        assert result["result"] == "busy" and result["sip_status"] == 486, result  # 403 had the digest been wrong
        assert trunk.wait(timeout=30) == 0, "the trunk saw a registration and an authenticated INVITE"
    finally:
        if trunk.poll() is None:
            trunk.kill()
            trunk.wait()
