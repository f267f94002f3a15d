"""An outbound call request and its result: the API's vocabulary, validated before anything is queued.

A request names the number, the dialplan whose words and brain serve the call, an optional caller ID,
context variables the responder reads (and that fill `{name}` in the dialplan's outbound texts) and
an optional `status_url` that gets the result. The number never reaches a log unmasked.
"""

from __future__ import annotations

import re
import string
import time
import uuid
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tomsip.call.dialplan import Route
from tomsip.monitor.logs import mask_number
from tomsip.store.base import CallRecord

NUMBER = r"^\+?[0-9*#]{1,32}$"
CONTEXT_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
MAX_CONTEXT = 20
MAX_VALUE = 256
RESULTS = ("answered", "busy", "no_answer", "rejected", "failed", "not_placed")


class OutboundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    to: str = Field(pattern=NUMBER, description="The number to call: digits, optionally a leading +")
    dialplan: str = Field(min_length=1, max_length=64)
    caller_id: str | None = Field(None, pattern=NUMBER)
    context: dict[str, str] = Field(default_factory=dict)
    status_url: str | None = Field(None, max_length=2048)

    @field_validator("context")
    @classmethod
    def _context_is_small_and_printable(cls, context: dict[str, str]) -> dict[str, str]:
        if len(context) > MAX_CONTEXT:
            raise ValueError(f"at most {MAX_CONTEXT} context variables")
        for key, value in context.items():
            if not CONTEXT_KEY.fullmatch(key):
                raise ValueError(f"context key {key[:40]!r} must be a name (letters, digits, _; at most 32)")
            if len(value) > MAX_VALUE or any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise ValueError(f"context.{key} must be printable and at most {MAX_VALUE} characters")
        return context

    @field_validator("status_url")
    @classmethod
    def _status_url_is_http(cls, url: str | None) -> str | None:
        if url is not None and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", url):
            raise ValueError("status_url must be an http:// or https:// URL")
        return url


def fill(text: str, context: dict[str, str]) -> str:
    """`text` with `{name}` replaced by context values; unknown names and odd braces stay as written."""
    out: list[str] = []
    try:
        for literal, name, spec, conversion in string.Formatter().parse(text):
            out.append(literal)
            if name is None:
                continue
            if name in context and not spec and not conversion:
                out.append(context[name])
            else:
                out.append("{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")
    except ValueError:  # a lone brace: the text is not a template
        return text
    return "".join(out)


@dataclass
class OutboundCall:
    """One request from queueing to its result (kept in memory for GET /api/calls/{id})."""

    request: OutboundRequest
    id: str = field(default_factory=lambda: "out-" + uuid.uuid4().hex[:16])
    created_at: float = field(default_factory=time.time)
    state: str = "queued"  # queued, dialing, in_call, done
    result: str = ""
    reason: str = ""
    sip_status: int | None = None
    answered_by: str = ""
    outcome: str = ""  # how an answered call ended (completed, voicemail, remote_hangup...)
    answer_s: float | None = None  # from the INVITE to the answer
    duration_s: float = 0.0  # answered: from the answer to the end
    amd_ms: float | None = None

    def finish(self, result: str, reason: str = "", status: int | None = None) -> None:
        self.state, self.result, self.reason, self.sip_status = "done", result, reason, status

    def view(self) -> dict[str, object]:
        """What the API and the status callback say: the number masked, as in the logs."""
        return {
            "id": self.id,
            "to": mask_number(self.request.to),
            "dialplan": self.request.dialplan,
            "state": self.state,
            "result": self.result,
            "reason": self.reason,
            "sip_status": self.sip_status,
            "answered_by": self.answered_by,
            "outcome": self.outcome,
            "answer_s": self.answer_s,
            "duration_s": self.duration_s,
            "amd_ms": self.amd_ms,
            "created_at": self.created_at,
        }


def not_answered_record(call: OutboundCall, node: str, ended_at: float) -> CallRecord:
    """The call record of an outbound call that never became a conversation (busy, no answer...)."""
    record = CallRecord(call.id, "ended", call.created_at, ended_at, "udp", "", call.request.dialplan)
    record.node, record.direction, record.result, record.outcome = node, "outbound", call.result, call.result
    record.sip_status = call.sip_status or 0
    return record


def record_view(record: CallRecord) -> dict[str, object]:
    """GET /api/calls/{id} for a call this node no longer remembers: what its record says."""
    return {
        "id": record.call_id,
        "dialplan": record.dialplan,
        "state": "done" if record.state == "ended" else "in_call",
        "result": record.result,
        "sip_status": record.sip_status or None,
        "answered_by": record.answered_by,
        "outcome": record.outcome,
        "duration_s": record.duration_s,
        "amd_ms": record.latencies_ms.get("amd"),
        "created_at": record.started_at,
    }


def outbound_options(route: Route, context: dict[str, str]) -> dict[str, object]:
    """The brain options of a call we placed: the dialplan's outbound greeting and voicemail message
    with the context filled in, and the context itself for responders that read it."""
    words = route.plan.outbound
    return {
        "greeting": fill(words.greeting or route.plan.greeting, context),
        "voicemail_message": fill(words.voicemail_message, context),
        "context": dict(context),
    }
