"""Real SIPp calls against a real tomsip process, judged from the RTP that comes back.

The mock brain answers in tones (tomsip/speech/mock.py): the greeting is 440 Hz for 800 ms, the n-th
reply is 600 + 200*(n-1) Hz and as long as the caller spoke, a digit d is 2400 Hz for 100 ms x (d+1),
the goodbye 350 Hz.
"""

from __future__ import annotations

import itertools

import pytest

from tests.support.rtp import RtpPeer
from tests.support.server import TomsipServer
from tests.support.sipp import run_sipp
from tests.support.tones import Tone, find_tones, near
from tomsip.audio.frames import rms_dbfs
from tomsip.audio.g711 import ulaw_to_pcm

pytestmark = pytest.mark.sip

SPEECH_MS = 2700  # speech_short: VAD-measured speech in the 3.2 s pcap


def tones_of(peer: RtpPeer) -> list[Tone]:
    return find_tones(peer.decode())


def first(tones: list[Tone], hz: float) -> Tone:
    matches = [t for t in tones if near(t.hz, hz)]
    assert matches, f"no {hz} Hz tone in {tones}"
    return matches[0]


def test_greeting_then_reply_to_an_utterance(server: TomsipServer, rtp_peer: RtpPeer) -> None:
    before = server.metric('tomsip_calls_total{outcome="remote_hangup"}')
    result = run_sipp("caller_speaks", server.sip_port, "1000", [rtp_peer.port])
    assert result.ok, result.errors
    tones = tones_of(rtp_peer)
    greeting = tones[0]
    assert near(greeting.hz, 440) and 700 <= greeting.length_ms <= 900, tones
    reply = first(tones, 600)
    assert abs(reply.length_ms - SPEECH_MS) <= 400, reply
    # The reply follows the end of speech (1.5 s wait + 3 s of speech + 0.5 s of silence), not before.
    assert 4300 <= reply.start_ms <= 5600, reply
    assert server.wait_metric('tomsip_calls_total{outcome="remote_hangup"}', before + 1) == before + 1


def test_barge_in_cuts_the_reply_and_the_next_utterance_gets_reply_two(server: TomsipServer, rtp_peer: RtpPeer) -> None:
    before = server.metric("tomsip_barge_ins_total")
    result = run_sipp("barge_in", server.sip_port, "1000", [rtp_peer.port])
    assert result.ok, result.errors
    tones = tones_of(rtp_peer)
    cut = first(tones, 600)
    assert cut.length_ms < SPEECH_MS - 900, f"reply 1 was not cut: {tones}"
    second = first(tones, 800)
    assert second.start_ms > cut.start_ms + cut.length_ms
    assert server.wait_metric("tomsip_barge_ins_total", before + 1) == before + 1


def test_without_barge_in_the_reply_plays_to_its_end(server: TomsipServer, rtp_peer: RtpPeer) -> None:
    """The control for the barge-in test: the same caller, barge-in switched off in the dialplan."""
    result = run_sipp("barge_in", server.sip_port, "no-barge", [rtp_peer.port])
    assert result.ok, result.errors
    reply = first(tones_of(rtp_peer), 600)
    assert abs(reply.length_ms - SPEECH_MS) <= 400, reply


def test_dtmf_rfc4733_and_sip_info_are_both_answered(server: TomsipServer, rtp_peer: RtpPeer) -> None:
    before = server.metric("tomsip_dtmf_digits_total")
    result = run_sipp("dtmf", server.sip_port, "1000", [rtp_peer.port])
    assert result.ok, result.errors
    digit_tones = [t for t in tones_of(rtp_peer) if near(t.hz, 2400)]
    lengths = [t.length_ms for t in digit_tones]
    assert len(lengths) == 2, digit_tones
    assert abs(lengths[0] - 600) <= 60 and abs(lengths[1] - 800) <= 60, lengths  # digits 5 then 7
    assert server.wait_metric("tomsip_dtmf_digits_total", before + 2) == before + 2


def test_pound_key_makes_the_server_say_goodbye_and_hang_up(server: TomsipServer, rtp_peer: RtpPeer) -> None:
    before = server.metric('tomsip_calls_total{outcome="completed"}')
    result = run_sipp("dtmf_hangup", server.sip_port, "1000", [rtp_peer.port])
    assert result.ok, result.errors  # the scenario only passes if the server's BYE arrives
    tones = tones_of(rtp_peer)
    ack, goodbye = first(tones, 2600), first(tones, 350)
    assert goodbye.start_ms > ack.start_ms
    assert server.wait_metric('tomsip_calls_total{outcome="completed"}', before + 1) == before + 1


def test_maximum_call_duration_ends_the_call_from_the_server(server: TomsipServer, rtp_peer: RtpPeer) -> None:
    before = server.metric('tomsip_calls_total{outcome="max_duration"}')
    result = run_sipp("server_hangup", server.sip_port, "short-call", [rtp_peer.port])
    assert result.ok, result.errors
    goodbye = first(tones_of(rtp_peer), 350)
    assert 4800 <= goodbye.start_ms <= 5600, goodbye  # max_call_s = 5 in tests/dialplans/short.toml
    assert server.wait_metric('tomsip_calls_total{outcome="max_duration"}', before + 1) == before + 1


