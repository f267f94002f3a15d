"""The booking assistant's dialog, turn by turn, and the intent rules under it."""

from __future__ import annotations

import pytest

from tomsip.conversation.turns import TurnKind
from tomsip.speech.booking import BookingConversation, BookingOptions, Step
from tomsip.speech.intents import find_day, find_time
from tomsip.speech.stages import ReplyText, Transcript, TurnRequest


def say(conv: BookingConversation, text: str) -> list[ReplyText]:
    return conv.reply(TurnRequest(1, TurnKind.UTTERANCE), Transcript(text))


def words(replies: list[ReplyText]) -> str:
    return " ".join(r.text for r in replies)


@pytest.fixture
def conv() -> BookingConversation:
    return BookingConversation(BookingOptions(transfer_uri="sip:frontdesk@127.0.0.1"))


@pytest.mark.parametrize(
    ("text", "hour", "minute"),
    [
        ("Tuesday at 10 in the morning.", 10, 0),
        ("at three", 15, 0),
        ("3.30 p.m. on Friday", 15, 30),
        ("half past two", 14, 30),
        ("How about 4 o'clock?", 16, 0),
        ("ten thirty in the morning", 10, 30),
        ("around noon", 12, 0),
        ("at 9 a.m.", 9, 0),
    ],
)
def test_times_in_digits_and_words(text: str, hour: int, minute: int) -> None:
    found = find_time(text)
    assert found is not None and (found.hour, found.minute) == (hour, minute)


def test_a_bare_number_is_not_a_time_and_days_are_found() -> None:
    assert find_time("two people please") is None
    assert find_day("next wednesday maybe") == "Wednesday"
    assert find_day("tomorrow works") == "tomorrow"


def test_day_and_time_then_yes_books_and_ends_the_call(conv: BookingConversation) -> None:
    greeting = conv.reply(TurnRequest(0, TurnKind.GREETING), None)
    assert "Which day" in words(greeting)
    confirm = say(conv, "I would like to book an appointment for Tuesday at ten in the morning.")
    assert words(confirm) == "On Tuesday at 10 in the morning. Shall I book that for you?"
    assert conv.step is Step.CONFIRM
    done = say(conv, "Yes, please.")
    assert words(done) == "Great. You are booked on Tuesday at 10 in the morning."
    assert done[-1].end_call and conv.booked


def test_slots_are_asked_for_one_at_a_time(conv: BookingConversation) -> None:
    assert words(say(conv, "Thursday")) == "On Thursday. What time would suit you?"
    assert "Shall I book" in words(say(conv, "at 2 pm"))


def test_no_at_confirmation_starts_over_and_a_new_slot_replaces_the_old(conv: BookingConversation) -> None:
    say(conv, "Monday at 11 am")
    assert "Shall I book" in words(say(conv, "Actually, Wednesday"))
    assert conv.day == "Wednesday"
    say(conv, "no")
    assert conv.step is Step.ASK and conv.day is None


def test_closed_days_and_hours_are_refused_politely(conv: BookingConversation) -> None:
    assert "closed on Sundays" in words(say(conv, "Sunday at 10"))
    assert "outside our hours" in words(say(conv, "Monday at 7 in the evening"))
    assert conv.time is None and conv.day == "Monday"


def test_repeat_that_says_the_last_question_again(conv: BookingConversation) -> None:
    say(conv, "Friday")
    assert words(say(conv, "Sorry, can you repeat that?")) == "Sure. What time would suit you?"


def test_a_human_is_a_transfer_when_configured_and_an_apology_when_not(conv: BookingConversation) -> None:
    replies = say(conv, "Can I talk to a real person please?")
    assert replies[-1].transfer_to == "sip:frontdesk@127.0.0.1"
    alone = BookingConversation(BookingOptions())
    replies = say(alone, "I want an operator")
    assert not any(r.transfer_to for r in replies) and "nobody else" in words(replies)


def test_silence_empty_transcript_and_nonsense_reprompt_then_transfer(conv: BookingConversation) -> None:
    assert "still there" in words(conv.reply(TurnRequest(2, TurnKind.NO_INPUT), None))
    assert "didn't hear" in words(say(conv, ""))
    assert "didn't catch" in words(say(conv, "the weather is lovely"))
    say(conv, "purple elephants")
    third = say(conv, "bananas")
    assert third[-1].transfer_to, "three misunderstandings in a row hand the caller to a human"


def test_digits_zero_is_a_human_and_one_confirms(conv: BookingConversation) -> None:
    say(conv, "Tuesday at 10 am")
    assert conv.reply(TurnRequest(3, TurnKind.DIGIT, digit="1"), None)[-1].end_call
    fresh = BookingConversation(BookingOptions(transfer_uri="sip:x@127.0.0.1"))
    assert fresh.reply(TurnRequest(1, TurnKind.DIGIT, digit="0"), None)[-1].transfer_to


def test_bad_dialplan_options_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="open_hours"):
        BookingOptions.from_options({"open_hours": "nine to five"})
    with pytest.raises(ValueError, match="open_days"):
        BookingOptions.from_options({"open_days": [1, 2]})


def test_the_booking_conversation_tells_the_learning_loop_whether_it_booked() -> None:
    from tomsip.speech.mock import MockConversation
    from tomsip.speech.stages import KnowsOutcome

    booking = BookingConversation(BookingOptions())
    assert isinstance(booking, KnowsOutcome) and booking.task_completed is False
    booking.booked = True
    assert booking.task_completed is True
    assert not isinstance(MockConversation(None), KnowsOutcome), "tones cannot tell: the call's outcome decides"


def test_back_from_hold_the_caller_is_welcomed_and_asked_where_the_call_was(conv: BookingConversation) -> None:
    conv.reply(TurnRequest(1, TurnKind.UTTERANCE), Transcript("Tuesday please"))
    back = " ".join(r.text for r in conv.reply(TurnRequest(2, TurnKind.RESUMED), None))
    assert back.startswith("Welcome back.") and "time" in back.lower()
