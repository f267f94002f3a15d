"""bench/capacity: how many concurrent SIP calls one tomsip process carries, measured on the wire.

Bounded SIPp load (load_call.xml: greeting, an utterance, a barge-in over the reply, BYE; about 15 s
a call) at rising concurrency steps against one tomsip process with the mock pipeline, then the same
load against a bare baresip-python echo server (bench/echo_server.py). Everything stays on loopback.
tcpdump captures the RTP on lo, so gaps and barge-in reaction are kernel timestamps of real packets.

Prints per step: calls placed, failed, server CPU (% of one core, mean over the plateau) and CPU per
call, peak RSS, outbound RTP inter-packet gap p50/p99/p99.9, and barge-in reaction (caller speech
onset to the server's last voiced packet of the interrupted reply) p50/p90/max. Finally the most
concurrent calls held with 0 failures and tomsip's CPU per call as a ratio to the echo baseline.

    bench/capacity [--steps 50,100,200,250] [--echo-step 200]
Needs sipp and tcpdump (root, for the capture on lo). BENCH_KEEP_PCAP=DIR keeps the captures and the
server log in DIR for a closer look.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.net import free_port  # noqa: E402
from tests.support.pcap import read_udp  # noqa: E402
from tests.support.process import cpu_seconds, rss_mb  # noqa: E402
from tests.support.server import TomsipServer  # noqa: E402
from tomsip.audio.g711 import ULAW_DECODE  # noqa: E402

SCENARIOS = ROOT / "sipp_scenarios"
RTP_LO, RTP_HI = 20000, 29999  # below the ephemeral range that free_port() draws from
VOICED_DBFS = -40.0  # the server's tones are at -12 dBFS
ONSET_DBFS = -55.0  # where the caller's sound begins (the pcaps' pauses are digital silence)
CALL_SECONDS = 15.5


@dataclass
class StepResult:
    server: str
    calls: int
    failed: int
    cpu_pct: float
    rss_mb: float
    gaps_ms: np.ndarray
    barge_ms: list[float]
    refused: int = 0

    def line(self) -> str:
        def pct(a: np.ndarray | list[float], q: float) -> float:
            return float(np.percentile(a, q)) if len(a) else float("nan")

        barge = (
            f"barge-in p50 {pct(self.barge_ms, 50):5.0f} ms  p90 {pct(self.barge_ms, 90):5.0f} ms  "
            f"max {max(self.barge_ms) if self.barge_ms else float('nan'):5.0f} ms  (n={len(self.barge_ms)})"
            if self.server == "tomsip"
            else "barge-in n/a (echo)"
        )
        unmeasured = (
            f"  [{self.calls - len(self.barge_ms)} calls without a measurable barge-in]"
            if self.server == "tomsip" and len(self.barge_ms) < self.calls
            else ""
        )
        return (
            f"{self.server:6s} calls {self.calls:4d}  failed {self.failed:3d} (486 by admission {self.refused:3d})  "
            f"CPU {self.cpu_pct:5.1f} % ({self.cpu_pct / max(1, self.calls):.3f} %/call)  RSS {self.rss_mb:6.1f} MB  "
            f"gap p50 {pct(self.gaps_ms, 50):5.1f} p99 {pct(self.gaps_ms, 99):5.1f} "
            f"p99.9 {pct(self.gaps_ms, 99.9):5.1f} ms  {barge}{unmeasured}"
        )


def raise_fd_limit() -> None:
    """Lift this process's open-file limit to its maximum; the servers and SIPp inherit it."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wait_port_ready(proc: subprocess.Popen[bytes], marker: bytes, timeout_s: float = 20) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    buf = b""
    while time.monotonic() < deadline and marker not in buf:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"server exited: {buf[-500:]!r}")
        buf += line
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]


