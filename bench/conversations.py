"""bench/conversations: how many offline conversations one tomsip process carries, measured on the wire.

Calls arrive the way they do on a trunk: on a ramp (one every --ramp-s seconds), not in lockstep.
Each caller holds a booking conversation with the offline default (whisper, the booking assistant,
piper, the shipped dialplans with their rating question): it asks for a day, then a time, confirms,
and answers the rating question by voice, each time after a natural pause (0.8-1.2 s) once the
assistant has stopped talking. SIPp does the signalling; the callers' media runs on one event loop
(tests/support/caller_crowd.py) and every packet is timed at the caller's socket.

For each N it prints: answered, refused (by SIP code), dropped by the server (answered calls the
server ended with an error, or whose conversation stopped before its last reply), turns, turns
without a reply, fillers played, voice-to-voice p50/p90/max, the server's CPU (share of one core over
the run, and per conversation-minute) and its peak RSS. Then the largest N with every answered call
completed (booked, rated, goodbye), 0 dropped, 0 turns without a reply and p90 voice-to-voice
<= 1,000 ms, and overload runs at multiples of that N
against a server with its default, calibrated admission: every answered call must finish, the excess
must be refused at the door, and the admitted calls' p90 must stay <= 1,500 ms.

    bench/conversations [--steps 8,16,24,32] [--ramp-s 0.5] [--overload 3,10] [--skip-overload]
                        [--remote [--also-local]]

With --remote the node loads no model: its STT and TTS go to one `tomsip speech-worker` process on
the same machine (TOMSIP_STT_URLS / TOMSIP_TTS_URLS), and each line adds the node's CPU and RSS per
call in progress and the worker's CPU per conversation-minute and RSS. Node, worker, callers and SIPp
share the same cores, so the figures say where the CPU goes, not what a separate box would carry.

Loopback only, inside `unshare -n` (the wrapper script); every run is bounded in calls and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.caller_crowd import CallerCrowd, Utterance, utterance_packets  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.process import cpu_seconds, rss_mb  # noqa: E402
from tests.support.server import TomsipServer  # noqa: E402
from tests.support.speech_worker import SpeechWorkerProcess  # noqa: E402

SCENARIO = ROOT / "sipp_scenarios" / "converse_or_busy.xml"
# A three-turn booking, then the rating question answered by voice. The SLO is judged on the three
# booking turns; the rating answer's goodbye is reported on its own (the rating state has no
# speculative transcription, so its reply waits for the plain end-of-speech silence).
SCRIPT = [
    "I would like to come in on Tuesday, please.",
    "At ten in the morning.",
    "Yes, please.",
    "Five, please.",
]
BOOKING_TURNS = 3
CALL_LIMIT_S = 150  # one conversation takes about 35 s; a call still up after this is a hung call


@dataclass
class StepResult:
    calls: int
    answered: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    errors: int = 0
    completed: int = 0  # the server's outcome: booked, rated, said goodbye
    turns: int = 0
    unanswered_turns: int = 0
    fillers: int = 0
    v2v_ms: list[float] = field(default_factory=list)
    v2v_by_turn: dict[int, list[float]] = field(default_factory=dict)
    cpu_core_share: float = 0.0
    cpu_s_per_conversation_min: float = 0.0
    rss_mb: float = 0.0
    speech: str = ""
    peak_active: int = 0
    seconds_at_peak: int = 0  # seconds with at least 90 % of the peak in progress
    sipp_failed: int = 0
    worker_cpu_s_per_conversation_min: float | None = None  # --remote: the speech worker's share
    worker_rss_mb: float = 0.0
    node_idle_rss_mb: float = 0.0

    def p(self, q: float) -> float:
        return float(np.percentile(self.v2v_ms, q)) if self.v2v_ms else float("nan")

    def line(self) -> str:
        refused = ", ".join(f"{n} x {code}" for code, n in sorted(self.refused.items())) or "0"
        v2v = (
            f"p50 {self.p(50):4.0f} / p90 {self.p(90):4.0f} / max {max(self.v2v_ms):4.0f} ms"
            if self.v2v_ms
            else "no samples"
        )
        return (
            f"{self.calls:4d} callers | answered {self.answered:3d} (completed {self.completed}) | refused {refused} | "
            f"dropped {self.dropped} "
            f"| turns {self.turns} ({self.unanswered_turns} without a reply, {self.fillers} fillers) | "
            f"voice-to-voice (booking turns) {v2v} | CPU {self.cpu_core_share:.0%} of a core, "
            f"{self.cpu_s_per_conversation_min:.1f} s per conversation-minute | RSS {self.rss_mb:.0f} MB | "
            f"peak {self.peak_active} in progress ({self.seconds_at_peak} s at 90 % of it)"
        ) + self.remote_line()

    def remote_line(self) -> str:
        if self.worker_cpu_s_per_conversation_min is None:
            return ""
        per_call_cpu = self.cpu_core_share / self.peak_active if self.peak_active else 0.0
        per_call_rss = (self.rss_mb - self.node_idle_rss_mb) / self.peak_active if self.peak_active else 0.0
        return (
            f"\n        remote speech: SIP node {per_call_cpu:.2%} of a core and {per_call_rss:.2f} MB RSS per call in "
            f"progress (idle RSS {self.node_idle_rss_mb:.0f} MB); speech worker "
            f"{self.worker_cpu_s_per_conversation_min:.1f} s CPU per conversation-minute, "
            f"RSS {self.worker_rss_mb:.0f} MB"
        )

    def by_turn(self) -> str:
        parts = []
        for index, text in enumerate(SCRIPT):
            samples = self.v2v_by_turn.get(index, [])
            if samples:
                parts.append(f'"{text}" p50 {np.percentile(samples, 50):.0f} / p90 {np.percentile(samples, 90):.0f}')
        return "; ".join(parts)

    def within_slo(self, p90_ms: float) -> bool:
        return (
            self.dropped == 0
            and self.unanswered_turns == 0
            and 0 < self.answered == self.completed
            and self.p(90) <= p90_ms
        )


def understood(index: int, heard: str) -> bool:
    """Would the booking assistant take this transcript as the script's step `index`?"""
    from tomsip.speech import intents

    checks = (
        lambda t: intents.find_day(t) == "Tuesday",
        lambda t: intents.find_time(t) is not None and intents.find_time(t).hour == 10,  # type: ignore[union-attr]
        lambda t: bool(intents.YES.search(t)),
        lambda t: intents.find_rating(t) == 5,
    )
    return checks[index](heard)


