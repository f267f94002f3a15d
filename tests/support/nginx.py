"""Debian's nginx running deploy/nginx.conf on loopback, with only its ports and file paths moved
into the test's folder; stopped by its own PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.net import free_port
from tests.support.process import stop_process

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx.conf"


def nginx_path() -> str | None:
    return shutil.which("nginx") or (str(p) if (p := Path("/usr/sbin/nginx")).exists() else None)


class Nginx:
    def __init__(self, workdir: Path, upstream_port: int | list[int]) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.upstream_ports = upstream_port if isinstance(upstream_port, list) else [upstream_port]
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        text = CONF.read_text()
        replacements = {
            "listen 127.0.0.1:8000;": f"listen 127.0.0.1:{self.port};",
            "server 127.0.0.1:8080;": " ".join(f"server 127.0.0.1:{p};" for p in self.upstream_ports),
            "/run/nginx-tomsip.pid": str(self.workdir / "nginx.pid"),
            "/var/log/nginx/": f"{self.workdir}/",
            "/var/lib/nginx/": f"{self.workdir}/tmp-",
            "worker_processes auto;": "worker_processes 1;",
        }
        for old, new in replacements.items():
            assert old in text, f"deploy/nginx.conf no longer has {old!r}"
            text = text.replace(old, new)
        return text

    def start(self) -> Nginx:
        exe = nginx_path()
        assert exe, "nginx is not installed (scripts/test installs it)"
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.config())
        # -g "daemon off;" keeps it our child, so it is ended by its own PID
        self.proc = subprocess.Popen(
            [exe, "-c", str(conf), "-p", str(self.workdir), "-e", str(self.workdir / "startup-error.log"),
             "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()[-1000:]}")  # type: ignore[union-attr]
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not listen")

    def access_log(self) -> str:
        path = self.workdir / "tomsip-access.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)
