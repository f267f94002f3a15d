"""Warm transfer on real SIP calls: a SIPp caller presses 0 ("a person, please") on a dialplan whose
transfer is warm, and a SIPp agent answers, is busy, never answers, or does not accept.

The mock brain speaks tones: the transfer notice 3400 Hz, the agent's briefing 3200 Hz, the offer to
take a message 3800 Hz, the thanks 2200 Hz, goodbye 350 Hz. The agent's own voice is a 1500 Hz tone
(agent_tone_pcmu.pcap), so that the caller's side can tell it from anything tomsip says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.caller import ConversingCaller, utterance
from tests.support.hearing import heard
from tests.support.net import free_port
from tests.support.rtp import RtpPeer
from tests.support.server import TomsipServer
from tests.support.sipp import SippUas, run_sipp
from tests.support.tones import Tone, find_tones, near
from tomsip.speech.local.whisper_stt import load_whisper

pytestmark = pytest.mark.sip

BRIEFING_HZ, OFFER_HZ, THANKS_HZ, AGENT_HZ, HOLD_HZ = 3200, 3800, 2200, 1500, (660, 880)


@pytest.fixture(scope="module")
def agent_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def switchboard(tmp_path_factory: pytest.TempPathFactory, agent_port: int) -> Iterator[TomsipServer]:
    folder = tmp_path_factory.mktemp("warm")
    plans = folder / "dialplans"
    plans.mkdir()
    agent = f"sip:agent@127.0.0.1:{agent_port}"
    common = f'[settings]\nsilence_ms = 600\n\n[options]\ntransfer_uri = "{agent}"\n'
    (plans / "warm.toml").write_text(
        f'name = "warm"\nnumbers = ["warm"]\ndefault = true\n\n[transfer]\nmode = "warm"\nring_s = 5\n\n{common}'
    )
    (plans / "accept.toml").write_text(
        'name = "warm-accept"\nnumbers = ["warm-accept"]\n\n[transfer]\nmode = "warm"\naccept_digit = "1"\n'
        f"accept_s = 2\n\n{common}"
    )
    (plans / "booking.toml").write_text(
        'name = "warm-booking"\nnumbers = ["warm-booking"]\npipeline = "local"\n'
        'greeting = "Hello, this is the booking line. Which day and time would you like to come in?"\n\n'
        f'[transfer]\nmode = "warm"\nring_s = 5\n\n[options]\ntransfer_uri = "{agent}"\n'
    )
    env = {"TOMSIP_DIALPLANS": str(plans), "TOMSIP_MESSAGES_FILE": str(folder / "messages.jsonl")}
    srv = TomsipServer(env=env, log_path=folder / "server.log").start(timeout_s=90)
    yield srv
    srv.stop()


def tones(peer: RtpPeer) -> list[Tone]:
    return [t for t in find_tones(peer.decode()) if t.length_ms >= 60]


def first(found: list[Tone], hz: float) -> Tone | None:
    return next((t for t in found if near(t.hz, hz)), None)


def voiced_ms(peer: RtpPeer, after_ms: int) -> int:
    audio = peer.decode()[after_ms * 8 :]
    windows = [audio[i : i + 160] for i in range(0, len(audio) - 159, 160)]
    return 20 * sum(1 for w in windows if np.sqrt(np.mean(w.astype(np.float64) ** 2)) > 32768 * 10 ** (-40 / 20))


def messages(server: TomsipServer) -> list[dict[str, object]]:
    path = Path(server.env["TOMSIP_MESSAGES_FILE"])
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_the_agent_is_briefed_and_then_bridged_to_the_caller(switchboard: TomsipServer, agent_port: int) -> None:
    caller, agent = RtpPeer(), RtpPeer()
    uas = SippUas("uas_answers", agent.port, pcap="agent_tone_pcmu.pcap", port=agent_port)
    try:
        before = switchboard.metric('tomsip_calls_total{outcome="transferred"}')
        result = run_sipp("transfer_bridged", switchboard.sip_port, "warm", [caller.port], timeout_s=60)
        assert result.ok, result.errors
        assert uas.wait().ok, "the agent's leg ended with BYE once the caller hung up"
        heard_by_caller, heard_by_agent = tones(caller), tones(agent)
        briefing = first(heard_by_agent, BRIEFING_HZ)
        assert briefing is not None and briefing.start_ms < 300, heard_by_agent  # right after the answer
        assert any(near(t.hz, h) for t in heard_by_caller for h in HOLD_HZ), f"no hold chime: {heard_by_caller}"
        voice = first(heard_by_caller, AGENT_HZ)
        assert voice is not None and voice.length_ms >= 1500, (
            f"the agent's voice never reached the caller: {heard_by_caller}"
        )
        chimes = [t for t in heard_by_caller if any(near(t.hz, h) for h in HOLD_HZ)]
        assert all(t.start_ms < voice.start_ms for t in chimes), "the hold music stops once they are connected"
        # The caller's sentence (7 s after the answer) reached the agent, after the briefing.
        assert voiced_ms(agent, briefing.start_ms + briefing.length_ms + 3000) >= 1000
        assert switchboard.metric('tomsip_warm_transfers_total{result="bridged"}') == 1
        assert switchboard.wait_metric('tomsip_calls_total{outcome="transferred"}', before + 1) == before + 1
    finally:
        uas.close()
        caller.close()
        agent.close()


@pytest.mark.parametrize(
    ("agent", "service", "why"),
    [
        ("uas_busy", "warm", "busy"),
        ("uas_no_answer", "warm", "no_answer"),
        ("uas_answers", "warm-accept", "not_accepted"),
    ],
)
def test_nobody_takes_it_so_the_assistant_comes_back_and_takes_a_message(
    switchboard: TomsipServer, agent_port: int, agent: str, service: str, why: str
) -> None:
    caller, agent_peer = RtpPeer(), RtpPeer()
    uas = SippUas(agent, agent_peer.port, port=agent_port)
    left = len(messages(switchboard))
    try:
        result = run_sipp("transfer_message", switchboard.sip_port, service, [caller.port], timeout_s=60)
        assert result.ok, result.errors
        assert uas.wait().ok
        heard = tones(caller)
        offer, thanks = first(heard, OFFER_HZ), first(heard, THANKS_HZ)
        assert offer is not None and thanks is not None and offer.start_ms < thanks.start_ms, heard
        assert first(heard, AGENT_HZ) is None
        assert switchboard.metric(f'tomsip_warm_transfers_total{{result="failed_{why}"}}') >= 1
        assert switchboard.wait_metric("tomsip_messages_taken_total", switchboard.metric("tomsip_messages_taken_total"))
        new = messages(switchboard)[left:]
        assert len(new) == 1 and "ms of speech" in str(new[0]["message"]) and "caller@" in str(new[0]["caller"]), new
        if why == "not_accepted":
            assert first(tones(agent_peer), BRIEFING_HZ) is not None, "the agent was briefed, then let go"
    finally:
        uas.close()
        caller.close()
        agent_peer.close()
    assert " ERROR " not in switchboard.log_text() and "Traceback" not in switchboard.log_text()


def test_a_caller_that_offers_replaces_is_handed_over_by_refer(switchboard: TomsipServer, agent_port: int) -> None:
    caller, agent = RtpPeer(), RtpPeer()
    uas = SippUas("uas_consulted", agent.port, pcap="agent_tone_pcmu.pcap", port=agent_port)
    try:
        before = switchboard.metric('tomsip_calls_total{outcome="transferred"}')
        result = run_sipp("transfer_referred", switchboard.sip_port, "warm", [caller.port], timeout_s=60)
        assert result.ok, result.errors  # the REFER's Refer-To named the agent's dialog with Replaces
        agent_side = uas.wait()  # the consultation leg ends once the caller reports the new call up
        assert agent_side.ok, agent_side.stdout + agent_side.errors
        assert first(tones(agent), BRIEFING_HZ) is not None
        assert switchboard.metric('tomsip_warm_transfers_total{result="referred"}') == 1
        assert switchboard.wait_metric('tomsip_calls_total{outcome="transferred"}', before + 1) == before + 1
    finally:
        uas.close()
        caller.close()
        agent.close()


def test_the_booking_assistant_briefs_the_agent_with_who_wants_what(switchboard: TomsipServer, agent_port: int) -> None:
    """By voice: the caller asks for Tuesday at ten, then for a person; the agent hears the summary."""
    caller_peer, agent = RtpPeer(), RtpPeer()
    uas = SippUas("uas_answers", agent.port, port=agent_port)
    caller = ConversingCaller(caller_peer, [utterance("book_tuesday"), utterance("ask_human")]).start()
    try:
        result = run_sipp("hold_call", switchboard.sip_port, "warm-booking", [caller_peer.port], duration_ms=24_000)
        caller.stop()
        assert result.ok, result.errors
        assert uas.wait().ok
        briefing = heard(agent, load_whisper(2))
        # whisper tiny hears "A caller would like" as "I call her with like" at times: the slots are checked.
        assert "tuesday" in briefing and "appointment" in briefing, briefing
        assert " 10 " in briefing or " ten " in briefing, briefing
        assert "colleague" in heard(caller_peer, load_whisper(2))
    finally:
        caller.stop()
        uas.close()
        caller_peer.close()
        agent.close()
