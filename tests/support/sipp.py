"""Running SIPp scenarios from sipp_scenarios/ against a server on loopback."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port

SCENARIOS = Path(__file__).resolve().parents[2] / "sipp_scenarios"


@dataclass
class SippResult:
    returncode: int
    stdout: str
    errors: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_sipp(
    scenario: str,
    sip_port: int,
    service: str = "1000",
    rtp_ports: list[int] | None = None,
    *,
    calls: int = 1,
    rate: float | None = None,
    limit: int | None = None,
    transport: str = "u1",
    duration_ms: int | None = None,
    timeout_s: float = 60,
) -> SippResult:
    """Place `calls` calls with `scenario`; call i advertises RTP port rtp_ports[i] (a dead port if none)."""
    ports = rtp_ports or [9]
    with tempfile.TemporaryDirectory() as tmp:
        inf = Path(tmp) / "calls.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(f"{p};\n" for p in ports))
        errors = Path(tmp) / "errors.log"
        cmd = [
            "sipp",
            f"127.0.0.1:{sip_port}",
            "-sf",
            str(SCENARIOS / f"{scenario}.xml"),
            "-inf",
            str(inf),
            "-s",
            service,
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-mp",
            str(free_port(span=4)),  # audio RTP/RTCP and video RTP/RTCP
            "-t",
            transport,
            "-m",
            str(calls),
            "-l",
            str(limit or calls),
            "-r",
            str(rate or calls),
            "-timeout",
            f"{int(timeout_s)}s",
            "-timeout_error",
            "-recv_timeout",
            "20000",
            "-trace_err",
            "-error_file",
            str(errors),
            "-nostdin",
        ]
        if duration_ms is not None:
            cmd += ["-d", str(duration_ms)]
        proc = subprocess.run(
            cmd, cwd=SCENARIOS, capture_output=True, text=True, timeout=timeout_s + 30, stdin=subprocess.DEVNULL
        )
        err_text = errors.read_text(errors="replace") if errors.exists() else ""
        return SippResult(proc.returncode, proc.stdout[-4000:], err_text[-4000:])
