"""The browser stream's client events (tomsip/bridge/events.py): each malformed frame kept under
tests/fixtures/browser is refused by the parser (the stream answers it with a `bad_event` error and
goes on), and the well-formed ones parse into their types."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tomsip.bridge import events
from tomsip.conversation.events import PlayoutCleared, StateChanged, TranscriptLine

FIXTURES = Path(__file__).parent / "fixtures" / "browser"


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.bin")), ids=lambda p: p.stem)
def test_every_malformed_client_frame_is_refused(path: Path) -> None:
    with pytest.raises(ValidationError):
        events.client_events.validate_json(path.read_bytes())


def test_well_formed_client_events_parse_into_their_types() -> None:
    assert events.client_events.validate_json('{"type":"start","sample_rate":8000}') == events.Start(
        type="start", sample_rate=8000
    )
    assert events.client_events.validate_json('{"type":"dtmf","digit":"#"}') == events.Dtmf(type="dtmf", digit="#")
    assert events.client_events.validate_json('{"type":"feedback","rating":5}') == events.Feedback(
        type="feedback", rating=5
    )


def test_the_conversations_events_go_out_as_the_schema_says() -> None:
    for event in (StateChanged(state="listening"), TranscriptLine(role="caller", text="Hi"), PlayoutCleared()):
        assert events.server_events.validate_json(event.model_dump_json()) == event
