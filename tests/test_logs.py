"""The log line format (tomsip/monitor/logs.py): one line per record whatever its fields hold, and a
request aiohttp cannot parse is a WARNING without a traceback or the header that carried it."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import BadHttpMessage

from tomsip.monitor.logs import ClientErrorFilter, KeyValueFormatter, escape_field


def record(msg: str, call_id: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, None) if exc else None
    rec = logging.LogRecord("tomsip.bridge", logging.ERROR, __file__, 1, msg, (), exc_info)
    rec.call_id = call_id
    return rec


def test_a_call_id_cannot_split_or_forge_a_line() -> None:
    line = KeyValueFormatter().format(record("refused\nlevel=error forged", "demo-1\nts=0 level=error"))
    assert "\n" not in line
    assert "call_id=demo-1\\x0ats\\x3d0\\x20level\\x3derror " in line
    assert 'msg="refused\\nlevel=error forged"' in line


def test_escaping_leaves_ordinary_ids_alone_and_escapes_every_control_character() -> None:
    assert escape_field("web-0a1b.c_d") == "web-0a1b.c_d"
    assert escape_field("a\x00b\x1bc\x7fd\u2028e") == "a\\x00b\\x1bc\\x7fd\\u2028e"


def test_a_request_aiohttp_cannot_parse_is_a_warning_without_the_header() -> None:
    rec = record("Error handling request from %s", "-", BadHttpMessage("Invalid header value char: Bearer eyJsecret"))
    assert ClientErrorFilter().filter(rec)
    line = KeyValueFormatter().format(rec)
    assert rec.levelno == logging.WARNING and "level=warning" in line
    assert "eyJsecret" not in line and "Traceback" not in line and "BadHttpMessage" in line


def test_other_errors_pass_unchanged() -> None:
    rec = record("something broke", "c1", RuntimeError("boom"))
    assert ClientErrorFilter().filter(rec) and rec.levelno == logging.ERROR and rec.exc_info is not None
