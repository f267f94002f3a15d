"""What a conversation tells a transport that has a display (a browser): state changes, transcript
lines, and "drop the reply audio you have buffered". SIP has no display and ignores them.

They are pydantic models because the browser bridge sends them as they are (its JSON event schema
includes them); the call driver only builds them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class _ServerEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StateChanged(_ServerEvent):
    type: Literal["state"] = "state"
    state: str  # greeting, listening, thinking, speaking, rating, closing, ended


class TranscriptLine(_ServerEvent):
    type: Literal["transcript"] = "transcript"
    role: Literal["caller", "assistant"]
    text: str


class PlayoutCleared(_ServerEvent):
    """Drop whatever reply audio is still buffered for playback (a barge-in flushed it)."""

    type: Literal["clear"] = "clear"


ConversationEvent = StateChanged | TranscriptLine | PlayoutCleared
