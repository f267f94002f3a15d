"""The appointment-booking assistant: a rule/intent responder configured by the dialplan.

It asks for a day and a time, confirms them, and says goodbye; it repeats itself on request, hands
the caller to a human (a REFER to the dialplan's `transfer_uri`) when asked or when it keeps failing
to understand, and re-prompts on silence and on empty transcripts. Replies start with a short
sentence ("Tuesday.", "Sorry.") so that TTS has the first audio out quickly.

Dialplan [options] (all optional):
  transfer_uri = "sip:frontdesk@example.com"   # where "a human, please" goes; unset: no transfer
  open_days = ["Monday", ..., "Friday"]
  open_hours = [9, 17]                          # first and last bookable hour (24 h)
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from tomsip.conversation.turns import TurnKind
from tomsip.speech import intents
from tomsip.speech.stages import (
    MESSAGE_TAKEN,
    RATING_PROMPT,
    TRANSFER_FAILED,
    ReplyText,
    Transcript,
    TurnRequest,
    briefing,
    consent_prompt,
    rating_prompt,
    voicemail_message,
)

MAX_MISUNDERSTOOD = 3
DEFAULT_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")

# What the assistant says word for word (the phrase cache synthesizes each once per process).
GOODBYE = "Thank you for calling. Goodbye!"
STILL_THERE = "Are you still there? "
WELCOME_BACK = "Welcome back. "
NOT_HEARD = "Sorry, I didn't hear that. "
NOT_CAUGHT = "Sorry, I didn't catch that."
JUST_DAY_AND_TIME = "Please just tell me the day and time you would like."
ASK_AGAIN = "Which day and time would suit you better?"
PUT_THROUGH = "I am putting you through to a colleague now."
NOBODY_ELSE = "Sorry, nobody else is available right now."
TROUBLE = "Sorry, I am having trouble understanding."
ASK_CONFIRM = "Shall I book that for you?"
ASK_TIME = "What time would suit you?"
ASK_DAY = "Which day would you like?"
ASK_BOTH = "Which day and time would you like to come in?"
FIXED_PHRASES = (
    GOODBYE, STILL_THERE, WELCOME_BACK, NOT_HEARD, NOT_CAUGHT, JUST_DAY_AND_TIME, ASK_AGAIN, PUT_THROUGH,
    NOBODY_ELSE, TROUBLE, ASK_CONFIRM, ASK_TIME, ASK_DAY, ASK_BOTH,
    "Sure.", "Okay.", "Great.", "No problem.", "Of course.",
)  # fmt: skip


class Step(enum.Enum):
    ASK = "ask"  # collecting day and time
    CONFIRM = "confirm"  # both known, waiting for yes/no
    DONE = "done"


@dataclass(frozen=True)
class BookingOptions:
    transfer_uri: str = ""
    open_days: tuple[str, ...] = DEFAULT_DAYS
    open_hours: tuple[int, int] = (9, 17)
    greeting: str = "Hello, this is the booking line. Which day and time would you like to come in?"
    rating_prompt: str = RATING_PROMPT
    voicemail_message: str = ""
    consent_prompt: str = ""
    agent_accept_digit: str = ""

    @classmethod
    def from_options(cls, options: Mapping[str, object]) -> BookingOptions:
        def text(key: str, default: str) -> str:
            value = options.get(key, default)
            return str(value) if value is not None else default

        days = options.get("open_days", DEFAULT_DAYS)
        hours = options.get("open_hours", (9, 17))
        if not isinstance(days, (list, tuple)) or not all(isinstance(d, str) for d in days):
            raise ValueError("open_days must be a list of day names")
        if not (isinstance(hours, (list, tuple)) and len(hours) == 2 and all(isinstance(h, int) for h in hours)):
            raise ValueError("open_hours must be [first, last] hours")
        return cls(
            transfer_uri=text("transfer_uri", ""),
            open_days=tuple(d.capitalize() for d in days),
            open_hours=(int(hours[0]), int(hours[1])),
            greeting=text("greeting", cls.greeting),
            rating_prompt=rating_prompt(options),
            voicemail_message=voicemail_message(options),
            consent_prompt=consent_prompt(options),
            agent_accept_digit=text("agent_accept_digit", ""),
        )


class BookingConversation:
    """One caller's booking dialog: slots, the last prompt (for "repeat that") and failure count."""

    def __init__(self, options: BookingOptions) -> None:
        self.options = options
        self.step = Step.ASK
        self.day: str | None = None
        self.time: intents.TimeOfDay | None = None
        self.misunderstood = 0
        self.last_prompt = options.greeting
        self.booked = False

    @property
    def task_completed(self) -> bool:
        """For the learning loop's reward: the booking was made."""
        return self.booked

    async def respond(self, request: TurnRequest, transcript: Transcript | None) -> AsyncIterator[ReplyText]:
        for reply in self.reply(request, transcript):
            yield reply

    # ---- the dialog, synchronous and pure ----

    def reply(self, request: TurnRequest, transcript: Transcript | None) -> list[ReplyText]:
        kind = request.kind
        if kind is TurnKind.GREETING:
            return self._say(self.options.greeting)
        if kind is TurnKind.GOODBYE:
            return [ReplyText(GOODBYE)]
        if kind is TurnKind.RATING:
            return [ReplyText(self.options.rating_prompt)]
        if kind is TurnKind.VOICEMAIL:
            return [ReplyText(self.options.voicemail_message)]
        if kind is TurnKind.CONSENT:
            return [ReplyText(self.options.consent_prompt)]
        if kind is TurnKind.BRIEFING:
            return [ReplyText(briefing(self.summary(), {"agent_accept_digit": self.options.agent_accept_digit}))]
        if kind is TurnKind.TRANSFER_FAILED:
            return [ReplyText(TRANSFER_FAILED)]
        if kind is TurnKind.MESSAGE_TAKEN:
            return [ReplyText(MESSAGE_TAKEN)]
        if kind is TurnKind.NO_INPUT:
            return self._say(STILL_THERE + self._question())
        if kind is TurnKind.RESUMED:
            return self._say(WELCOME_BACK + self._question())
        if kind is TurnKind.DIGIT:
            return self._on_digit(request.digit)
        text = transcript.text.strip() if transcript else ""
        if not text:
            return self._say(NOT_HEARD + self._question())
        return self._on_text(text)

    def summary(self) -> str:
        """For the agent of a warm transfer: who is waiting, and what they want so far."""
        if self.booked and self.day and self.time:
            return f"A caller has booked {self.day} at {self.time.spoken()} and would like a word with you."
        if self.day and self.time:
            return f"A caller would like an appointment on {self.day} at {self.time.spoken()}."
        if self.day:
            return f"A caller would like an appointment on {self.day}; no time is agreed yet."
        return "A caller would like to book an appointment and asked for a person."

    def _on_digit(self, digit: str) -> list[ReplyText]:
        if digit == "0":
            return self._to_human()
        if self.step is Step.CONFIRM and digit in "12":
            return self._on_text("yes" if digit == "1" else "no")
        return self._say(JUST_DAY_AND_TIME)

    def _on_text(self, text: str) -> list[ReplyText]:
        if intents.HUMAN.search(text):
            return self._to_human()
        if intents.REPEAT.search(text):
            return [ReplyText("Sure."), ReplyText(self.last_prompt)]
        if intents.GOODBYE.search(text) and not intents.find_day(text) and not intents.find_time(text):
            return [ReplyText("Okay.", end_call=True)]
        if self.step is Step.CONFIRM:
            day, time = intents.find_day(text), intents.find_time(text)
            if day or time:
                self.day, self.time = day or self.day, time or self.time
                return self._after_slots()
            if intents.NO.search(text):
                self.step, self.day, self.time = Step.ASK, None, None
                return [ReplyText("No problem."), *self._say(ASK_AGAIN)]
            if intents.YES.search(text):
                return self._book()
            return self._not_understood()
        day, time = intents.find_day(text), intents.find_time(text)
        if not day and not time:
            return self._not_understood()
        self.day, self.time = day or self.day, time or self.time
        return self._after_slots()

    def _after_slots(self) -> list[ReplyText]:
        self.misunderstood = 0
        opts = self.options
        if self.day and self.day not in opts.open_days and self.day not in ("today", "tomorrow"):
            closed = self.day
            self.day, self.step = None, Step.ASK
            days = f"{opts.open_days[0]} to {opts.open_days[-1]}" if len(opts.open_days) > 1 else opts.open_days[0]
            return [ReplyText(f"Sorry, we are closed on {closed}s."), *self._say(f"We are open {days}. Which day?")]
        if self.time and not opts.open_hours[0] <= self.time.hour <= opts.open_hours[1]:
            asked = self.time.spoken()
            self.time, self.step = None, Step.ASK
            first, last = (intents.TimeOfDay(h).spoken() for h in opts.open_hours)
            return [ReplyText(f"Sorry, {asked} is outside our hours."), *self._say(f"We book from {first} to {last}.")]
        if self.day and self.time:
            self.step = Step.CONFIRM
            when = f"{self._day_phrase()} at {self.time.spoken()}"
            return [ReplyText(_sentence(when)), *self._say(ASK_CONFIRM)]
        if self.day:
            return [ReplyText(_sentence(self._day_phrase())), *self._say(ASK_TIME)]
        return [ReplyText("Okay."), *self._say(f"At {self.time.spoken() if self.time else ''}, on which day?")]

    def _book(self) -> list[ReplyText]:
        assert self.day and self.time
        self.step = Step.DONE
        self.booked = True
        when = f"{self._day_phrase()} at {self.time.spoken()}"
        return [ReplyText("Great."), ReplyText(f"You are booked {when}.", end_call=True)]

    def _to_human(self) -> list[ReplyText]:
        if self.options.transfer_uri:
            return [
                ReplyText("Of course."),
                ReplyText(PUT_THROUGH, transfer_to=self.options.transfer_uri),
            ]
        return [ReplyText(NOBODY_ELSE), *self._say(self._question())]

    def _not_understood(self) -> list[ReplyText]:
        self.misunderstood += 1
        if self.misunderstood >= MAX_MISUNDERSTOOD and self.options.transfer_uri:
            return [ReplyText(TROUBLE), *self._to_human()[1:]]
        return [ReplyText(NOT_CAUGHT), *self._say(self._question())]

    def _question(self) -> str:
        if self.step is Step.CONFIRM:
            return ASK_CONFIRM
        if self.day and not self.time:
            return ASK_TIME
        if self.time and not self.day:
            return ASK_DAY
        return ASK_BOTH

    def _day_phrase(self) -> str:
        return self.day if self.day in ("today", "tomorrow") else f"on {self.day}"

    def _say(self, prompt: str) -> list[ReplyText]:
        self.last_prompt = prompt
        return [ReplyText(prompt)]


def _sentence(phrase: str) -> str:
    return f"{phrase[0].upper()}{phrase[1:]}."


class BookingResponder:
    def open(self, call_id: str, options: Mapping[str, object]) -> BookingConversation:
        return BookingConversation(BookingOptions.from_options(options))

    def fixed_phrases(self, options: Mapping[str, object]) -> list[str]:
        opts = BookingOptions.from_options(options)
        return [opts.greeting, opts.rating_prompt, *FIXED_PHRASES]
