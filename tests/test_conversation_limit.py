"""Speech-aware admission, pure: the limit per pipeline, live pressure, and the calibration formula."""

from __future__ import annotations

import pytest

from tomsip.call.conversation_limit import ConversationLimit, ConversationLimits, ConversationRefused
from tomsip.speech.calibration import calibrate, conversations_for


def test_the_limit_refuses_the_next_conversation_and_a_release_makes_room() -> None:
    limits = ConversationLimits({"local": ConversationLimit(2), "mock": ConversationLimit(250)})
    limits.take("local")
    limits.take("local")
    assert limits.refuse_reason("local") == "conversations"
    with pytest.raises(ConversationRefused) as refused:
        limits.take("local")
    assert refused.value.reason == "conversations"
    assert limits.active("local") == 2 and limits.refuse_reason("mock") is None
    limits.release("local")
    assert limits.refuse_reason("local") is None


def test_waiting_speech_jobs_tighten_the_limit_but_never_refuse_the_first_call() -> None:
    wait = [0.0]
    limit = ConversationLimit(10, lambda: wait[0], busy_after_s=0.4)
    assert limit.refuse_reason(5) is None
    wait[0] = 0.9
    assert limit.refuse_reason(5) == "speech_busy"
    assert limit.refuse_reason(0) is None  # an idle node is never "busy"
    assert ConversationLimit(10, lambda: 5.0, busy_after_s=0).refuse_reason(5) is None  # pressure off


def test_calibration_scales_with_the_cores_the_budget_and_the_model_speed() -> None:
    base = conversations_for(stt_s=0.14, tts_s=0.08, cores=2, budget=0.6)
    assert conversations_for(0.14, 0.08, 4, 0.6) > base
    assert conversations_for(0.28, 0.16, 2, 0.6) < base
    assert conversations_for(0.14, 0.08, 2, 0.3) < base
    assert conversations_for(10.0, 10.0, 1, 0.01) == 1  # never below one


def test_calibration_times_the_models_it_is_given() -> None:
    said: list[str] = []

    def speak(text: str) -> bytes:
        said.append(text)
        return b"\x00" * 32_000

    heard: list[int] = []
    result = calibrate(lambda audio: heard.append(len(audio)), speak, budget=0.5, cores=2, runs=2)
    assert heard and set(heard) == {32_000}
    assert len(said) >= 3 and result.cores == 2 and result.conversations >= 1
    assert "conversations" in result.describe()


def test_answers_are_paced_and_a_call_that_would_ring_too_long_is_refused() -> None:
    limits = ConversationLimits({"local": ConversationLimit(10, pace_s=1.5), "mock": ConversationLimit(250)})
    assert limits.take("local", now=100.0) == 0.0
    assert limits.take("local", now=100.1) == pytest.approx(1.4)  # rings until the next slot
    assert limits.take("local", now=100.2) == pytest.approx(2.8)
    with pytest.raises(ConversationRefused) as refused:
        limits.take("local", now=100.3)  # its slot would be 4.2 s away
    assert refused.value.reason == "pacing" and limits.active("local") == 3
    assert limits.take("local", now=110.0) == 0.0  # slots free up as time passes
    assert limits.take("mock", now=100.3) == 0.0  # unpaced
    assert limits.take("local") == 0.0  # a browser: not paced, only counted


def test_speech_workers_that_are_down_or_full_refuse_even_the_first_call() -> None:
    """Workers are shared by other nodes: their verdict holds on a node that carries nothing."""
    verdict: list[str | None] = ["speech_workers_busy"]
    limits = ConversationLimits({"local": ConversationLimit(30, busy_reason=lambda: verdict[0])})
    with pytest.raises(ConversationRefused) as refused:
        limits.take("local")
    assert refused.value.reason == "speech_workers_busy"
    verdict[0] = None
    limits.take("local")
    assert limits.active("local") == 1


def test_a_stage_left_to_workers_is_not_timed() -> None:
    timed: list[str] = []
    measured = calibrate(
        lambda audio: timed.append("stt"), lambda text: b"\0\0" * 1600, 0.6, cores=2, runs=1, timed=frozenset({"tts"})
    )
    assert timed == [] and measured.stt_s == 0.0