def test_caller_hangs_up_during_the_greeting(server: TomsipServer, rtp_peer: RtpPeer) -> None:
    before = server.metric('tomsip_calls_total{outcome="remote_hangup"}')
    result = run_sipp("caller_bye", server.sip_port, "1000", [rtp_peer.port])
    assert result.ok, result.errors
    assert server.wait_metric('tomsip_calls_total{outcome="remote_hangup"}', before + 1) == before + 1
    assert server.wait_metric("tomsip_active_calls", 0) == 0


def test_cancel_before_answer(server: TomsipServer) -> None:
    before = server.metric('tomsip_calls_total{outcome="not_answered"}')
    result = run_sipp("cancel", server.sip_port, "ring-first")
    assert result.ok, result.errors  # 180, then 200 for CANCEL and 487 for the INVITE
    assert server.wait_metric('tomsip_calls_total{outcome="not_answered"}', before + 1) == before + 1


def test_a_caller_who_holds_is_not_talked_to_and_is_greeted_again_on_resume(
    server: TomsipServer, rtp_peer: RtpPeer
) -> None:
    """The caller holds 300 ms into the 800 ms greeting, for 2 s, resumes, then speaks."""
    holds = server.metric("tomsip_caller_holds_total")
    result = run_sipp("hold_resume", server.sip_port, "1000", [rtp_peer.port])
    assert result.ok, result.errors
    start = rtp_peer.packets[0].arrival
    voiced = [p.arrival - start for p in rtp_peer.packets if rms_dbfs(ulaw_to_pcm(p.payload)) > -45]
    silent_spans = [(a, b) for a, b in itertools.pairwise(voiced) if b - a > 1.0]
    assert silent_spans and silent_spans[0][0] < 0.6 and silent_spans[0][1] - silent_spans[0][0] > 1.5, (
        f"the greeting stopped at the hold and nothing was said to the held line: {silent_spans}"
    )
    greetings = [t for t in tones_of(rtp_peer) if near(t.hz, 440)]
    assert len(greetings) == 2 and greetings[0].length_ms < 500, greetings  # cut by the hold, then again
    reply = first(tones_of(rtp_peer), 600)
    assert abs(reply.length_ms - SPEECH_MS) <= 400, "the conversation goes on after the resume"
    assert server.wait_metric("tomsip_caller_holds_total", holds + 1) == holds + 1


def test_no_common_codec_is_refused_with_488(server: TomsipServer) -> None:
    result = run_sipp("no_common_codec", server.sip_port, "1000")
    assert result.ok, result.errors


def test_call_over_tcp(server: TomsipServer, rtp_peer: RtpPeer) -> None:
    result = run_sipp("caller_speaks", server.sip_port, "1000", [rtp_peer.port], transport="t1")
    assert result.ok, result.errors
    first(tones_of(rtp_peer), 600)


def test_twenty_calls_at_once_all_get_their_replies(server: TomsipServer) -> None:
    peers = [RtpPeer() for _ in range(20)]
    try:
        result = run_sipp("caller_speaks", server.sip_port, "1000", [p.port for p in peers], calls=20, timeout_s=90)
        assert result.ok, result.errors
        for peer in peers:
            tones = tones_of(peer)
            assert near(tones[0].hz, 440), tones
            assert abs(first(tones, 600).length_ms - SPEECH_MS) <= 400
    finally:
        for peer in peers:
            peer.close()


def test_a_cough_pauses_the_reply_which_then_resumes_in_full(server: TomsipServer, rtp_peer: RtpPeer) -> None:
    """The other half of barge-in: a 120 ms sound pauses playout at its onset, then playout resumes
    from where it stopped, so the whole reply is still heard and no barge-in is counted."""
    before = server.metric("tomsip_barge_ins_total")
    result = run_sipp("cough", server.sip_port, "1000", [rtp_peer.port])
    assert result.ok, result.errors
    pieces = [t for t in tones_of(rtp_peer) if near(t.hz, 600)]
    assert len(pieces) == 2, pieces  # paused once
    assert abs(sum(p.length_ms for p in pieces) - SPEECH_MS) <= 400, pieces  # nothing lost
    gap = pieces[1].start_ms - (pieces[0].start_ms + pieces[0].length_ms)
    assert 100 <= gap <= 600, gap
    assert server.metric("tomsip_barge_ins_total") == before
    assert not any(near(t.hz, 800) for t in tones_of(rtp_peer))  # the cough was not a turn


def test_bench_load_caller_runs_and_barges_in(server: TomsipServer) -> None:
    """bench/capacity's caller, at two calls: it must work as a scenario before it is a load."""
    before = server.metric("tomsip_barge_ins_total")
    result = run_sipp("load_call", server.sip_port, "1000", calls=2)
    assert result.ok, result.errors
    assert server.wait_metric("tomsip_barge_ins_total", before + 2) == before + 2
