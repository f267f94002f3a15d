"""When has the caller finished? A policy better than one fixed silence, pure and clock-free.

A fixed rule (end after 600 ms of silence, then transcribe) makes every turn wait for the silence and
then for speech-to-text. Instead, when the caller has been quiet for a short moment
(`speculate_after_ms`), the utterance so far is transcribed speculatively, and what was said decides
how much silence ends the turn:

- a complete sentence ("I'd like Tuesday at ten.") ends it at once, or after `complete_silence_ms`;
  whisper puts a full stop after any fragment followed by a pause ("Hello." before "I'd like..."),
  so a sentence of fewer than three words is not complete;
- a short answer ("Yes.", "No thanks.", "Okay.") gets `short_answer_silence_ms`: longer than the
  pause after the comma of "Yes, please" (340 ms in the test voice), shorter than the default;
- a caller reading out digits ("my number is 4 4 7 ...") gets `digits_silence_ms`, since people
  pause between digit groups;
- anything else (trailing "and", "um", no final punctuation) keeps the dialplan's `silence_ms`.

The transcript is then reused by the turn, so speech-to-text costs nothing after the end of the turn.
If the caller speaks again before the transcript arrives, it is stale and dropped.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

_TRAILING_CONTINUATION = re.compile(
    r"\b(and|or|but|so|because|um+|uh+|er+|erm|the|a|an|to|at|for|on|in|of|with|my|is|was|like|then|if)"
    r"[\s,.!?…-]*$",
    re.IGNORECASE,
)
_DIGIT_WORD = r"(?:\d+|zero|oh|one|two|three|four|five|six|seven|eight|nine|double|triple)"
_DIGITS_AT_END = re.compile(rf"(?:{_DIGIT_WORD}[\s,.-]*){{3,}}$", re.IGNORECASE)


MIN_COMPLETE_WORDS = 3
_SHORT_ANSWER = re.compile(
    r"^\W*(yes|yeah|yep|yup|no|nope|sure|okay|ok|correct|right|exactly|thanks|thank you|bye|goodbye)\b", re.I
)


class Completeness(enum.Enum):
    EMPTY = "empty"
    COMPLETE = "complete"
    SHORT_ANSWER = "short_answer"
    INCOMPLETE = "incomplete"
    DIGITS = "digits"


def completeness(text: str) -> Completeness:
    stripped = text.strip()
    if not stripped:
        return Completeness.EMPTY
    if (
        _DIGITS_AT_END.search(stripped)
        and sum(c.isdigit() for c in stripped[-24:])
        + len(re.findall(r"\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b", stripped[-40:], re.I))
        >= 3
    ):
        return Completeness.DIGITS
    if stripped.endswith(("...", "…", "-", ",")) or _TRAILING_CONTINUATION.search(stripped):
        return Completeness.INCOMPLETE
    if stripped[-1] in ".!?" and len(stripped.split()) >= MIN_COMPLETE_WORDS:
        return Completeness.COMPLETE
    if stripped[-1] in ".!?" and _SHORT_ANSWER.search(stripped):
        return Completeness.SHORT_ANSWER
    return Completeness.INCOMPLETE


@dataclass(frozen=True)
class TurnTakingPolicy:
    silence_ms: int = 600  # unknown or incomplete
    speculate_after_ms: int = 160  # 0: no speculative STT, the fixed rule
    complete_silence_ms: int = 200
    digits_silence_ms: int = 1500
    short_answer_silence_ms: int = 450

    @property
    def speculative(self) -> bool:
        return self.speculate_after_ms > 0

    @property
    def pending_silence_ms(self) -> int:
        """The silence that ends the utterance while its transcript is still on its way: long enough
        for the slowest verdict, so that an answer can still extend it."""
        return max(self.silence_ms, self.digits_silence_ms)

    def silence_for(self, text: str) -> int:
        verdict = completeness(text)
        if verdict is Completeness.COMPLETE:
            return self.complete_silence_ms
        if verdict is Completeness.DIGITS:
            return self.digits_silence_ms
        if verdict is Completeness.SHORT_ANSWER:
            return self.short_answer_silence_ms
        return self.silence_ms
