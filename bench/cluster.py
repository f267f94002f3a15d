"""bench/cluster: calls held with 0 failures through Kamailio to two tomsip processes, next to one
process alone, on this machine (bounded, loopback).

Both set-ups use the mock pipeline (the SIP and media path is what scales here; speech capacity is
bench/latency's) and share one redis-server, as a cluster does. SIPp (sipp_scenarios/lb_hold.xml)
places the calls; each caller stays silent for the hold time and hangs up.
1. Concurrent calls: a step of N calls started at 30 a second and held 12 s; the step passes when
   no call fails. Server CPU is summed over the tomsip processes (and Kamailio, shown apart).
2. Call setups per second: short calls (2 s) started at a steady rate for 10 s.

    bench/cluster [--concurrent 60,120,180] [--rates 20,40,60]
Every load is bounded in calls and time and stops by itself.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.capacity import cpu_seconds, read_failed  # noqa: E402
from tests.support.kamailio import Kamailio  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402
from tests.support.server import TomsipServer  # noqa: E402

SCENARIO = ROOT / "sipp_scenarios" / "lb_hold.xml"


@dataclass
class Target:
    name: str
    sip_port: int
    pids: list[int]  # tomsip processes
    lb_pid: int | None = None


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and its children (Kamailio's work happens in its forked workers)."""
    total = cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                total += cpu_seconds(int(entry.name))
    return total


def run_load(target: Target, calls: int, rate: float, hold_ms: int, workdir: Path) -> tuple[int, float, float]:
    """(failed calls, tomsip CPU %, balancer CPU %) for one bounded SIPp run."""
    stat = workdir / f"{target.name}-{calls}-{rate}-{time.monotonic_ns()}.csv"
    inf = workdir / "calls.csv"
    inf.write_text("SEQUENTIAL\n9;\n")
    cmd = [
        "sipp", f"127.0.0.1:{target.sip_port}", "-sf", str(SCENARIO), "-inf", str(inf), "-s", "1000",
        "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()), "-t", "u1",
        "-m", str(calls), "-l", str(calls), "-r", str(rate), "-d", str(hold_ms),
        "-timeout", f"{int(calls / rate + hold_ms / 1000 + 60)}s", "-timeout_error", "-recv_timeout", "20000",
        "-nostdin", "-trace_stat", "-stf", str(stat), "-fd", "1",
    ]  # fmt: skip
    cpu0 = sum(cpu_seconds(p) for p in target.pids)
    lb0 = tree_cpu_seconds(target.lb_pid) if target.lb_pid else 0.0
    t0 = time.monotonic()
    rc = subprocess.run(cmd, capture_output=True, text=True, timeout=calls / rate + hold_ms / 1000 + 120).returncode
    elapsed = time.monotonic() - t0
    cpu = (sum(cpu_seconds(p) for p in target.pids) - cpu0) / elapsed * 100
    lb = (tree_cpu_seconds(target.lb_pid) - lb0) / elapsed * 100 if target.lb_pid else 0.0
    return (read_failed(stat, calls) if rc != 0 else 0), cpu, lb


def bench(target: Target, concurrent: list[int], rates: list[int], workdir: Path) -> tuple[int, int]:
    print(f"{target.name}")
    held = 0
    for calls in concurrent:
        failed, cpu, lb = run_load(target, calls, 30, 12_000, workdir)
        lb_text = f", Kamailio {lb:4.1f} %" if target.lb_pid else ""
        print(f"  {calls:4d} concurrent calls held 12 s: failed {failed:3d}  tomsip CPU {cpu:5.1f} %{lb_text}")
        if failed == 0:
            held = calls
        time.sleep(3)
    best_rate = 0
    for rate in rates:
        failed, cpu, lb = run_load(target, rate * 10, rate, 2_000, workdir)
        lb_text = f", Kamailio {lb:4.1f} %" if target.lb_pid else ""
        print(f"  {rate:4d} call setups/s for 10 s: failed {failed:3d}  tomsip CPU {cpu:5.1f} %{lb_text}")
        if failed == 0:
            best_rate = rate
        time.sleep(3)
    return held, best_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrent", default="60,120,180", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--rates", default="20,40,60", type=lambda s: [int(x) for x in s.split(",")])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis = RedisServer(work).start()
        env = {
            "TOMSIP_REDIS_URL": redis.url,
            "TOMSIP_LOG_LEVEL": "warning",
            "TOMSIP_MAX_CALLS": "250",
            # Every INVITE reaches a node from the balancer's address: its per-source limit is for
            # direct callers (Kamailio's pike guards the real sources).
            "TOMSIP_INVITE_RATE": "1000",
            "TOMSIP_INVITE_BURST": "1000",
        }
        nodes = [TomsipServer(env={**env, "TOMSIP_NODE_NAME": f"node-{i}"}) for i in (1, 2)]
        lb: Kamailio | None = None
        try:
            nodes[0].start()
            assert nodes[0].proc is not None
            one = bench(Target("one tomsip process", nodes[0].sip_port, [nodes[0].proc.pid]), args.concurrent,
                        args.rates, work)  # fmt: skip
            nodes[1].start()
            assert nodes[1].proc is not None
            lb = Kamailio(work, [n.sip_port for n in nodes]).start()
            time.sleep(3)  # the first OPTIONS round
            assert lb.proc is not None
            cluster = Target(
                "Kamailio + two tomsip processes", lb.port, [n.proc.pid for n in nodes if n.proc], lb.proc.pid
            )
            two = bench(cluster, args.concurrent, args.rates, work)
            print(
                f"held with 0 failures: one process {one[0]} concurrent / {one[1]} setups/s; "
                f"Kamailio + two processes {two[0]} concurrent / {two[1]} setups/s"
            )
        finally:
            if lb is not None:
                lb.stop()
            for node in nodes:
                node.stop()
            redis.stop()


if __name__ == "__main__":
    main()
