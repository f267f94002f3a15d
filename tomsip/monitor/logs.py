"""Structured logging: one key=value line per record, the call id on every call's lines.

Phone numbers never reach a log line whole (`mask_uri`); tokens and transcripts are never logged at
INFO. The call id travels in a context variable, so every line written while a session's code runs
carries it without threading a logger through every function.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time

call_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")

_DIGITS = re.compile(r"\+?\d{4,}")


def mask_number(number: str) -> str:
    """Keep the last two digits of anything that looks like a phone number."""
    return _DIGITS.sub(lambda m: "*" * (len(m.group()) - 2) + m.group()[-2:], number)


_URI_USER = re.compile(r"^(<?\w+:)([^@]+)@")


def mask_uri(uri: str | None) -> str:
    """A SIP URI with its user part masked: sip:+4930123456@host -> sip:*********56@host."""
    if not uri:
        return "-"
    match = _URI_USER.match(uri)
    if not match:
        return mask_number(uri)
    user = match.group(2)
    masked = mask_number(user) if _DIGITS.search(user) else user
    return match.group(1) + masked + uri[match.end(2) :]


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        call_id = getattr(record, "call_id", None) or call_id_var.get()
        parts = [
            f"ts={ts}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"call_id={call_id}",
            f"msg={json.dumps(record.getMessage())}",
        ]
        if record.exc_info:
            parts.append(f"exc={json.dumps(self.formatException(record.exc_info))}")
        return " ".join(parts)


class CallIdFilter(logging.Filter):
    """Stamps the context's call id on records from libraries that know nothing of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_id"):
            record.call_id = call_id_var.get()
        return True


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(CallIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The SIP stack's own INFO lines carry raw peer URIs (phone numbers): keep them at WARNING.
    logging.getLogger("baresip").setLevel(logging.WARNING if level.lower() != "debug" else logging.DEBUG)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
