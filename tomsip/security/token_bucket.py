"""Token buckets: one implementation for SIP INVITE admission and browser message limits.

Time is passed in, never read here, so the arithmetic is tested without sleeping and the same class
serves a per-connection limit and a keyed per-source-address limit.
"""

from __future__ import annotations

from collections import OrderedDict


class TokenBucket:
    """`rate` tokens per second refill up to `burst`; each `allow` spends `cost` tokens."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def allow(self, now: float, cost: float = 1.0) -> bool:
        elapsed = max(0.0, now - self._stamp)
        self._stamp = max(self._stamp, now)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def full_at(self, now: float) -> bool:
        """True when the bucket would be full at `now` (its key can be forgotten)."""
        return self._tokens + max(0.0, now - self._stamp) * self.rate >= self.burst


class KeyedTokenBuckets:
    """One bucket per key (a source address), with a bounded number of keys.

    A flood from many spoofed sources must not grow memory without bound: when `max_keys` is reached,
    full buckets are forgotten first (they carry no state), then the least recently used.
    """

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, key: str, now: float, cost: float = 1.0) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._evict(now)
            bucket = TokenBucket(self.rate, self.burst, now)
            self._buckets[key] = bucket
        else:
            self._buckets.move_to_end(key)
        return bucket.allow(now, cost)

    def _evict(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full_at(now)]:
            del self._buckets[key]
        while len(self._buckets) >= self.max_keys:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)
