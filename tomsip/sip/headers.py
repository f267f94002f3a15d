"""Reading the few INVITE header values tomsip needs (called number, source host). Pure."""

from __future__ import annotations

import re

_URI_USER = re.compile(r"sips?:([^@;>]+)@", re.IGNORECASE)
_VIA_SENT_BY = re.compile(r"SIP/2\.0/[A-Za-z]+\s+(\[[^\]]+\]|[^\s:;,]+)", re.IGNORECASE)
_VIA_RECEIVED = re.compile(r";\s*received=([^;,\s]+)", re.IGNORECASE)


def uri_user(header_value: str | None) -> str:
    """The user part of the first SIP URI in a header value ("" when there is none)."""
    if not header_value:
        return ""
    match = _URI_USER.search(header_value)
    return match.group(1) if match else ""


def via_source(via: str | None) -> str:
    """The sending host of the top Via: its received= parameter if present, else its sent-by host."""
    if not via:
        return "unknown"
    top = via.split(",", 1)[0]
    received = _VIA_RECEIVED.search(top)
    if received:
        return received.group(1)
    match = _VIA_SENT_BY.search(top)
    return match.group(1).strip("[]") if match else "unknown"
