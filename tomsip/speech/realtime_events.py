"""The speech-to-speech backend's server events, parsed into types: pure, no I/O.

The brain (tomsip/speech/realtime.py) dispatches on these with one `match`; everything that can be
wrong with a message (not JSON, not an object, no type, a field of the wrong type, audio that is not
base64) is found here, once, and becomes `Malformed` with the reason, so the dispatch never has to
guard against a KeyError. Both the GA and the beta event names are understood.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

AUDIO_DELTAS = frozenset({"response.output_audio.delta", "response.audio.delta"})
TRANSCRIPT_DELTAS = frozenset({"response.output_audio_transcript.delta", "response.audio_transcript.delta"})
BENIGN_ERRORS = frozenset({"input_audio_buffer_commit_empty", "response_cancel_not_active"})


@dataclass(frozen=True)
class AudioDelta:
    response_id: str
    item_id: str
    audio: bytes  # in the session's wire format, decoded from base64


@dataclass(frozen=True)
class TranscriptDelta:
    response_id: str
    text: str


@dataclass(frozen=True)
class ResponseCreated:
    response_id: str


@dataclass(frozen=True)
class ResponseDone:
    response_id: str
    status: str


@dataclass(frozen=True)
class CallerSpeechStarted:
    """The backend's own VAD heard the caller start speaking."""


@dataclass(frozen=True)
class ServerError:
    code: str

    @property
    def benign(self) -> bool:
        """A commit or cancel that crossed the backend's own: nothing is wrong."""
        return self.code in BENIGN_ERRORS


@dataclass(frozen=True)
class Other:
    """A well-formed event this client does not act on (session.created, rate_limits.updated...)."""

    kind: str


@dataclass(frozen=True)
class Malformed:
    kind: str  # the event's type when it had one, else ""
    reason: str


ServerEvent = (
    AudioDelta
    | TranscriptDelta
    | ResponseCreated
    | ResponseDone
    | CallerSpeechStarted
    | ServerError
    | Other
    | Malformed
)


class _Bad(ValueError):
    pass


def _str(event: dict[str, object], key: str, default: str | None = None) -> str:
    value = event.get(key, default)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise _Bad(f"{key} is not a string")
    return value


def _object(event: dict[str, object], key: str) -> dict[str, object]:
    value = event.get(key)
    if not isinstance(value, dict):
        raise _Bad(f"{key} is not an object")
    return value


def parse_server_event(text: str | bytes) -> ServerEvent:
    try:
        event = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return Malformed("", "not JSON")
    if not isinstance(event, dict):
        return Malformed("", "not an object")
    kind = event.get("type")
    if not isinstance(kind, str):
        return Malformed("", "no type")
    try:
        return _typed(kind, event)
    except _Bad as exc:
        return Malformed(kind, str(exc))


def _typed(kind: str, event: dict[str, object]) -> ServerEvent:
    if kind in AUDIO_DELTAS:
        try:
            audio = base64.b64decode(_str(event, "delta"), validate=True)
        except binascii.Error:
            raise _Bad("delta is not base64") from None
        return AudioDelta(_str(event, "response_id"), _str(event, "item_id", ""), audio)
    if kind in TRANSCRIPT_DELTAS:
        return TranscriptDelta(_str(event, "response_id", ""), _str(event, "delta", ""))
    if kind == "response.created":
        return ResponseCreated(_str(_object(event, "response"), "id"))
    if kind == "response.done":
        body = _object(event, "response")
        return ResponseDone(_str(body, "id"), _str(body, "status", "completed") or "completed")
    if kind == "input_audio_buffer.speech_started":
        return CallerSpeechStarted()
    if kind == "error":
        error = event.get("error")
        if not isinstance(error, dict):
            return ServerError("error")
        code = error.get("code") or error.get("type") or "error"
        return ServerError(str(code)[:40])
    return Other(kind)
