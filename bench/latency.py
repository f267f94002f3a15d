"""bench/latency: how fast the offline assistant answers and stops, measured on the wire.

One tomsip process with the offline default (faster-whisper, the booking responder, piper) on
loopback. Callers are Python RTP peers driven by SIPp signalling (tests/support/caller.py): they
speak piper-voiced sentences when the assistant is quiet, and every packet's send or arrival time is
taken at the caller's socket, so the figures are what a caller on the line experiences.

Prints:
- voice-to-voice: the caller's last voiced RTP packet to the first voiced reply packet, p50/p90 over
  sequential booking calls (two turns each);
- barge-in reaction: the caller's first voiced packet over a reply to the reply's last voiced packet;
- false barge-ins from echo: silent callers on a line returning our audio 60 ms late, 15 dB down;
- STT word error rate over the phone leg (G.711 mu-law, 8 kHz) on 12 sentences in two voices (piper
  joe and espeak-ng), for tomsip's shortened-window decoding and for faster-whisper's own 30 s one;
- concurrency: concurrent conversations at rising steps until p90 voice-to-voice doubles.

    bench/latency [--calls 6] [--steps 1,2,3,4,6,8] [--skip-wer] [--skip-concurrency]
Every load is bounded in calls and time and stops by itself.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.caller import ConversingCaller, level_dbfs, utterance  # noqa: E402
from tests.support.rtp import RtpPeer  # noqa: E402
from tests.support.server import TomsipServer  # noqa: E402
from tests.support.sipp import run_sipp  # noqa: E402

VOICED_DBFS = -45.0
SENTENCES = [
    "I would like to book an appointment for Tuesday at ten in the morning.",
    "Can I come in on Friday afternoon instead?",
    "Please cancel my appointment next week.",
    "What time do you open on Monday?",
    "I need to see the doctor as soon as possible.",
    "My name is Sarah Johnson and I have a booking on Thursday.",
    "Could you move my visit to half past three?",
    "Is there anything available tomorrow morning?",
    "I would rather speak to a real person, please.",
    "Yes, that works for me, thank you very much.",
    "No, Wednesday is not good for me.",
    "How long will the appointment take?",
]
NUMBER_WORDS = {
    "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
    "8": "eight", "9": "nine", "10": "ten", "11": "eleven", "12": "twelve", "15": "fifteen", "30": "thirty",
    "45": "forty five",
}  # fmt: skip


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def fmt(values: list[float]) -> str:
    if not values:
        return "no samples"
    return f"p50 {pct(values, 50):.0f} ms, p90 {pct(values, 90):.0f} ms, max {max(values):.0f} ms (n={len(values)})"


# ---- on-the-wire measurements from a caller's records ----


def voice_to_voice(caller: ConversingCaller, turns: set[int] | None = None) -> list[float]:
    """Per utterance: last voiced packet sent -> first voiced packet received after it."""
    received = [(p.arrival, level_dbfs(p.payload)) for p in caller.peer.packets if p.pt == 0]
    out: list[float] = []
    for index in range(len(caller.spoke_at)):
        if turns is not None and index not in turns:
            continue
        voiced = [t for t, level, i in caller.sent if i == index and level > VOICED_DBFS]
        if not voiced:
            continue
        last = voiced[-1]
        reply = next((t for t, level in received if t > last and level > VOICED_DBFS), None)
        if reply is not None:
            out.append((reply - last) * 1000)
    return out


def barge_in_reaction(caller: ConversingCaller, index: int = 1) -> float | None:
    """The caller's first voiced packet of utterance `index` (spoken over the reply) -> the reply's
    last voiced packet before 200 ms of quiet."""
    onset = next((t for t, level, i in caller.sent if i == index and level > VOICED_DBFS), None)
    if onset is None:
        return None
    last = None
    for p in caller.peer.packets:
        if p.pt != 0 or p.arrival < onset:
            continue
        if level_dbfs(p.payload) > VOICED_DBFS:
            if last is not None and p.arrival - last > 0.2:
                break
            last = p.arrival
    return None if last is None else (last - onset) * 1000


# ---- calls ----


def place_calls(
    server: TomsipServer,
    service: str,
    script: list[str],
    calls: int = 1,
    scenario: str = "converse",
    duration_ms: int | None = None,
    **caller_options: object,
) -> tuple[list[ConversingCaller], bool]:
    peers = [RtpPeer() for _ in range(calls)]
    callers = [ConversingCaller(p, [utterance(n) for n in script], **caller_options).start() for p in peers]  # type: ignore[arg-type]
    try:
        result = run_sipp(
            scenario,
            server.sip_port,
            service,
            [p.port for p in peers],
            calls=calls,
            duration_ms=duration_ms,
            timeout_s=120,
        )
    finally:
        for c in callers:
            c.stop()
        for p in peers:
            p.close()
    return callers, result.ok


def bench_turns(server: TomsipServer, calls: int) -> list[float]:
    by_turn: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(calls):
        callers, ok = place_calls(server, "booking", ["book_tuesday", "yes_please"])
        for turn in by_turn:
            by_turn[turn] += voice_to_voice(callers[0], {turn})
        if not ok:
            print("  a call failed")
    print(f"  after a long request (4 s, a complete sentence): {fmt(by_turn[0])}")
    print(f"  after a short answer ('Yes, please.'):            {fmt(by_turn[1])}")
    return by_turn[0] + by_turn[1]


def bench_barge_in(server: TomsipServer, calls: int) -> list[float]:
    reactions: list[float] = []
    for _ in range(calls):
        callers, _ = place_calls(server, "booking", ["book_tuesday", "book_tuesday", "yes_please"], barge_in_ms=800)
        reaction = barge_in_reaction(callers[0])
        if reaction is not None:
            reactions.append(reaction)
    return reactions


def bench_echo(server: TomsipServer, calls: int) -> tuple[int, int]:
    before = server.metric("tomsip_barge_ins_total")
    suppressed = server.metric("tomsip_echo_suppressed_frames_total")
    for _ in range(calls):
        place_calls(server, "echo", [], scenario="hold_call", duration_ms=10_000, echo_db=15, echo_delay_ms=60)
    return int(server.metric("tomsip_barge_ins_total") - before), int(
        server.metric("tomsip_echo_suppressed_frames_total") - suppressed
    )


def bench_concurrency(server: TomsipServer, steps: list[int]) -> None:
    base_p90 = None
    held = 0
    for n in steps:
        callers, ok = place_calls(server, "booking", ["book_tuesday", "yes_please"], calls=n)
        samples = [s for c in callers for s in voice_to_voice(c)]
        p90 = pct(samples, 90)
        base_p90 = base_p90 or p90
        print(f"  {n:3d} concurrent: voice-to-voice {fmt(samples)}{'' if ok else '  (some calls failed)'}")
        if p90 > 2 * base_p90 or not ok:
            break
        held = n
    print(f"  concurrent conversations before p90 doubles (base p90 {base_p90:.0f} ms): {held}")


# ---- STT word error rate ----


def words(text: str) -> list[str]:
    text = re.sub(r"(\d+)[:.](\d\d)", r"\1 \2", text.lower())
    tokens = re.findall(r"[a-z']+|\d+", text)
    out: list[str] = []
    for token in tokens:
        out += NUMBER_WORDS.get(token, token).split()
    return out


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def phone_leg(pcm8k: bytes) -> bytes:
    """What tomsip hears of it: G.711 mu-law there and back, then the live 8 -> 16 kHz resampler."""
    from tomsip.audio.g711 import pcm_to_ulaw, ulaw_to_pcm
    from tomsip.audio.resample import StreamResampler

    return StreamResampler(8000).convert(ulaw_to_pcm(pcm_to_ulaw(pcm8k)) + bytes(3200))


def espeak_8k(text: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        wav, raw = Path(tmp) / "s.wav", Path(tmp) / "s.raw"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
        subprocess.run(
            ["sox", str(wav), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(raw)], check=True
        )
        return raw.read_bytes()


def bench_wer() -> None:
    from sipp_scenarios.make_pcaps import piper_8k
    from tomsip.speech.local.whisper_stt import WhisperSpeechToText, load_whisper

    model = load_whisper(2)
    stt = WhisperSpeechToText(model)
    voices = {"piper joe": piper_8k, "espeak-ng en-us": espeak_8k}
    for voice, speak in voices.items():
        totals = {"tomsip window": [0, 0, 0.0], "30 s window": [0, 0, 0.0]}
        for sentence in SENTENCES:
            audio = phone_leg(speak(sentence))
            ref = words(sentence)
            started = time.perf_counter()
            ours = stt.transcribe_sync(audio).text
            t_ours = time.perf_counter() - started
            samples = np.frombuffer(audio, "<i2").astype(np.float32) / 32768
            started = time.perf_counter()
            segments, _ = model.transcribe(samples, language="en", beam_size=1, condition_on_previous_text=False)  # type: ignore[attr-defined]
            theirs = " ".join(s.text for s in segments)
            t_theirs = time.perf_counter() - started
            for name, hyp, spent in (("tomsip window", ours, t_ours), ("30 s window", theirs, t_theirs)):
                totals[name][0] += edit_distance(ref, words(hyp))
                totals[name][1] += len(ref)
                totals[name][2] += spent
        for name, (errors, count, spent) in totals.items():
            print(
                f"  {voice:16s} {name:14s}: WER {100 * errors / count:4.1f} % ({errors}/{count} words), "
                f"{1000 * spent / len(SENTENCES):.0f} ms per sentence"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=6, help="sequential booking calls (two turns each)")
    parser.add_argument("--barge-calls", type=int, default=5, help="calls that talk over a reply")
    parser.add_argument("--echo-calls", type=int, default=3, help="silent callers on an echoing line")
    parser.add_argument("--steps", default="1,2,3,4,6,8", help="concurrent conversations, rising")
    parser.add_argument("--skip-wer", action="store_true")
    parser.add_argument("--skip-concurrency", action="store_true")
    args = parser.parse_args()

    if not args.skip_wer:
        print("STT word error rate over the phone leg (12 sentences per voice):")
        bench_wer()
    with tempfile.TemporaryDirectory() as tmp:
        server = TomsipServer(env={"TOMSIP_PIPELINE": "mock"}, log_path=Path(tmp) / "server.log").start(timeout_s=60)
        try:
            print(f"voice-to-voice on the wire, {args.calls} sequential calls:")
            print(f"  {fmt(bench_turns(server, args.calls))}")
            print(f"barge-in reaction on the wire, {args.barge_calls} calls talking over a reply 0.8 s in:")
            print(f"  {fmt(bench_barge_in(server, args.barge_calls))}")
            false_barge_ins, suppressed = bench_echo(server, args.echo_calls)
            print(f"echo at 15 dB down, 60 ms late, {args.echo_calls} silent 10 s calls:")
            print(f"  false barge-ins: {false_barge_ins}; voiced echo frames suppressed: {suppressed}")
            latency = server.metrics()
            for stage in ("stt", "tts_first", "speech_end_to_audio"):
                count = latency.get(f'tomsip_turn_latency_seconds_count{{stage="{stage}"}}', 0)
                total = latency.get(f'tomsip_turn_latency_seconds_sum{{stage="{stage}"}}', 0)
                if count:
                    print(f"  server-side mean {stage}: {1000 * total / count:.0f} ms over {int(count)} turns")
            if not args.skip_concurrency:
                print("concurrent conversations (two turns each):")
                bench_concurrency(server, [int(s) for s in args.steps.split(",")])
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
