"""Admission control: whether a new call may start. Pure apart from the clock passed in.

The reasons to refuse, each counted: the process is draining (rolling upgrade), the source address
sends INVITEs faster than its token bucket allows (an INVITE flood from one place must not starve
everyone else), the concurrent-call limit of the SIP stack is reached, or the speech workers can
carry no more conversations (tomsip/sip/conversation_limit.py).
"""

from __future__ import annotations

from tomsip.security.token_bucket import KeyedTokenBuckets


class Admission:
    def __init__(self, max_calls: int, invite_rate: float, invite_burst: float) -> None:
        self.max_calls = max_calls
        self.draining = False
        self._buckets = KeyedTokenBuckets(invite_rate, invite_burst)

    def refuse_reason(self, source: str, active_calls: int, now: float) -> str | None:
        """None to admit; otherwise why not ("draining", "rate", "capacity"). The conversation limit of
        the call's pipeline is asked next, once the call is routed."""
        if self.draining:
            return "draining"
        if not self._buckets.allow(source, now):
            return "rate"
        if active_calls >= self.max_calls:
            return "capacity"
        return None
