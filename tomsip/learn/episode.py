"""One finished call, as the learning loop remembers it: where it ran (the dialplan: the bandit's
context), under which policy and why, what happened (the reward's signals), the rating if any, and
the reward it earned. Episodes are the log that `tomsip learn train` replays, so they keep the raw
signals: a changed reward formula can be applied to old calls."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tomsip.learn.reward import CallSignals


class BadEpisode(ValueError):
    """A logged episode that cannot be read back."""


@dataclass(frozen=True)
class Episode:
    call_id: str
    context: str  # the dialplan
    policy: str  # the policy that served the call
    drawn: str  # what the bandit drew (differs when capped, shadowed or killed)
    reason: str  # the guard's reason
    outcome: str  # how the call ended
    signals: CallSignals = field(default_factory=CallSignals)
    rating_source: str = ""  # dtmf, speech, browser; "" when unrated
    reward: float = 0.0
    ended_at: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Episode:
        try:
            raw_signals = data.get("signals") or {}
            if not isinstance(raw_signals, dict):
                raise TypeError("signals is not an object")
            latency = raw_signals.get("turn_latency_ms")
            rating = raw_signals.get("rating")
            signals = CallSignals(
                task_completed=bool(raw_signals.get("task_completed", False)),
                hung_up_while_speaking=bool(raw_signals.get("hung_up_while_speaking", False)),
                barge_ins=int(raw_signals.get("barge_ins", 0)),
                turn_latency_ms=float(latency) if latency is not None else None,
                call_s=float(raw_signals.get("call_s", 0.0)),
                rating=int(rating) if rating is not None else None,
            )
            return cls(
                call_id=str(data["call_id"]),
                context=str(data["context"]),
                policy=str(data["policy"]),
                drawn=str(data.get("drawn", data["policy"])),
                reason=str(data.get("reason", "")),
                outcome=str(data.get("outcome", "")),
                signals=signals,
                rating_source=str(data.get("rating_source", "")),
                reward=_number(data.get("reward", 0.0)),
                ended_at=_number(data.get("ended_at", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadEpisode(f"{type(exc).__name__}: {exc}") from None


def _number(value: object) -> float:
    """A JSON number (or its text), as the episode log holds it; anything else is a bad episode."""
    if isinstance(value, int | float | str):
        return float(value)
    raise TypeError(f"not a number: {type(value).__name__}")
