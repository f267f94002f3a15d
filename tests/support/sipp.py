"""Running SIPp scenarios from sipp_scenarios/ against a server on loopback."""

from __future__ import annotations

import subprocess
import tempfile
import time
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
    field1: str = "",
) -> SippResult:
    """Place `calls` calls with `scenario`; call i advertises RTP port rtp_ports[i] (a dead port if none);
    `field1` is the injection file's second field for every call, where a scenario reads one."""
    ports = rtp_ports or [9]
    with tempfile.TemporaryDirectory() as tmp:
        inf = Path(tmp) / "calls.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(f"{p};{field1 + ';' if field1 else ''}\n" for p in ports))
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


class SippUas:
    """SIPp as the called side of calls tomsip places: it listens on `port` for `calls` INVITEs.
    For uas_answers, `pcap` (under sipp_scenarios/pcap) is what the called side says after answering."""

    def __init__(
        self,
        scenario: str,
        rtp_port: int = 9,
        *,
        pcap: str | None = None,
        port: int | None = None,
        calls: int = 1,
        timeout_s: float = 60,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        tmp = Path(self._tmp.name)
        text = (SCENARIOS / f"{scenario}.xml").read_text()
        if pcap is not None:
            play = f'<nop><action><exec play_pcap_audio="{SCENARIOS / "pcap" / pcap}"/></action></nop>'
            text = text.replace("<!--PLAY-->", play)
        (tmp / "scenario.xml").write_text(text)
        (tmp / "calls.csv").write_text("SEQUENTIAL\n" + f"{rtp_port};\n" * calls)
        self.port = port or free_port()
        self._errors = tmp / "errors.log"
        self.timeout_s = timeout_s
        cmd = [
            "sipp",
            "-sf",
            str(tmp / "scenario.xml"),
            "-inf",
            str(tmp / "calls.csv"),
            "-i",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-mp",
            str(free_port(span=4)),
            "-m",
            str(calls),
            "-timeout",
            f"{int(timeout_s)}s",
            "-timeout_error",
            "-recv_timeout",
            "30000",
            "-trace_err",
            "-error_file",
            str(self._errors),
            "-nostdin",
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=SCENARIOS, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self._wait_listening()

    def _wait_listening(self, timeout_s: float = 10) -> None:
        """Until SIPp's UDP socket is bound: an INVITE sent earlier would meet an ICMP refusal, which
        the caller's stack takes as a failed call at once."""
        wanted = f":{self.port:04X} "
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            if any(wanted in line.split()[1] + " " for line in Path("/proc/net/udp").read_text().splitlines()[1:]):
                return
            time.sleep(0.02)

    def wait(self) -> SippResult:
        try:
            out, _ = self.proc.communicate(timeout=self.timeout_s + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        err_text = self._errors.read_text(errors="replace") if self._errors.exists() else ""
        self._tmp.cleanup()
        return SippResult(self.proc.returncode, out.decode(errors="replace")[-4000:], err_text[-4000:])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._tmp.cleanup()
