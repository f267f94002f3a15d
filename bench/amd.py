"""bench/amd: the answering-machine detector's accuracy and decision time on a labelled set.

The clips are tests/support/answering.py's (people who say something short, people who go on talking
after a pause, voicemail greetings with and without a beep, silent lines) in five espeak-ng voices
and piper's, through an 8 kHz G.711 u-law leg with a -60 dBFS noise floor. Each is fed to the
detector 20 ms at a time with the server's own VAD, as a call's audio would be; decision time is
counted from the answer.

    bench/amd
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.answering import Clip, Speaker, labelled_clips  # noqa: E402
from tomsip.audio.answer_detector import AnswerDetector, Verdict  # noqa: E402
from tomsip.audio.vad import VoiceDetector  # noqa: E402

KINDS = ("short", "talks on", "voicemail + beep", "voicemail, no beep", "silent line")


def piper_voice() -> dict[str, Speaker]:
    from tomsip.speech.local.pipeline import speak_offline

    return {"piper joe": lambda text: np.frombuffer(speak_offline(text), dtype="<i2")}


def verdict_of(clip: Clip) -> Verdict | None:
    vad, detector = VoiceDetector(2), AnswerDetector()
    for frame in clip.frames():
        verdict = detector.push(vad.is_speech(frame), frame)
        if verdict is not None:
            return verdict
    return None


def main() -> int:
    clips = labelled_clips(piper_voice())
    rows: dict[str, list[tuple[Clip, Verdict | None]]] = defaultdict(list)
    confusion: Counter[tuple[str, str]] = Counter()
    for clip in clips:
        verdict = verdict_of(clip)
        kind = next(k for k in KINDS if k in clip.name)
        rows[kind].append((clip, verdict))
        confusion[(clip.label, verdict.answer.value if verdict else "none")] += 1
    print(f"{len(clips)} clips, {len({c.name.split(':')[0] for c in clips}) - 2} voices, through G.711 u-law")
    print(f"{'clip kind':22s} {'clips':>5s} {'right':>5s}   decision time from the answer (ms)")
    right_all = 0
    for kind in KINDS:
        results = rows[kind]
        right = sum(1 for c, v in results if v is not None and v.answer.value == c.label)
        right_all += right
        times = [v.at_ms for _, v in results if v is not None]
        print(f"{kind:22s} {len(results):5d} {right:5d}   p50 {np.percentile(times, 50):5.0f}  max {max(times):5d}")
        for clip, verdict in results:
            if verdict is None or verdict.answer.value != clip.label:
                print(f"    wrong: {clip.name}: {verdict}")
    print(f"accuracy {right_all}/{len(clips)} = {right_all / len(clips):.0%}")
    print("confusion (label -> verdict): " + ", ".join(f"{a}->{b}: {n}" for (a, b), n in sorted(confusion.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
