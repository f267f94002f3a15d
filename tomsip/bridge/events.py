"""The browser stream's JSON events, as pydantic v2 models (a discriminated union on `type`).

Audio travels as binary WebSocket frames (PCM16 little-endian mono at the rate the client declared in
`start`); everything else is one of these JSON events. `python -m tomsip.bridge.events` writes their
JSON Schema to docs/bridge-events.schema.json (a test keeps the file current).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from tomsip.conversation import rating as rating_scale
from tomsip.conversation.events import PlayoutCleared, StateChanged, TranscriptLine


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- client to server ----


class Start(_Event):
    """First event: the audio the client will send, and wants back."""

    type: Literal["start"]
    sample_rate: Literal[8000, 16000, 24000, 48000] = 16000
    encoding: Literal["pcm16"] = "pcm16"


class RtcOffer(_Event):
    """Instead of `start`: the softphone's WebRTC offer (complete, no trickle); audio then flows over
    WebRTC (Opus) and this WebSocket carries only events."""

    type: Literal["rtc_offer"]
    sdp: str = Field(max_length=20_000)


class BargeIn(_Event):
    """The client's own VAD heard the user talk over the reply: stop it now."""

    type: Literal["barge_in"]


class Stop(_Event):
    """The user hung up."""

    type: Literal["stop"]


class Dtmf(_Event):
    type: Literal["dtmf"]
    digit: str = Field(pattern=r"^[0-9*#A-D]$")


class Feedback(_Event):
    """The user's 1-5 rating of the conversation (the learning loop's feedback path)."""

    type: Literal["feedback"]
    rating: int = Field(ge=rating_scale.LOWEST, le=rating_scale.HIGHEST)


ClientEvent = Annotated[Start | RtcOffer | BargeIn | Stop | Dtmf | Feedback, Field(discriminator="type")]
client_events: TypeAdapter[Start | RtcOffer | BargeIn | Stop | Dtmf | Feedback] = TypeAdapter(ClientEvent)


# ---- server to client ----


class Ready(_Event):
    """The conversation is up; reply audio comes as binary frames at `sample_rate`."""

    type: Literal["ready"] = "ready"
    call_id: str
    sample_rate: int
    policy: str = ""


class RtcAnswer(_Event):
    type: Literal["rtc_answer"] = "rtc_answer"
    sdp: str


# StateChanged, TranscriptLine and PlayoutCleared come from the conversation itself
# (tomsip/conversation/events.py); the bridge sends them as they are.


class Error(_Event):
    """Something the client sent was refused; the connection continues unless a close follows."""

    type: Literal["error"] = "error"
    code: str
    message: str


class Ended(_Event):
    type: Literal["ended"] = "ended"
    reason: str


_ServerEvents = Ready | RtcAnswer | TranscriptLine | StateChanged | PlayoutCleared | Error | Ended
ServerEvent = Annotated[_ServerEvents, Field(discriminator="type")]
server_events: TypeAdapter[_ServerEvents] = TypeAdapter(ServerEvent)


def schema() -> dict[str, object]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tomsip browser stream events",
        "description": "JSON events of WebSocket /ws/stream/{call_id}; audio is binary PCM16 frames.",
        "client_to_server": client_events.json_schema(),
        "server_to_client": server_events.json_schema(),
    }


SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "bridge-events.schema.json"


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_PATH
    target.write_text(schema_text())
    print(f"wrote {target}")
