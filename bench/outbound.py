"""bench/outbound: outbound calls placed through POST /api/calls to a SIPp farm of called parties, at
rising calls a second, measured from the API's results and the server's /proc.

The farm (sipp_scenarios/uas_farm.xml) answers as the called number says: a person who says "Hello?",
an answering machine (a 10.6 s greeting and a 1 kHz beep), or busy. Requests arrive staggered, with
exponential gaps around the step's rate (a seeded Poisson process, as a campaign's would not be in
lockstep); tomsip's own pacing is set above the highest step so that it does not hide the load.

Prints per step: placed, answered by person / machine / unknown, busy, other results, time to answer
(INVITE to 200 OK) p50/p90, the detector's decision time p50/max for persons and machines, how many
verdicts were right, tomsip's CPU (% of one core) and peak RSS, and ERROR lines in its log. Then the
detector's accuracy table over the labelled clips (bench/amd), unless --no-amd-table.

    bench/outbound [--rates 1,2,4] [--seconds 10] [--machines 0.25] [--busy 0.1] [--no-amd-table]
Needs sipp. Runs in a private network namespace (loopback only) when it can.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.admin_api import admin_api  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.process import cpu_seconds, rss_mb, stop_process  # noqa: E402
from tests.support.server import TomsipServer  # noqa: E402

SCENARIOS = ROOT / "sipp_scenarios"
TOKEN = "bench-outbound-token"
KIND_DIGIT = {"human": "1", "machine": "2", "busy": "3"}


def api(port: int, path: str, body: dict[str, object] | None = None) -> tuple[int, dict[str, Any]]:
    status, answer = admin_api(port, path, body, TOKEN)
    return status, answer


def farm(port: int, calls: int, tmp: Path) -> subprocess.Popen[bytes]:
    log = (tmp / f"farm-{port}.log").open("wb")
    return subprocess.Popen(
        [
            "sipp",
            "-sf",
            str(SCENARIOS / "uas_farm.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "-mp",
            str(free_port(span=4)),
            "-m",
            str(calls),
            "-l",
            "1000",
            "-timeout",
            "300s",
            "-recv_timeout",
            "60000",
            "-nostdin",
        ],
        cwd=SCENARIOS,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):6.0f}" if values else "     -"


def run_step(server: TomsipServer, rate: float, seconds: float, mix: dict[str, float], seed: int) -> str:
    rng = random.Random(seed)
    count = max(1, round(rate * seconds))
    kinds = rng.choices(list(mix), weights=list(mix.values()), k=count)
    assert server.proc is not None
    pid = server.proc.pid
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    peak_rss = rss_mb(pid)
    placed: list[tuple[str, str]] = []
    refused = 0
    at = time.monotonic()
    for n, kind in enumerate(kinds):
        at += rng.expovariate(rate)
        time.sleep(max(0.0, at - time.monotonic()))
        body: dict[str, object] = {"to": f"555{n:04d}{KIND_DIGIT[kind]}", "dialplan": "reminder"}
        status, answer = api(server.http_port, "/api/calls", body)
        if status == 202:
            placed.append((answer["id"], kind))
        else:
            refused += 1
        peak_rss = max(peak_rss, rss_mb(pid))
    results: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 120
    while len(results) < len(placed) and time.monotonic() < deadline:
        for call_id, _ in placed:
            if call_id not in results:
                status, answer = api(server.http_port, f"/api/calls/{call_id}")
                if status == 200 and answer["state"] == "done":
                    results[call_id] = answer
        peak_rss = max(peak_rss, rss_mb(pid))
        time.sleep(0.5)
    cpu_pct = 100 * (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
    by = [(kind, results.get(call_id, {})) for call_id, kind in placed]
    answered = [(k, r) for k, r in by if r.get("result") == "answered"]
    who = {a: sum(1 for _, r in answered if r["answered_by"] == a) for a in ("human", "machine", "unknown")}
    busy = sum(1 for _, r in by if r.get("result") == "busy")
    other = len(by) - len(answered) - busy
    to_answer = [1000 * r["answer_s"] for _, r in answered]
    amd_h = [r["amd_ms"] for k, r in answered if k == "human" and r.get("amd_ms") is not None]
    amd_m = [r["amd_ms"] for k, r in answered if k == "machine" and r.get("amd_ms") is not None]
    right = sum(1 for k, r in answered if r["answered_by"] == k)
    wrong = [(k, r["answered_by"]) for k, r in answered if r["answered_by"] != k]
    line = (
        f"{rate:5.1f} {len(placed):6d} {refused:4d} {who['human']:6d} {who['machine']:7d} {who['unknown']:7d} "
        f"{busy:4d} {other:5d}  {pct(to_answer, 50)} {pct(to_answer, 90)}  {pct(amd_h, 50)} "
        f"{(max(amd_h) if amd_h else 0):6.0f}  {pct(amd_m, 50)} {(max(amd_m) if amd_m else 0):6.0f}  "
        f"{right:3d}/{len(answered):<3d} {cpu_pct:5.1f} {peak_rss:6.0f}"
    )
    outcomes = Counter(str(r.get("outcome")) for _, r in answered)
    line += "\n      answered calls ended: " + ", ".join(f"{k}: {n}" for k, n in sorted(outcomes.items()))
    if wrong:
        line += f"\n      wrong verdicts (expected, got): {wrong}"
    if other:
        reasons = Counter(f"{r.get('result') or 'none'} ({r.get('reason') or '-'})" for _, r in by)
        line += "\n      results: " + ", ".join(f"{k}: {n}" for k, n in sorted(reasons.items()))
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1,2,4", help="calls a second, per step")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each step's arrivals")
    parser.add_argument("--machines", type=float, default=0.25, help="share of called parties that are machines")
    parser.add_argument("--busy", type=float, default=0.1, help="share that are busy")
    parser.add_argument("--no-amd-table", action="store_true", help="skip bench/amd's accuracy table")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    if max(rates) * args.seconds > 400:
        parser.error("at most 400 calls a step")
    mix = {"human": 1 - args.machines - args.busy, "machine": args.machines, "busy": args.busy}
    farm_port = free_port()
    env = {
        "TOMSIP_ADMIN_TOKEN": TOKEN,
        "TOMSIP_OUTBOUND_PROXY": f"127.0.0.1:{farm_port}",
        "TOMSIP_OUTBOUND_RATE": str(2 * max(rates)),
        "TOMSIP_OUTBOUND_MAX": "200",
        "TOMSIP_OUTBOUND_QUEUE": "1000",
        "TOMSIP_MAX_CALLS": "250",
    }
    print(
        f"outbound calls, mock brain, reminder dialplan; arrivals staggered (Poisson) for {args.seconds:.0f} s "
        f"a step; called parties {mix['human']:.0%} persons, {mix['machine']:.0%} machines, {mix['busy']:.0%} busy"
    )
    print(
        " rate placed  ref  human machine unknown busy other   answer ms p50/p90   person amd p50/max"
        "  machine amd p50/max  right   cpu%  rssMB"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        server = TomsipServer(env=env, log_path=tmp / "server.log").start()
        errors = 0
        try:
            for step, rate in enumerate(rates):
                sipp = farm(farm_port, max(1, round(rate * args.seconds)), tmp)
                time.sleep(0.5)
                try:
                    print(run_step(server, rate, args.seconds, mix, seed=step + 1), flush=True)
                finally:
                    try:
                        sipp.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        stop_process(sipp)  # type: ignore[arg-type]
            errors = sum(1 for line in server.log_text().splitlines() if " ERROR " in line)
        finally:
            server.stop()
        print(f"ERROR lines in tomsip's log: {errors}")
    if not args.no_amd_table:
        print("\nthe detector over the labelled clips (bench/amd):")
        sys.path.insert(0, str(ROOT / "bench"))
        import amd

        amd.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