def caller_speech(takes: int = 6) -> list[Utterance]:
    """The caller's sentences, spoken by the offline voice, through an 8 kHz line. piper samples its
    voice, so a take can come out unclear; every caller says the same take, so one that whisper does
    not understand would fail every conversation alike. Each take is checked through the phone leg
    first (the bench measures capacity; bench/latency measures recognition)."""
    from bench.latency import phone_leg
    from tomsip.audio.resample import resample_once
    from tomsip.speech.local.pipeline import speak_offline
    from tomsip.speech.local.whisper_stt import WhisperSpeechToText, load_whisper

    stt = WhisperSpeechToText(load_whisper(1))
    out: list[Utterance] = []
    for index, text in enumerate(SCRIPT):
        for _ in range(takes):
            pcm8k = resample_once(speak_offline(text), 16000, 8000)
            if understood(index, stt.transcribe_sync(phone_leg(pcm8k)).text):
                out.append(utterance_packets(pcm8k))
                break
        else:
            raise SystemExit(f"no take of {text!r} in {takes} was understood: check the speech packages")
    return out


def sipp_command(sip_port: int, calls: int, ramp_s: float, inf: Path) -> list[str]:
    return [
        "sipp", f"127.0.0.1:{sip_port}", "-sf", str(SCENARIO), "-inf", str(inf), "-s", "1000",
        "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(free_port()), "-t", "u1",
        "-m", str(calls), "-l", str(calls), "-r", "1", "-rp", str(int(ramp_s * 1000)),
        "-timeout", f"{CALL_LIMIT_S + int(calls * ramp_s)}s", "-recv_timeout", "130000",
        "-trace_counts", "-nostdin",
    ]  # fmt: skip


