"""Makes the caller media for the SIPp scenarios and the test callers: speech as 20 ms G.711 RTP in
pcap files. espeak-ng voices the mock-brain scenarios; the piper voice (the offline TTS package)
voices the booking dialog, where the words must be recognised.

Run from anywhere: `python sipp_scenarios/make_pcaps.py`. Needs espeak-ng and sox (the test command
installs both) and tomsip's own speech packages. The outputs are committed, so running the scenarios
needs none of them; this script is how they were made and how to make more.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.support.pcap import rtp_packet, udp_frame, write_pcap  # noqa: E402
from tomsip.audio.g711 import pcm_to_alaw, pcm_to_ulaw  # noqa: E402

SENTENCES = {
    "speech_short": "Hello, I would like to book an appointment.",
    "speech_long": "Hello there, I would like to book an appointment for next Tuesday at ten in the morning please.",
}


def speak_8k(text: str, voice: str = "en-us") -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        raw = Path(tmp) / "speech.raw"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
        subprocess.run(
            ["sox", str(wav), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw", str(raw)],
            check=True,
        )
        return raw.read_bytes()


# What a caller says to the booking assistant (tests/test_local_speech_calls.py, bench/latency).
PIPER_SENTENCES = {
    "book_tuesday": "Hello, I would like to book an appointment for Tuesday at ten in the morning.",
    "yes_please": "Yes, please.",
    "ask_human": "Can I speak to a real person, please?",
}


def piper_8k(text: str) -> bytes:
    from tomsip.audio.resample import resample_once
    from tomsip.speech.local.pipeline import speak_offline

    return resample_once(speak_offline(text), 16000, 8000)


def cough_8k() -> bytes:
    """A 120 ms vowel: long enough for the VAD to hear an onset, far short of a barge-in."""
    pcm = speak_8k("ah")
    samples = len(pcm) // 2
    # Start where the sound starts, keep 120 ms of it.
    import numpy as np

    x = np.frombuffer(pcm, dtype="<i2")
    loud = np.nonzero(np.abs(x) > 1000)[0]
    start = int(loud[0]) if len(loud) else 0
    return x[start : min(samples, start + 960)].tobytes()


def g711_pcap(path: Path, pcm8k: bytes, law: str, trailing_silence_ms: int = 200, take: int = 0) -> float:
    """Writes 20 ms RTP packets; returns the audio length in seconds.

    SIPp replays a pcap's RTP headers as they are, so a second play of the same file repeats sequence
    numbers and timestamps and the far end's jitter buffer drops it as old. `take` shifts both, so a
    scenario that speaks twice plays take 0 and then take 1 (the "_again" files).
    """
    pcm8k += bytes(8 * trailing_silence_ms * 2)
    encode, pt = (pcm_to_ulaw, 0) if law == "pcmu" else (pcm_to_alaw, 8)
    packets = []
    step = 320  # 160 samples: 20 ms at 8 kHz
    for i, off in enumerate(range(0, len(pcm8k) - step + 1, step)):
        seq, ts = 1000 + 20000 * take + i, 160 * (i + 1_000_000 * take)
        rtp = rtp_packet(pt, seq, ts, 0x7015, encode(pcm8k[off : off + step]), marker=i == 0)
        packets.append((i * 0.02, udp_frame(16000, 6000, rtp)))
    write_pcap(str(path), packets)
    return len(packets) * 0.02


# Who answers an outbound call (tests/test_outbound_calls.py): people and a voicemail greeting.
VOICEMAIL_GREETING = (
    "Hi, you have reached Anna and Tom. We can't come to the phone right now. "
    "Please leave your name and number after the tone, and we will call you back."
)


def answers_8k() -> dict[str, bytes]:
    """What the called side says after the answer: a short "Hello?", a person who talks on after a
    pause, and a voicemail greeting that ends with a 1 kHz beep of 500 ms."""
    import numpy as np

    def quiet(seconds: float) -> bytes:
        return bytes(2 * int(8000 * seconds))

    t = np.arange(4000) / 8000
    beep = (np.sin(2 * np.pi * 1000 * t) * 8000).astype("<i2").tobytes()
    return {
        "amd_hello": quiet(0.4) + speak_8k("Hello?") + quiet(0.5),
        "amd_talkative": quiet(0.3) + speak_8k("Hello?") + quiet(1.0) + speak_8k("Hello? Who is this?"),
        "amd_voicemail": quiet(0.3) + speak_8k(VOICEMAIL_GREETING) + quiet(0.4) + beep,
    }


def main() -> None:
    import numpy as np

    out = HERE / "pcap"
    out.mkdir(exist_ok=True)
    # A warm transfer's agent (tests/test_warm_transfer.py): a second of quiet, then 4 s of 1500 Hz, so
    # that the caller's side can tell the agent's voice from anything tomsip says.
    t = np.arange(32000) / 8000
    agent = bytes(16000) + (np.sin(2 * np.pi * 1500 * t) * 8000).astype("<i2").tobytes()
    seconds = g711_pcap(out / "agent_tone_pcmu.pcap", agent, "pcmu")
    print(f"agent_tone_pcmu.pcap: {seconds:.2f} s")
    for name, pcm in answers_8k().items():
        seconds = g711_pcap(out / f"{name}_pcmu.pcap", pcm, "pcmu")
        print(f"{name}_pcmu.pcap: {seconds:.2f} s")
    seconds = g711_pcap(out / "cough_pcmu_again.pcap", cough_8k(), "pcmu", trailing_silence_ms=400, take=1)
    print(f"cough_pcmu_again.pcap: {seconds:.2f} s")
    for name, text in PIPER_SENTENCES.items():
        seconds = g711_pcap(out / f"{name}_pcmu.pcap", piper_8k(text), "pcmu")
        print(f"{name}_pcmu.pcap: {seconds:.2f} s")
    for name, text in SENTENCES.items():
        pcm = speak_8k(text)
        for law in ("pcmu", "pcma"):
            for take, suffix in ((0, ""), (1, "_again")):
                seconds = g711_pcap(out / f"{name}_{law}{suffix}.pcap", pcm, law, take=take)
                print(f"{name}_{law}{suffix}.pcap: {seconds:.2f} s")


if __name__ == "__main__":
    main()
