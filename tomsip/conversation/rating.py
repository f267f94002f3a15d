"""The end-of-call rating scale, in one place: the FSM, the browser event, the feedback API, the
spoken-rating parser and the reward all read it here."""

from __future__ import annotations

from typing import TypeGuard

LOWEST = 1
HIGHEST = 5
DIGITS = frozenset(str(n) for n in range(LOWEST, HIGHEST + 1))  # keypad answers to the question


def is_rating(value: object) -> TypeGuard[int]:
    """A whole number on the scale (a bool is not a number here, whatever Python says)."""
    return isinstance(value, int) and not isinstance(value, bool) and LOWEST <= value <= HIGHEST
