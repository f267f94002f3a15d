"""A real `tomsip serve` process on loopback ports, for tests and benchmarks."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Self

from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


class TomsipServer:
    command = "serve"

    def __init__(
        self, env: dict[str, str] | None = None, log_path: Path | None = None, tls_cert: Path | None = None
    ) -> None:
        self.sip_port = free_port(pair=True)
        self.http_port = free_port()
        self.env = {
            "TOMSIP_SIP_HOST": "127.0.0.1",
            "TOMSIP_SIP_PORT": str(self.sip_port),
            "TOMSIP_HTTP_HOST": "127.0.0.1",
            "TOMSIP_HTTP_PORT": str(self.http_port),
            "TOMSIP_DIALPLANS": str(ROOT / "tests" / "dialplans"),
            "TOMSIP_PIPELINE": "mock",
            "TOMSIP_LOG_LEVEL": "info",
        }
        if tls_cert is not None:  # the engine serves TLS on SIP port + 1, which free_port(pair) kept free
            self.env["TOMSIP_SIP_TLS_PORT"] = str(self.sip_port + 1)
            self.env["TOMSIP_SIP_TLS_CERT"] = str(tls_cert)
        self.env.update(env or {})
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file = None

    def start(self, timeout_s: float = 20) -> Self:
        env = {**os.environ, **self.env}
        self._log_file = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tomsip", self.command],
            cwd=ROOT,
            env=env,
            stdout=self._log_file,
            stderr=self._log_file,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tomsip exited with {self.proc.returncode}: {self.log_text()[-2000:]}")
            try:
                if self.healthz()[0] == 200:
                    return self
            except (OSError, http.client.HTTPException):
                # Not listening yet. Polling a port in the ephemeral range that nothing listens on can
                # connect the client to itself (TCP self-connect) and read its own request back.
                pass
            time.sleep(0.1)
        raise RuntimeError("tomsip did not become ready")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=3) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def healthz(self) -> tuple[int, dict[str, object]]:
        status, body = self.get("/healthz")
        return status, json.loads(body)

    def metrics(self) -> dict[str, float]:
        """Metric samples by full name with labels, e.g. 'tomsip_calls_total{outcome="remote_hangup"}'."""
        _, body = self.get("/metrics")
        samples: dict[str, float] = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def metric(self, name: str) -> float:
        return self.metrics().get(name, 0.0)

    def wait_metric(self, name: str, value: float, timeout_s: float = 5.0) -> float:
        """Poll until metric `name` equals `value` (the server counts a call after its BYE exchange)."""
        deadline = time.monotonic() + timeout_s
        current = self.metric(name)
        while current != value and time.monotonic() < deadline:
            time.sleep(0.05)
            current = self.metric(name)
        return current

    def log_text(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 15) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log_file not in (None, subprocess.DEVNULL):
            self._log_file.close()  # type: ignore[union-attr]
        return self.proc.returncode
