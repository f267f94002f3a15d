"""Labelled clips of who answers a call, for the answering-machine detector's tests and bench/amd.

Each clip is what the caller's side hears after the answer: people who say something short and wait,
people who go on talking after a pause, voicemail greetings with and without a 1 kHz beep, and
silence. The voices are espeak-ng's English voices and piper's; every clip goes through an 8 kHz
G.711 u-law leg and gets a faint noise floor, as a phone line would give it.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tomsip.audio.frames import FRAME_BYTES, SAMPLE_RATE
from tomsip.audio.g711 import pcm_to_ulaw, ulaw_to_pcm
from tomsip.audio.resample import resample_once
from tomsip.audio.wav import read_wav

ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-us+f3")
CLIP_S = 7.0

SHORT = ("Hello?", "Yes, hello?", "Hi, this is Anna.", "Hello, who is this?", "Hello.")
TALKATIVE = ("Hello?", "Hello? Who is this?", "I can't hear you, hello?")  # each after a pause
GREETING = (
    "Hi, you have reached Anna and Tom. We can't come to the phone right now. "
    "Please leave your name and number after the tone, and we will call you back."
)


@dataclass(frozen=True)
class Clip:
    name: str
    label: str  # human, machine, unknown
    pcm: bytes  # internal format

    def frames(self) -> list[bytes]:
        usable = len(self.pcm) - len(self.pcm) % FRAME_BYTES
        return [self.pcm[i : i + FRAME_BYTES] for i in range(0, usable, FRAME_BYTES)]


def espeak(text: str, voice: str) -> np.ndarray:
    wav = read_wav(subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout)
    return np.frombuffer(resample_once(wav.pcm, wav.rate, SAMPLE_RATE), dtype="<i2")


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype="<i2")


def beep(hz: float = 1000.0, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2")


def phone_line(parts: list[np.ndarray], seed: int) -> bytes:
    """Join, pad to CLIP_S, add a -60 dBFS noise floor, and pass through 8 kHz u-law."""
    audio = np.concatenate(parts).astype(np.float64)
    audio = np.concatenate([audio, np.zeros(max(0, int(CLIP_S * SAMPLE_RATE) - len(audio)))])
    audio += np.random.default_rng(seed).standard_normal(len(audio)) * 32768 * 10 ** (-60 / 20)
    pcm = np.clip(audio, -32768, 32767).astype("<i2").tobytes()
    narrow = resample_once(pcm, SAMPLE_RATE, 8000)
    return resample_once(ulaw_to_pcm(pcm_to_ulaw(narrow)), 8000, SAMPLE_RATE)


Speaker = Callable[[str], np.ndarray]


def labelled_clips(speak: dict[str, Speaker] | None = None) -> list[Clip]:
    """At least 20 clips: for every voice a short answer, a talkative person, a voicemail greeting with
    a beep and one without; and silent lines. `speak` adds voices: name -> text to int16 samples."""
    voices: dict[str, Speaker] = {v: functools.partial(espeak, voice=v) for v in ESPEAK_VOICES}
    voices.update(speak or {})
    clips: list[Clip] = []
    for n, (name, say) in enumerate(voices.items()):
        lead = silence(0.3 + 0.1 * (n % 5))
        short = SHORT[n % len(SHORT)]
        clips.append(Clip(f"{name}: short {short!r}", "human", phone_line([lead, say(short)], n)))
        talk = [lead]
        for phrase in TALKATIVE:
            talk += [say(phrase), silence(1.0)]
        clips.append(Clip(f"{name}: talks on", "human", phone_line(talk, 100 + n)))
        greeting = say(GREETING)
        with_beep = [lead, greeting, silence(0.3), beep(), silence(1.0)]
        clips.append(Clip(f"{name}: voicemail + beep", "machine", phone_line(with_beep, 200 + n)))
        clips.append(
            Clip(f"{name}: voicemail, no beep", "machine", phone_line([lead, greeting, silence(2.0)], 300 + n))
        )
    for n in range(2):
        clips.append(Clip(f"silent line {n + 1}", "unknown", phone_line([silence(CLIP_S)], 400 + n)))
    return clips
