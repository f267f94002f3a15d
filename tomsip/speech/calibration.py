"""How many conversations this machine's speech workers can carry: measured on the loaded models.

SIP and media are cheap (bench/capacity: 250 calls in about one core); speech inference is what runs
out. So the conversation limit comes from timing the models that will serve the calls, on this
machine, at start-up (or with `tomsip calibrate`):

    per conversation, in cores = (STT passes per turn x one STT pass
                                  + synthesized sentences per turn x one TTS sentence) / seconds per turn
                                 + the call's own media and per-frame work
    conversations = cores x budget / per conversation

The per-turn figures describe a booking conversation as bench/conversations drives it (a turn every
8 s or so; one speculative pass, sometimes a second; replies mostly from the phrase cache). The
budget (TOMSIP_SPEECH_CPU_BUDGET) is the share of the cores the speech may keep busy: queueing
theory and bench/conversations agree that beyond about two thirds, waits (what callers hear) grow
faster than throughput.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

TURN_EVERY_S = 8.0
STT_PASSES_PER_TURN = 1.5
TTS_SENTENCES_PER_TURN = 0.5
MEDIA_CORES_PER_CALL = 0.005  # bench/capacity: 250 calls in about 1.3 cores, RTP and codecs included

SAMPLE_UTTERANCE = "Hello, I would like to book an appointment for Tuesday at ten in the morning."
SAMPLE_REPLY = "On Tuesday at 10 in the morning."


@dataclass(frozen=True)
class Calibration:
    stt_s: float  # one utterance, one worker
    tts_s: float  # one reply sentence
    cores: int
    budget: float
    conversations: int
    workers: int | None = None  # what the speech workers of remote stages say they carry together

    def describe(self) -> str:
        remote = f"; the speech workers carry {self.workers}" if self.workers is not None else ""
        if not self.stt_s and not self.tts_s and self.workers is not None:
            return f"{self.conversations} conversations (what the speech workers carry; no local inference)"
        return (
            f"{self.conversations} conversations (STT {self.stt_s * 1000:.0f} ms an utterance, TTS "
            f"{self.tts_s * 1000:.0f} ms a sentence, {self.cores} cores, budget {self.budget:.0%}{remote})"
        )


def machine_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def conversations_for(stt_s: float, tts_s: float, cores: int, budget: float) -> int:
    per_turn = STT_PASSES_PER_TURN * stt_s + TTS_SENTENCES_PER_TURN * tts_s
    per_conversation = per_turn / TURN_EVERY_S + MEDIA_CORES_PER_CALL
    return max(1, int(cores * budget / per_conversation))


def _median_time(fn: Callable[[], object], runs: int) -> float:
    fn()  # the first run pays for lazy set-up (allocations, caches), which calls will not
    spent = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        spent.append(time.perf_counter() - started)
    return statistics.median(spent)


def calibrate(
    transcribe: Callable[[bytes], object],
    speak: Callable[[str], bytes],
    budget: float,
    cores: int | None = None,
    runs: int = 3,
    timed: frozenset[str] = frozenset({"stt", "tts"}),
) -> Calibration:
    """Time the loaded models on a spoken request and a reply sentence (blocking; about a second).
    A stage left out of `timed` runs in a speech worker and costs this machine nothing."""
    utterance = speak(SAMPLE_UTTERANCE)
    stt_s = _median_time(lambda: transcribe(utterance), runs) if "stt" in timed else 0.0
    tts_s = _median_time(lambda: speak(SAMPLE_REPLY), runs) if "tts" in timed else 0.0
    cores = cores or machine_cores()
    return Calibration(stt_s, tts_s, cores, budget, conversations_for(stt_s, tts_s, cores, budget))
