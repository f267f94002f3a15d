"""A real `tomsip speech-worker` process on a loopback port, for tests and benchmarks: started,
polled, scraped and stopped the way TomsipServer is."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support.net import free_port
from tests.support.server import TomsipServer


class SpeechWorkerProcess(TomsipServer):
    command = "speech-worker"

    def __init__(self, env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        super().__init__(log_path=log_path)
        self.http_port = free_port()
        self.env = {"TOMSIP_WORKER_HOST": "127.0.0.1", "TOMSIP_WORKER_PORT": str(self.http_port), **(env or {})}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 60) -> SpeechWorkerProcess:
        return super().start(timeout_s)

    def health(self) -> tuple[int, dict[str, object]]:
        return self.healthz()

    def kill(self) -> None:
        """Gone at once, as a crashed or unplugged worker is."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout_s: float = 30) -> int | None:
        return super().stop(timeout_s)