def start_tomsip(log_path: Path) -> TomsipServer:
    """One tomsip with the shipped dialplans, set up for load; TOMSIP_* in the environment wins."""
    env = {
        "TOMSIP_MAX_CALLS": "250",  # the most one process can hold (docs/known-limits.md)
        "TOMSIP_INVITE_RATE": "1000",
        "TOMSIP_INVITE_BURST": "1000",
        "TOMSIP_RTP_PORTS": f"{RTP_LO}-{RTP_HI}",
        "TOMSIP_DIALPLANS": str(ROOT / "dialplans"),
        "TOMSIP_LOG_LEVEL": "warning",
    }
    env.update({k: v for k, v in os.environ.items() if k.startswith("TOMSIP_")})
    return TomsipServer(env=env, log_path=log_path).start()


def start_echo(sip_port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            str(ROOT / "bench" / "echo_server.py"),
            "127.0.0.1",
            str(sip_port),
            f"{RTP_LO}-{RTP_HI}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_port_ready(proc, b"ready")
    return proc


def admission_refusals(server: TomsipServer | None) -> int:
    """tomsip's count of calls it refused (486) at admission; 0 for the echo server."""
    if server is None:
        return 0
    return int(sum(v for k, v in server.metrics().items() if k.startswith("tomsip_admission_refusals_total{")))


def run_step(
    server: str, pid: int, sip_port: int, calls: int, workdir: Path, tomsip: TomsipServer | None = None
) -> StepResult:
    pcap = workdir / f"{server}-{calls}.pcap"
    refused_before = admission_refusals(tomsip)
    capture = subprocess.Popen(
        [
            "tcpdump",
            "-i",
            "lo",
            "-n",
            "-s",
            "256",
            "-B",
            "16384",
            "-w",
            str(pcap),
            "udp",
            "and",
            "portrange",
            f"{RTP_LO}-{RTP_HI}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    rate = max(10, calls // 4)  # ramp up in about 4 s
    stat = workdir / f"{server}-{calls}-stat.csv"
    cmd = [
        *("sipp", f"127.0.0.1:{sip_port}", "-sf", str(SCENARIOS / "load_call.xml"), "-s", "1000", "-i", "127.0.0.1"),
        *("-p", str(free_port()), "-mp", str(free_port()), "-m", str(calls), "-l", str(calls), "-r", str(rate)),
        *("-timeout", "60s", "-timeout_error", "-nostdin", "-trace_stat", "-stf", str(stat), "-fd", "1"),
    ]
    sipp = subprocess.Popen(cmd, cwd=SCENARIOS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ramp = calls / rate
    time.sleep(ramp + 1.0)
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    peak_rss = rss_mb(pid)
    while time.monotonic() - t0 < CALL_SECONDS - ramp - 3.0:
        time.sleep(0.5)
        peak_rss = max(peak_rss, rss_mb(pid))
    cpu_pct = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0) * 100
    rc = sipp.wait(timeout=120)
    time.sleep(1.0)
    capture.send_signal(signal.SIGINT)
    capture.wait(timeout=10)
    failed = read_failed(stat, calls) if rc != 0 else 0
    refused = admission_refusals(tomsip) - refused_before
    gaps, barge = analyse(pcap)
    if not os.environ.get("BENCH_KEEP_PCAP"):
        pcap.unlink(missing_ok=True)
    else:
        print("kept", pcap)
    return StepResult(server, calls, failed, cpu_pct, peak_rss, gaps, barge, refused)


def read_failed(stat: Path, calls: int) -> int:
    try:
        lines = stat.read_text().splitlines()
        header = lines[0].split(";")
        last = lines[-1].split(";")
        return int(last[header.index("FailedCall(C)")])
    except (OSError, ValueError, IndexError):
        return calls


def level_dbfs(payload: bytes) -> float:
    if len(payload) <= 12 or payload[1] & 0x7F != 0:
        return -120.0
    samples = ULAW_DECODE[np.frombuffer(payload[12:], dtype=np.uint8)].astype(np.float64)
    return 20 * np.log10(max(float(np.sqrt(np.mean(samples * samples))), 1e-9) / 32768)


def is_rtp(payload: bytes) -> bool:
    """RTP version 2 with a media or event payload type (RTCP's 200-204 and anything else are not)."""
    return len(payload) >= 12 and payload[0] >> 6 == 2 and (payload[1] & 0x7F) in (0, 8, 101)


def analyse(pcap: Path) -> tuple[np.ndarray, list[float]]:
    """Per server RTP port: outbound gaps, and barge-in reaction on the second utterance."""
    outbound: dict[int, list[tuple[float, bool]]] = {}
    inbound: dict[int, list[tuple[float, bool]]] = {}
    for p in read_udp(str(pcap)):
        if not is_rtp(p.payload):
            continue
        if RTP_LO <= p.src_port <= RTP_HI:
            outbound.setdefault(p.src_port, []).append((p.ts, level_dbfs(p.payload) > VOICED_DBFS))
        elif RTP_LO <= p.dst_port <= RTP_HI:
            inbound.setdefault(p.dst_port, []).append((p.ts, level_dbfs(p.payload) > ONSET_DBFS))
    gaps: list[np.ndarray] = []
    barge: list[float] = []
    for port, packets in outbound.items():
        times = np.array([t for t, _ in packets])
        if len(times) > 1:
            gaps.append(np.diff(times) * 1000)
        reaction = barge_in_reaction(packets, inbound.get(port, []))
        if reaction is not None:
            barge.append(reaction)
    return (np.concatenate(gaps) if gaps else np.zeros(0)), barge


def voiced_runs(packets: list[tuple[float, bool]], min_gap_s: float = 0.3) -> list[tuple[float, float]]:
    runs: list[tuple[float, float]] = []
    for t, v in packets:
        if not v:
            continue
        if runs and t - runs[-1][1] <= min_gap_s:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs


def barge_in_reaction(out: list[tuple[float, bool]], inp: list[tuple[float, bool]]) -> float | None:
    """The caller's second utterance starts while reply 1 plays; reaction = its onset to the reply's
    last voiced packet."""
    out_runs = voiced_runs(out, 0.06)
    in_runs = voiced_runs(inp, 0.6)
    if len(in_runs) < 2 or len(out_runs) < 2:
        return None
    onset = in_runs[1][0]
    playing = [r for r in out_runs if r[0] < onset <= r[1] + 0.1]
    if not playing:
        return None
    return (playing[0][1] - onset) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="50,100,200,250", help="concurrent call counts to try, rising")
    parser.add_argument("--echo-step", type=int, default=200, help="concurrency for the echo baseline")
    args = parser.parse_args()
    raise_fd_limit()
    steps = [int(s) for s in args.steps.split(",")]
    for tool in ("sipp", "tcpdump"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            print(f"bench/capacity needs {tool} (apt-get install {'sip-tester' if tool == 'sipp' else tool})")
            return 2
    results: list[StepResult] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(os.environ.get("BENCH_KEEP_PCAP") or tmp)
        tomsip = start_tomsip(work / "tomsip.log")
        assert tomsip.proc is not None
        try:
            for calls in steps:
                result = run_step("tomsip", tomsip.proc.pid, tomsip.sip_port, calls, work, tomsip)
                results.append(result)
                print(result.line(), flush=True)
                if result.failed:
                    break
                time.sleep(3)
        finally:
            tomsip.stop(timeout_s=30)
        echo_port = free_port(pair=True)
        echo = start_echo(echo_port)
        try:
            baseline = run_step("echo", echo.pid, echo_port, args.echo_step, work)
            print(baseline.line(), flush=True)
        finally:
            echo.send_signal(signal.SIGTERM)
            echo.wait(timeout=30)
    held = max((r.calls for r in results if r.failed == 0), default=0)
    print(f"\nmost concurrent calls held with 0 failures: {held} (steps tried: {', '.join(map(str, steps))})")
    same = [r for r in results if r.calls == args.echo_step and r.failed == 0]
    if same and baseline.failed == 0 and baseline.cpu_pct > 0:
        ratio = (same[0].cpu_pct / same[0].calls) / (baseline.cpu_pct / baseline.calls)
        print(f"tomsip CPU per call / bare baresip-python echo CPU per call at {args.echo_step} calls: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
