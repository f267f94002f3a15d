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

from aiohttp.http_exceptions import HttpProcessingError

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


_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029\\\"=]")


def escape_field(value: object) -> str:
    """A bare key=value field that cannot split or forge a log line: control characters (a newline in
    a call id), spaces, quotes, backslashes and '=' are written as \\xNN / \\uNNNN."""
    text = str(value)
    return _CONTROL.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class KeyValueFormatter(logging.Formatter):
    """Every field is escaped: bare ones by `escape_field`, the message and traceback as JSON strings
    (which escape control characters)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        call_id = getattr(record, "call_id", None) or call_id_var.get()
        parts = [
            f"ts={ts}",
            f"level={escape_field(record.levelname.lower())}",
            f"logger={escape_field(record.name)}",
            f"call_id={escape_field(call_id)}",
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


class ClientErrorFilter(logging.Filter):
    """aiohttp logs a request it cannot parse (a NUL in a header, a bad request line) at ERROR with a
    traceback, although it answers it 400 and nothing on our side failed. Such a record becomes one
    WARNING line with the status and the kind of error; everything else passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            # Not its message: that quotes the offending header, which may carry a token.
            record.msg, record.args = "bad HTTP request refused %d (%s)", (exc.code or 400, type(exc).__name__)
            record.exc_info = record.exc_text = None
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
    logging.getLogger("aiohttp.server").addFilter(ClientErrorFilter())