async def converse(
    server: TomsipServer, calls: int, ramp_s: float, speech: list[Utterance], worker: TomsipServer | None = None
) -> StepResult:
    result = StepResult(calls)
    crowd = CallerCrowd(calls, speech)
    ports = await crowd.open()
    pid = server.proc.pid if server.proc else 0
    worker_pid = worker.proc.pid if worker is not None and worker.proc else 0
    before = server.metrics()
    cpu_before = cpu_seconds(pid)
    worker_cpu_before = cpu_seconds(worker_pid) if worker_pid else 0.0
    result.node_idle_rss_mb = rss_mb(pid)
    worker_before = worker.metrics() if worker is not None else {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        inf = Path(tmp) / "calls.csv"
        inf.write_text("SEQUENTIAL\n" + "".join(f"{p};\n" for p in ports))
        sipp = await asyncio.create_subprocess_exec(
            *sipp_command(server.sip_port, calls, ramp_s, inf),
            cwd=tmp,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL,
        )
        done = asyncio.ensure_future(sipp.wait())
        rss = 0.0
        active: list[int] = []

        async def watch_rss() -> None:
            nonlocal rss
            while not done.done():
                rss = max(rss, rss_mb(pid))
                if worker_pid:
                    result.worker_rss_mb = max(result.worker_rss_mb, rss_mb(worker_pid))
                active.append(int(await asyncio.to_thread(server.metric, "tomsip_active_calls")))
                await asyncio.sleep(1)

        watcher = asyncio.ensure_future(watch_rss())
        limit_s = CALL_LIMIT_S + calls * ramp_s + 30
        await crowd.run(done, limit_s)
        if not done.done():
            sipp.kill()
        await done
        await watcher
        result.sipp_failed = 0 if sipp.returncode == 0 else 1
        result.refused = sipp_refusals(Path(tmp))
    elapsed = time.monotonic() - started
    crowd.close()
    await asyncio.sleep(1)  # the server counts a call once its BYE exchange is over
    after = server.metrics()
    cpu = cpu_seconds(pid) - cpu_before
    result.rss_mb = rss
    result.peak_active = max(active, default=0)
    result.seconds_at_peak = sum(1 for a in active if a >= 0.9 * result.peak_active) if active else 0

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    result.errors = int(delta('tomsip_calls_total{outcome="error"}'))
    result.completed = int(delta('tomsip_calls_total{outcome="completed"}'))
    batches = delta("tomsip_stt_batch_size_count")
    recognized = delta("tomsip_stt_batch_size_sum")
    if worker is not None:  # the node recognises nothing itself: the worker's batches
        worker_after = worker.metrics()
        batches, recognized = (
            worker_after.get(f"tomsip_worker_stt_batch_size_{k}", 0.0)
            - worker_before.get(f"tomsip_worker_stt_batch_size_{k}", 0.0)
            for k in ("count", "sum")
        )
    used, stale = (delta(f'tomsip_speculative_stt_total{{outcome="{o}"}}') for o in ("used", "stale"))
    made, cached = (delta(f'tomsip_tts_sentences_total{{source="{o}"}}') for o in ("synthesized", "cache"))
    result.speech = (
        f"STT {recognized:.0f} utterances in {batches:.0f} passes; speculative: "
        f"{used:.0f} used, {stale:.0f} stale; TTS sentences {made:.0f} synthesized, {cached:.0f} from the cache"
    )
    result.fillers = int(delta("tomsip_fillers_total"))
    conversation_s = 0.0
    for caller in crowd.callers:
        if not caller.answered:
            continue
        result.answered += 1
        conversation_s += caller.last_heard - (caller.first_heard or caller.last_heard)
        result.turns += len(caller.turns)
        missing = [t for t in caller.turns if t.reply_at is None]
        result.unanswered_turns += len(missing)
        finished = len(caller.turns) == len(caller.utterances) and not missing
        if not finished:
            result.dropped += 1
        for turn in caller.turns:
            if turn.reply_at is not None and turn.last_voiced_sent:
                ms = (turn.reply_at - turn.last_voiced_sent) * 1000
                if turn.index < BOOKING_TURNS:
                    result.v2v_ms.append(ms)
                result.v2v_by_turn.setdefault(turn.index, []).append(ms)
    result.dropped = max(result.dropped, result.errors)
    result.cpu_core_share = cpu / elapsed
    result.cpu_s_per_conversation_min = cpu / (conversation_s / 60) if conversation_s else 0.0
    if worker_pid:
        worker_cpu = cpu_seconds(worker_pid) - worker_cpu_before
        result.worker_cpu_s_per_conversation_min = worker_cpu / (conversation_s / 60) if conversation_s else 0.0
    return result


def sipp_refusals(folder: Path) -> dict[str, int]:
    """How many INVITEs were answered 486 and 503, from SIPp's per-message counts (-trace_counts)."""
    refused: dict[str, int] = {}
    for path in folder.glob("*_counts.csv"):
        rows = [row for row in csv.reader(path.open(), delimiter=";") if row]
        if len(rows) < 2:
            continue
        header, last = rows[0], rows[-1]
        for code in ("486", "503"):
            # columns are "<index>_<message>_<what>", e.g. "4_486_Recv"
            for i, name in enumerate(header):
                if name.endswith(f"_{code}_Recv") and i < len(last) and last[i].strip().isdigit():
                    if int(last[i]):
                        refused[code] = refused.get(code, 0) + int(last[i])
    return refused


@contextlib.contextmanager
def speech_workers(
    remote: bool, log: Path, open_admission: bool, extra: dict[str, str] | None = None
) -> Iterator[SpeechWorkerProcess | None]:
    """--remote: one speech worker with the node's own inference settings (two STT threads of one CPU
    thread each, two TTS threads), measuring its capacity as a node would; with `open_admission`
    it reports room for every call and never says busy (the capacity runs)."""
    if not remote:
        yield None
        return
    env = {"TOMSIP_WORKER_STT_WORKERS": "2", "TOMSIP_WORKER_TTS_WORKERS": "2"}
    if open_admission:
        env |= {"TOMSIP_WORKER_CONVERSATIONS": "250", "TOMSIP_WORKER_BUSY_MS": "0"}
    else:
        env |= extra or {}
    worker = SpeechWorkerProcess(env, log).start()
    print(f"  remote: STT and TTS in one speech-worker process ({worker.url}); the node loads no model")
    try:
        yield worker
    finally:
        code = worker.stop()
        errors = [line for line in worker.log_text().splitlines() if "level=error" in line]
        print(f"  speech worker: exit {code}, {len(errors)} ERROR lines")


def remote_env(worker: SpeechWorkerProcess | None) -> dict[str, str]:
    return {"TOMSIP_STT_URLS": worker.url, "TOMSIP_TTS_URLS": worker.url} if worker is not None else {}


def start_server(log: Path, env: dict[str, str]) -> TomsipServer:
    base = {
        "TOMSIP_PIPELINE": "local",
        "TOMSIP_DIALPLANS": str(ROOT / "dialplans"),
        "TOMSIP_MAX_CALLS": "250",
        "TOMSIP_INVITE_RATE": "100",
        "TOMSIP_INVITE_BURST": "200",
    }
    return TomsipServer(env={**base, **env}, log_path=log).start(timeout_s=180)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="8,16,24,32", help="concurrent callers per capacity run, rising")
    parser.add_argument("--ramp-s", type=float, default=0.25, help="seconds between two calls' arrivals")
    parser.add_argument("--slo-p90-ms", type=float, default=1000.0)
    parser.add_argument("--overload", default="3,10", help="overload runs at these multiples of the largest N")
    parser.add_argument("--overload-p90-ms", type=float, default=1500.0)
    parser.add_argument("--skip-overload", action="store_true")
    parser.add_argument("--env", action="append", default=[], help="extra TOMSIP_X=Y for the server under test")
    parser.add_argument("--logs", type=Path, help="keep the servers' logs in this folder")
    parser.add_argument("--remote", action="store_true", help="the node's speech runs in a speech-worker process")
    parser.add_argument(
        "--worker-env", action="append", default=[], help="with --remote: TOMSIP_WORKER_X=Y for the overload worker"
    )
    parser.add_argument(
        "--also-local",
        action="store_true",
        help="with --remote: run the in-process steps first, with the same caller takes (a fair comparison)",
    )
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    speech = caller_speech()
    steps = [int(s) for s in args.steps.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.logs or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        if args.remote and args.also_local:
            print("== speech in process")
            run_steps(argparse.Namespace(**{**vars(args), "remote": False}), extra, speech, steps, Path(tmp) / "local")
            print("== speech in a speech-worker process")
        return run_steps(args, extra, speech, steps, Path(tmp))


def run_steps(
    args: argparse.Namespace, extra: dict[str, str], speech: list[Utterance], steps: list[int], tmp: Path
) -> int:
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"capacity: staggered arrivals, one every {args.ramp_s:g} s; admission open (no conversation limit)")
    opened = {"TOMSIP_MAX_CONVERSATIONS": "250", "TOMSIP_SPEECH_BUSY_MS": "0", "TOMSIP_SPEECH_WORKER_SLO_MS": "0"}
    with speech_workers(args.remote, tmp / "capacity-worker.log", open_admission=True) as worker:
        best = capacity_steps(args, {**opened, **remote_env(worker), **extra}, speech, steps, tmp, worker)
    print(
        f"largest N with every answered call completed, 0 dropped, 0 turns without a reply and p90 <= "
        f"{args.slo_p90_ms:.0f} ms: {best}"
    )
    if args.skip_overload or not best:
        return 0
    worker_env = dict(item.split("=", 1) for item in args.worker_env)
    with speech_workers(args.remote, tmp / "overload-worker.log", False, worker_env) as worker:
        overload_steps(args, {**remote_env(worker), **extra}, speech, best, tmp, worker)
    return 0


