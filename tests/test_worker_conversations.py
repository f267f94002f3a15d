"""tomsip/speech/worker/conversations.py: conversations in progress, as a worker counts them."""

from __future__ import annotations

from tomsip.speech.worker.conversations import MAX_ID_CHARS, MAX_TRACKED, ConversationTracker


def test_a_conversation_counts_while_it_has_spoken_within_the_window() -> None:
    tracker = ConversationTracker(window_s=20)
    tracker.seen("a", 0)
    tracker.seen("b", 5)
    tracker.seen("a", 10)
    assert tracker.active(12) == 2
    assert tracker.active(26) == 1, "b last spoke at 5"
    assert tracker.active(31) == 0


def test_nameless_and_overlong_ids_are_not_counted_and_the_table_is_bounded() -> None:
    tracker = ConversationTracker()
    tracker.seen("", 0)
    tracker.seen("x" * (MAX_ID_CHARS + 1), 0)
    assert tracker.active(0) == 0
    for i in range(MAX_TRACKED + 50):
        tracker.seen(f"call-{i}", 1)
    assert tracker.active(1) == MAX_TRACKED
