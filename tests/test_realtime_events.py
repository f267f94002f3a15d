"""Parsing the speech-to-speech backend's server events (tomsip/speech/realtime_events.py): every
well-formed kind becomes its type, and every malformed message kept under tests/fixtures/realtime
becomes `Malformed` with a reason, never an exception."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tomsip.speech.realtime_events import (
    AudioDelta,
    CallerSpeechStarted,
    Malformed,
    Other,
    ResponseCreated,
    ResponseDone,
    ServerError,
    TranscriptDelta,
    parse_server_event,
)

FIXTURES = Path(__file__).parent / "fixtures" / "realtime"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.bin")), ids=lambda p: p.stem)
def test_every_malformed_fixture_is_malformed_with_a_reason(path: Path) -> None:
    event = parse_server_event(path.read_bytes())
    assert isinstance(event, Malformed) and event.reason


@pytest.mark.parametrize("kind", ["response.output_audio.delta", "response.audio.delta"])
def test_audio_deltas_of_both_protocols_carry_the_decoded_audio(kind: str) -> None:
    delta = base64.b64encode(b"\x01\x02").decode()
    text = json.dumps({"type": kind, "response_id": "r1", "item_id": "i1", "delta": delta})
    assert parse_server_event(text) == AudioDelta("r1", "i1", b"\x01\x02")


def test_the_other_kinds() -> None:
    def parsed(event: dict[str, object]) -> object:
        return parse_server_event(json.dumps(event))

    assert parsed({"type": "response.audio_transcript.delta", "response_id": "r1", "delta": "Hi"}) == TranscriptDelta(
        "r1", "Hi"
    )
    assert parsed({"type": "response.created", "response": {"id": "r1"}}) == ResponseCreated("r1")
    assert parsed({"type": "response.done", "response": {"id": "r1", "status": "cancelled"}}) == ResponseDone(
        "r1", "cancelled"
    )
    no_status = parsed({"type": "response.done", "response": {"id": "r1", "status": None}})
    assert no_status == ResponseDone("r1", "completed")
    assert parsed({"type": "input_audio_buffer.speech_started"}) == CallerSpeechStarted()
    assert parsed({"type": "session.created", "session": {}}) == Other("session.created")


def test_errors_carry_their_code_and_the_crossed_commits_are_benign() -> None:
    error = parse_server_event('{"type": "error", "error": {"code": "rate_limit_exceeded"}}')
    assert error == ServerError("rate_limit_exceeded") and not error.benign
    assert parse_server_event('{"type": "error"}') == ServerError("error")
    crossed = parse_server_event('{"type": "error", "error": {"code": "response_cancel_not_active"}}')
    assert isinstance(crossed, ServerError) and crossed.benign
    long = parse_server_event(json.dumps({"type": "error", "error": {"type": "x" * 100}}))
    assert isinstance(long, ServerError) and len(long.code) == 40
