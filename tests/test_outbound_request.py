"""tomsip/outbound/request.py and tomsip/sip/outgoing.py: what a request may say, how the dialplan's
words are filled, and what an unanswered call's SIP ending means to an operator."""

from __future__ import annotations

import pytest
from baresip.errors import CallBusy, CallDeclined, CallFailed, CallTimeout
from pydantic import ValidationError

from tomsip.outbound.request import OutboundCall, OutboundRequest, fill
from tomsip.sip.outgoing import dial_failure


def test_fill_replaces_known_names_and_leaves_everything_else_as_written() -> None:
    context = {"name": "Anna", "day": "Tuesday"}
    assert fill("Hello {name}, see you {day}.", context) == "Hello Anna, see you Tuesday."
    assert fill("Hello {who}.", context) == "Hello {who}."
    assert fill("Hello {name!r} {name:>9}", context) == "Hello {name!r} {name:>9}"  # no formatting tricks
    assert fill("a lone { brace", context) == "a lone { brace"
    assert fill("{name.__class__}", context) == "{name.__class__}"
    assert fill("no names", {}) == "no names"


@pytest.mark.parametrize(
    "change",
    [
        {"to": ""},
        {"to": "+"},
        {"to": "1" * 33},
        {"to": "sip:1@host"},
        {"to": "123;user=phone"},
        {"dialplan": ""},
        {"caller_id": "Anna"},
        {"context": {f"k{i}": "v" for i in range(21)}},
        {"context": {"1abc": "v"}},
        {"context": {"name": "x" * 257}},
        {"context": {"name": "line\nbreak"}},
        {"context": {"name": 5}},
        {"status_url": "ftp://host/x"},
        {"status_url": "http://"},
        {"status_url": "http://host/a b"},
        {"unknown": True},
    ],
)
def test_a_request_outside_the_rules_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        OutboundRequest.model_validate({"to": "+4930123456", "dialplan": "reminder", **change})


def test_a_good_request_and_its_view_mask_the_number() -> None:
    request = OutboundRequest.model_validate(
        {"to": " +4930123456 ", "dialplan": "reminder", "context": {"name": "Anna"}, "status_url": "https://x/y?z=1"}
    )
    call = OutboundCall(request)
    view = call.view()
    assert view["to"].endswith("*56") and not any(d in view["to"] for d in "0134") and view["state"] == "queued"
    assert view["id"] == call.id
    call.finish("busy", "Busy Here", 486)
    assert call.view()["result"] == "busy" and call.view()["sip_status"] == 486


def test_what_an_unanswered_call_means() -> None:
    assert dial_failure(CallBusy("x", status=486, reason="Busy Here"), rang=True).result == "busy"
    assert dial_failure(CallFailed("x", status=600, reason="Busy Everywhere"), rang=False).result == "busy"
    declined = dial_failure(CallDeclined("x", status=603, reason="Decline"), rang=True)
    assert (declined.result, declined.status) == ("rejected", 603)
    assert dial_failure(CallTimeout("x"), rang=True).result == "no_answer"
    assert dial_failure(CallTimeout("x"), rang=False).result == "failed"  # nobody even said it rang
    assert dial_failure(CallFailed("x", status=480, reason="Temporarily Unavailable"), rang=True).result == "no_answer"
    not_found = dial_failure(CallFailed("x", status=404, reason="Not Found"), rang=False)
    assert (not_found.result, not_found.status) == ("rejected", 404)
    assert dial_failure(CallFailed("x", status=503, reason="Service Unavailable"), rang=False).result == "rejected"
    transport = dial_failure(CallFailed("x", reason="Connection refused"), rang=False)
    assert (transport.result, transport.status) == ("failed", None)
