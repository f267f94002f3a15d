"""SIP admission: whether the SIP side can take a new call. Pure apart from the clock passed in.

The reasons to refuse, each counted: the source address sends INVITEs faster than its token bucket
allows (an INVITE flood from one place must not starve everyone else), or the concurrent-call limit of
the SIP stack is reached. What holds for every transport is asked elsewhere: the app refuses while it
drains, and the conversation limit of the call's pipeline (tomsip/call/conversation_limit.py) is asked
once the call is routed.
"""

from __future__ import annotations

from tomsip.security.token_bucket import KeyedTokenBuckets


class Admission:
    def __init__(self, max_calls: int, invite_rate: float, invite_burst: float) -> None:
        self.max_calls = max_calls
        self._buckets = KeyedTokenBuckets(invite_rate, invite_burst)

    def refuse_reason(self, source: str, active_calls: int, now: float) -> str | None:
        """None to admit; otherwise why not ("rate", "capacity")."""
        if not self._buckets.allow(source, now):
            return "rate"
        if active_calls >= self.max_calls:
            return "capacity"
        return None
