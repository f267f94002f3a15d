"""A plain client of the OpenAI-compatible audio API, as any program would write one: a multipart
form for transcriptions, a JSON body for speech, the standard library's HTTP and nothing of tomsip."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    chunks: list[tuple[float, int]] = field(default_factory=list)  # (arrival, bytes) of streamed reads

    def json(self) -> dict[str, object]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


def _connection(url: str, timeout_s: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout_s), parts.path


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def multipart(fields: dict[str, str], file: tuple[str, bytes, str] | None) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = b""
    for name, value in fields.items():
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    if file is not None:
        filename, data, content_type = file
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def transcribe(
    base: str,
    file: tuple[str, bytes, str] | None,
    fields: dict[str, str] | None = None,
    key: str | None = None,
    timeout_s: float = 30,
    headers: dict[str, str] | None = None,
) -> Answer:
    body, content_type = multipart({"model": "whisper-1", **(fields or {})}, file)
    conn, _ = _connection(base, timeout_s)
    try:
        sent = {"Content-Type": content_type, **_auth(key), **(headers or {})}
        conn.request("POST", "/v1/audio/transcriptions", body, sent)
        resp = conn.getresponse()
        return Answer(resp.status, dict(resp.headers), resp.read())
    finally:
        conn.close()


def speak(base: str, request: dict[str, object] | bytes, key: str | None = None, timeout_s: float = 30) -> Answer:
    """POST /v1/audio/speech and read the answer as it streams, noting when each piece arrived."""
    body = request if isinstance(request, bytes) else json.dumps(request).encode()
    conn, _ = _connection(base, timeout_s)
    try:
        conn.request("POST", "/v1/audio/speech", body, {"Content-Type": "application/json", **_auth(key)})
        resp = conn.getresponse()
        answer = Answer(resp.status, dict(resp.headers), b"")
        while True:
            piece = resp.read1(65536)
            if not piece:
                break
            answer.chunks.append((time.monotonic(), len(piece)))
            answer.body += piece
        return answer
    finally:
        conn.close()
