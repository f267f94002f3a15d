"""Real SIP calls to the offline assistant (faster-whisper, the booking responder, piper).

A Python RTP peer speaks piper-voiced sentences when the assistant is quiet; whisper then transcribes
what the caller heard from the received RTP, and the words the booking dialog must say have to be in
it. SIPp does the signalling, including the REFER of a transfer.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.caller import ConversingCaller, utterance
from tests.support.hearing import heard
from tests.support.rtp import RtpPeer
from tests.support.server import TomsipServer
from tests.support.sipp import run_sipp
from tomsip.speech.local.whisper_stt import load_whisper

pytestmark = pytest.mark.sip


@pytest.fixture(scope="module")
def whisper() -> object:
    return load_whisper(2)


@pytest.fixture
def caller_peer() -> Iterator[RtpPeer]:
    peer = RtpPeer()
    yield peer
    peer.close()


def test_a_caller_books_an_appointment_by_voice(server: TomsipServer, caller_peer: RtpPeer, whisper: object) -> None:
    before = server.metric('tomsip_calls_total{outcome="completed"}')
    caller = ConversingCaller(caller_peer, [utterance("book_tuesday"), utterance("yes_please")]).start()
    result = run_sipp("converse", server.sip_port, "booking", [caller_peer.port], timeout_s=90)
    caller.stop()
    assert result.ok, result.errors
    words = heard(caller_peer, whisper)
    # "Shall I book that for you?" is one piper take per process (the phrase cache); whisper tiny hears
    # some takes as "I book that for you" or "shall I both that for you": its stable part is checked.
    # Likewise "Goodbye." is heard as "goodbye" or "bye bye".
    for expected in ("which day", "tuesday", "morning", "that for you", "booked", "bye"):
        assert expected in words, f"{expected!r} not in what the caller heard: {words!r}"
    assert " 10 " in words or " ten " in words, f"the hour is not in what the caller heard: {words!r}"
    assert server.wait_metric('tomsip_calls_total{outcome="completed"}', before + 1) == before + 1
    assert server.metric('tomsip_speculative_stt_total{outcome="used"}') >= 2
    assert server.metric('tomsip_turn_latency_seconds_count{stage="speech_end_to_audio"}') >= 2


def test_asking_for_a_human_transfers_the_call_by_refer(
    server: TomsipServer, caller_peer: RtpPeer, whisper: object
) -> None:
    before = server.metric('tomsip_calls_total{outcome="transferred"}')
    caller = ConversingCaller(caller_peer, [utterance("ask_human")]).start()
    result = run_sipp("transferred", server.sip_port, "booking", [caller_peer.port], timeout_s=90)
    caller.stop()
    assert result.ok, result.errors  # REFER arrived; after our NOTIFY 200 the server sent BYE
    assert "colleague" in heard(caller_peer, whisper)
    assert server.wait_metric('tomsip_calls_total{outcome="transferred"}', before + 1) == before + 1


@pytest.mark.parametrize(("service", "gated"), [("echo", True), ("echo-ungated", False)])
def test_the_assistants_own_echo_does_not_barge_in(
    server: TomsipServer, caller_peer: RtpPeer, whisper: object, service: str, gated: bool
) -> None:
    """The caller stays silent for 10 s on a line that returns our audio 60 ms later and 15 dB down.
    With the echo gate the greeting plays to its end; the control (gate off) shows that the echo
    would barge in (and keep doing so: the assistant answers its own echo)."""
    barge_ins = server.metric("tomsip_barge_ins_total")
    caller = ConversingCaller(caller_peer, [], echo_db=15, echo_delay_ms=60).start()
    result = run_sipp("hold_call", server.sip_port, service, [caller_peer.port], duration_ms=10_000)
    caller.stop()
    assert result.ok, result.errors
    interrupted = server.wait_metric("tomsip_barge_ins_total", barge_ins + 1, timeout_s=1) - barge_ins
    if gated:
        assert interrupted == 0
        assert "monday to friday" in heard(caller_peer, whisper), "the greeting played to its end"
    else:
        assert interrupted >= 1
