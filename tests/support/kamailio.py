"""Debian's kamailio running deploy/kamailio.cfg on loopback in front of tomsip processes, with only
its listen port, dispatcher list and runtime folder moved into the test's folder."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.support.net import free_port
from tests.support.process import stop_process

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "kamailio.cfg"


def kamailio_path() -> str | None:
    return shutil.which("kamailio") or (str(p) if (p := Path("/usr/sbin/kamailio")).exists() else None)


class Kamailio:
    def __init__(self, workdir: Path, node_ports: list[int]) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.node_ports = node_ports
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "kamailio.log"

    def config(self) -> str:
        text = CONF.read_text()
        listing = self.workdir / "dispatcher.list"
        listing.write_text(
            "".join(f"1 sip:127.0.0.1:{port} 0 0 name=node{i}\n" for i, port in enumerate(self.node_ports))
        )
        for old, new in {
            "listen=udp:127.0.0.1:5060": f"listen=udp:127.0.0.1:{self.port}",
            '"/etc/kamailio/dispatcher.list"': f'"{listing}"',
            "children=4": "children=2",
            "unix:/tmp/kamailio_ctl": f"unix:{self.workdir}/kamailio_ctl",
        }.items():
            assert old in text, f"deploy/kamailio.cfg no longer has {old!r}"
            text = text.replace(old, new)
        return text

    def start(self) -> Kamailio:
        exe = kamailio_path()
        assert exe, "kamailio is not installed (scripts/test installs it)"
        conf = self.workdir / "kamailio.cfg"
        conf.write_text(self.config())
        check = subprocess.run([exe, "-c", "-f", str(conf)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr[-2000:]
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [exe, "-f", str(conf), "-DD", "-E", "-Y", str(self.workdir), "-P", str(self.workdir / "kamailio.pid"),
             "-w", str(self.workdir), "-m", "64", "-M", "8"],
            stdout=log,
            stderr=log,
        )  # fmt: skip
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"kamailio exited: {self.log()[-2000:]}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)
