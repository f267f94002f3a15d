"""How many conversations a speech worker is serving, across every node that uses it.

A worker sees requests, not calls; but the nodes name the conversation each request belongs to
(`X-Tomsip-Conversation`, the call id), and a conversation speaks at least every turn cycle. So the
conversations heard from within the last ACTIVE_WINDOW_S are the ones in progress. Against the
worker's capacity (measured at start-up like a node's, or set) this is what lets every node that
shares the worker refuse new calls at its door once the worker is full, however few calls that one
node carries. Pure apart from the clock passed in.
"""

from __future__ import annotations

from collections import OrderedDict

ACTIVE_WINDOW_S = 20.0  # a booking turn comes every ~8 s; a caller thinking twice as long still counts
MAX_TRACKED = 10_000  # ids kept at most, oldest first out (a flood of made-up ids cannot grow it)
MAX_ID_CHARS = 200


class ConversationTracker:
    def __init__(self, window_s: float = ACTIVE_WINDOW_S) -> None:
        self._window_s = window_s
        self._last: OrderedDict[str, float] = OrderedDict()

    def seen(self, conversation: str, now: float) -> None:
        if not conversation or len(conversation) > MAX_ID_CHARS:
            return
        self._last.pop(conversation, None)
        self._last[conversation] = now
        while len(self._last) > MAX_TRACKED:
            self._last.popitem(last=False)

    def active(self, now: float) -> int:
        while self._last:
            oldest, at = next(iter(self._last.items()))
            if now - at <= self._window_s:
                break
            del self._last[oldest]
        return len(self._last)
