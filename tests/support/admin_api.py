"""The operator's HTTP API as a client sees it: JSON in and out, with the admin bearer token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def admin_api(port: int, path: str, body: object = None, token: str | None = None) -> tuple[int, Any]:
    """(status, JSON answer) of GET `path`, or POST when there is a body (raw bytes go as they are)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
