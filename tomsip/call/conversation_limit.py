"""Speech-aware admission: how many conversations may be in progress, and whether the speech workers
are already behind. Pure apart from the callables passed in.

The SIP ceiling (TOMSIP_MAX_CALLS) says how many calls the stack can carry; this says how many the
speech workers can: a number measured at start-up (tomsip/speech/calibration.py) or set by the
operator, tightened live while inference jobs are waiting longer than they should. A caller refused
here hears a busy signal at once (and a proxy such as Kamailio tries another node); a caller let in
beyond it would wait ever longer for every reply, along with everyone else.

Answers are also paced. Calls answered together speak together: a burst of admitted callers ends
their turns at the same moments, and the speech workers meet them as one wave (bench/conversations:
32 calls admitted within 3 s heard p90 1.96 s, the same 32 arriving over 8 s 0.91 s). So a pipeline
whose speech is the constraint answers at most `limit` new calls per turn cycle (8 s), which spreads
their turns evenly over the cycle; a call that finds no free slot rings a little longer (at most
MAX_RING_WAIT_S) and is refused if none comes by then.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping

MAX_RING_WAIT_S = 4.0  # about one ring cycle: longer, and a caller starts to wonder


class ConversationLimit:
    def __init__(
        self,
        limit: int,
        queue_wait_s: Callable[[], float] = lambda: 0.0,
        busy_after_s: float = 0.0,
        pace_s: float = 0.0,
        busy_reason: Callable[[], str | None] = lambda: None,
    ) -> None:
        if limit < 1:
            raise ValueError("the conversation limit must be at least 1")
        self.limit = limit
        self.pace_s = pace_s
        self._queue_wait_s = queue_wait_s
        self._busy_reason = busy_reason
        self._busy_after_s = busy_after_s
        self._next_answer = -math.inf

    def answer_delay(self, now: float) -> float | None:
        """Seconds to let the call ring before answering it (0: now), booking that slot; None when the
        next free slot is further off than MAX_RING_WAIT_S."""
        if not self.pace_s:
            return 0.0
        at = max(now, self._next_answer)
        if at - now > MAX_RING_WAIT_S:
            return None
        self._next_answer = at + self.pace_s
        return at - now

    def refuse_reason(self, active: int) -> str | None:
        """None to admit one more; otherwise "conversations" (the limit), "speech_busy" (this node's
        jobs wait too long) or the speech workers' reason (down, busy, slow: shared with other nodes,
        so it holds even while this node carries nothing)."""
        if active >= self.limit:
            return "conversations"
        if self._busy_after_s and active > 0 and self._queue_wait_s() > self._busy_after_s:
            return "speech_busy"
        return self._busy_reason()


class ConversationRefused(RuntimeError):
    """No room for one more conversation on this pipeline now; `reason` is the counted refusal reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConversationLimits:
    """A limit per pipeline, and the conversations each has in progress (answering ones included):
    tones cost nothing and keep the SIP ceiling while the offline pipeline has its measured limit."""

    def __init__(self, limits: Mapping[str, ConversationLimit]) -> None:
        self._limits = dict(limits)
        self._active: Counter[str] = Counter()

    def limit(self, pipeline: str) -> int:
        return self._limits[pipeline].limit

    def active(self, pipeline: str) -> int:
        return self._active[pipeline]

    def refuse_reason(self, pipeline: str) -> str | None:
        return self._limits[pipeline].refuse_reason(self._active[pipeline])

    def take(self, pipeline: str, now: float | None = None) -> float:
        """Count one more conversation in, or raise ConversationRefused; `release` it when it ends.
        With `now` (a ringing SIP call), answers are paced: returns how long to let it ring first."""
        reason = self.refuse_reason(pipeline)
        if reason is not None:
            raise ConversationRefused(reason)
        delay = 0.0 if now is None else self._limits[pipeline].answer_delay(now)
        if delay is None:
            raise ConversationRefused("pacing")
        self._active[pipeline] += 1
        return delay

    def release(self, pipeline: str) -> None:
        self._active[pipeline] = max(0, self._active[pipeline] - 1)
