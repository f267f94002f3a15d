"""What a caller's sentence asks for, found by rules: days, times, yes/no, repeat, a human, goodbye.

Pure text functions, no state: the booking dialog (tomsip/speech/booking.py) decides what to do with
them. Whisper writes numbers as digits ("10 in the morning", "3.30 p.m.") and words as words, so both
spellings are understood.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tomsip.conversation import rating

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_MINUTE_WORDS = {"fifteen": 15, "thirty": 30, "forty-five": 45, "forty five": 45}
_HOUR = r"(\d{1,2}|" + "|".join(_NUMBER_WORDS) + r")"
_TIME = re.compile(
    r"\b(?:(half past|quarter past|quarter to)\s+)?" + _HOUR + r"(?:[:.](\d{2})|\s+(fifteen|thirty|forty[- ]five))?"
    r"\s*(a\.?\s?m\.?|p\.?\s?m\.?|o'?clock|in the morning|in the afternoon|in the evening|at night)?",
    re.IGNORECASE,
)
_NOON = re.compile(r"\b(noon|midday|lunch ?time)\b", re.IGNORECASE)

YES = re.compile(r"\b(yes|yeah|yep|yup|sure|correct|right|please do|go ahead|book it|perfect|okay|ok|fine)\b", re.I)
NO = re.compile(r"\b(no|nope|not|wrong|change|different|another)\b", re.IGNORECASE)
REPEAT = re.compile(r"\b(repeat|say (that|it) again|pardon|come again|what did you say|didn'?t (catch|hear))\b", re.I)
HUMAN = re.compile(
    r"\b(human|person|agent|operator|representative|receptionist|someone|somebody|colleague|staff)\b", re.I
)
GOODBYE = re.compile(r"\b(bye|goodbye|that'?s all|hang up|never ?mind)\b", re.IGNORECASE)


@dataclass(frozen=True)
class TimeOfDay:
    hour: int  # 0..23
    minute: int = 0

    def spoken(self) -> str:
        """How the assistant says it: '10 in the morning', '2.30 in the afternoon'."""
        hour12 = self.hour % 12 or 12
        clock = f"{hour12}" if self.minute == 0 else f"{hour12}.{self.minute:02d}"
        if self.hour == 12 and self.minute == 0:
            return "noon"
        part = "in the morning" if self.hour < 12 else "in the afternoon" if self.hour < 18 else "in the evening"
        return f"{clock} {part}"


def find_day(text: str) -> str | None:
    lowered = text.lower()
    for day in DAYS:
        if re.search(rf"\b{day}s?\b", lowered):
            return day.capitalize()
    for word in ("today", "tomorrow"):
        if re.search(rf"\b{word}\b", lowered):
            return word
    return None


def find_time(text: str) -> TimeOfDay | None:
    if _NOON.search(text):
        return TimeOfDay(12)
    for match in _TIME.finditer(text):
        relative, hour_text, minutes, minute_words, suffix = match.groups()
        hour = int(hour_text) if hour_text.isdigit() else _NUMBER_WORDS[hour_text.lower()]
        if not suffix and not minutes and not relative and not minute_words:
            # A bare number is a time only after "at" ("at ten"), not "two people" or a date.
            before = text[: match.start()].rstrip().lower()
            if not before.endswith(("at", "around", "about", "by")):
                continue
        minute = int(minutes) if minutes else _MINUTE_WORDS.get((minute_words or "").lower().replace("-", " "), 0)
        if relative:
            rel = relative.lower()
            minute = 30 if rel == "half past" else 15 if rel == "quarter past" else 45
            if rel == "quarter to":
                hour -= 1
        if hour > 23 or minute > 59:
            continue
        suffix_l = (suffix or "").lower().replace(" ", "").replace(".", "")
        if suffix_l.startswith("pm") or suffix_l in ("intheafternoon", "intheevening", "atnight"):
            if hour < 12:
                hour += 12
        elif suffix_l.startswith("am") or suffix_l == "inthemorning":
            if hour == 12:
                hour = 0
        elif 1 <= hour <= 7:
            hour += 12  # "at three" during business hours means the afternoon
        return TimeOfDay(hour, minute)
    return None


_RATING_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
# Whisper hears a lone rating word as its homophone often enough: only when it is all that was said.
_RATING_HOMOPHONES = {"won": 1, "to": 2, "too": 2, "tree": 3, "for": 4, "fore": 4}


def find_rating(text: str) -> int | None:
    """A spoken 1-5 rating ("four", "I'd say 5", "five stars"); None when there is none, or more than
    one different number (ambiguous)."""
    words = re.findall(r"[a-z]+|\d+", text.lower())
    if len(words) == 1 and words[0] in _RATING_HOMOPHONES:
        return _RATING_HOMOPHONES[words[0]]
    found = {_RATING_WORDS[w] for w in words if w in _RATING_WORDS}
    found |= {int(w) for w in words if w in rating.DIGITS}
    numbers = {w for w in words if w.isdigit() or w in _NUMBER_WORDS}
    if len(found) != 1 or (len(numbers) > 1 and any(w.isdigit() and w not in rating.DIGITS for w in numbers)):
        return None
    return found.pop()


_REFUSE = re.compile(r"\b(no|nope|don'?t|do not|rather not|not okay|not ok)\b", re.IGNORECASE)
_AGREE = re.compile(r"\b(yes|yeah|yep|yup|sure|okay|ok|fine|go ahead|that'?s fine|of course|alright)\b", re.I)


def find_consent(text: str) -> bool | None:
    """The caller's answer to "may I record this call?": False for any refusal (it wins over a yes in
    the same breath: "no, don't, yes I'm sure" is no), True for a plain agreement, None otherwise."""
    if _REFUSE.search(text):
        return False
    return True if _AGREE.search(text) else None
