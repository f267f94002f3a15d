"""One number in [0, 1] for how well a call went, from what the caller said and what happened.

The formula (every weight and cap is a RewardConfig field, so a dialplan can change them):

    implicit = w_task * task_completed
             + w_no_abandon * (1 - hung_up_while_we_spoke)
             + w_barge * (1 - min(barge_ins, barge_cap) / barge_cap)
             + w_latency * clamp((latency_bad_ms - turn_latency_ms) / (latency_bad_ms - latency_good_ms))
             + w_length * (1 - clamp((call_s - length_ok_s) / (length_bad_s - length_ok_s)))
    implicit /= (w_task + w_no_abandon + w_barge + w_latency + w_length)

    reward = rating_weight * (rating - 1) / 4 + (1 - rating_weight) * implicit   when rated 1..5
    reward = implicit                                                             otherwise

A caller's own rating outweighs everything we can infer (rating_weight 0.7), but an unrated call
still teaches something. Signals that are unknown (no turn was measured) drop out of both sums.
"""

from __future__ import annotations

from dataclasses import dataclass

from tomsip.conversation.rating import HIGHEST, LOWEST, is_rating


class BadRating(ValueError):
    """A rating outside 1..5."""


@dataclass(frozen=True)
class CallSignals:
    task_completed: bool = False  # e.g. a booking confirmed
    hung_up_while_speaking: bool = False
    barge_ins: int = 0
    turn_latency_ms: float | None = None  # mean voice-to-voice of the call
    call_s: float = 0.0
    rating: int | None = None  # 1..5, or None when the caller gave none


@dataclass(frozen=True)
class RewardConfig:
    rating_weight: float = 0.7
    w_task: float = 3.0
    w_no_abandon: float = 2.0
    w_barge: float = 1.0
    w_latency: float = 1.0
    w_length: float = 0.5
    barge_cap: int = 3
    latency_good_ms: float = 600.0
    latency_bad_ms: float = 2000.0
    length_ok_s: float = 120.0
    length_bad_s: float = 600.0


def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))


def reward(signals: CallSignals, config: RewardConfig | None = None) -> float:
    c = config or RewardConfig()
    parts: list[tuple[float, float]] = [
        (c.w_task, 1.0 if signals.task_completed else 0.0),
        (c.w_no_abandon, 0.0 if signals.hung_up_while_speaking else 1.0),
        (c.w_barge, 1.0 - min(max(signals.barge_ins, 0), c.barge_cap) / c.barge_cap if c.barge_cap else 1.0),
        (c.w_length, 1.0 - _clamp((signals.call_s - c.length_ok_s) / (c.length_bad_s - c.length_ok_s))),
    ]
    if signals.turn_latency_ms is not None:
        span = c.latency_bad_ms - c.latency_good_ms
        parts.append((c.w_latency, _clamp((c.latency_bad_ms - signals.turn_latency_ms) / span)))
    total_weight = sum(w for w, _ in parts)
    implicit = sum(w * v for w, v in parts) / total_weight if total_weight else 0.0
    if signals.rating is None:
        return implicit
    if not is_rating(signals.rating):
        raise BadRating(f"a rating is {LOWEST}..{HIGHEST}, got {signals.rating}")
    scaled = (signals.rating - LOWEST) / (HIGHEST - LOWEST)
    return c.rating_weight * scaled + (1 - c.rating_weight) * implicit