def capacity_steps(
    args: argparse.Namespace,
    env: dict[str, str],
    speech: list[Utterance],
    steps: list[int],
    tmp: Path,
    worker: SpeechWorkerProcess | None,
) -> int:
    server = start_server(tmp / "capacity.log", env)
    best = 0
    try:
        for n in steps:
            result = asyncio.run(converse(server, n, args.ramp_s, speech, worker))
            print("  " + result.line(), flush=True)
            print("        by turn (ms): " + result.by_turn(), flush=True)
            print("        speech: " + result.speech, flush=True)
            if not result.within_slo(args.slo_p90_ms):
                break
            best = n
    finally:
        server.stop()
        errors = [line for line in server.log_text().splitlines() if "level=error" in line]
        if errors:
            print(f"  server log: {len(errors)} ERROR lines, first: {errors[0][:200]}")
    return best


def overload_steps(
    args: argparse.Namespace,
    env: dict[str, str],
    speech: list[Utterance],
    best: int,
    tmp: Path,
    worker: SpeechWorkerProcess | None,
) -> None:
    server = start_server(tmp / "overload.log", env)
    try:
        limit = int(server.metric('tomsip_conversation_limit{pipeline="local"}'))
        source = "the speech worker's capacity" if worker is not None else "calibrated"
        print(f"overload: the server's own admission (conversation limit {limit}: {source})")
        for factor in (int(f) for f in args.overload.split(",")):
            result = asyncio.run(converse(server, factor * best, args.ramp_s / factor, speech, worker))
            verdict = "ok" if result.within_slo(args.overload_p90_ms) else "MISSED"
            print(f"  {factor:2d}x: " + result.line() + f"  [{verdict}]", flush=True)
    finally:
        server.stop()
        errors = [line for line in server.log_text().splitlines() if "level=error" in line]
        print(f"  server log: {len(errors)} ERROR lines" + (f", first: {errors[0][:200]}" if errors else ""))


if __name__ == "__main__":
    sys.exit(main())
