"""Conversation policies: named variants of how a dialplan talks, for the learning loop to choose from.

A dialplan lists its policies under [[policies]]; each may change the greeting, the persona (the
system prompt of the llm and realtime pipelines), the silence that ends an unfinished utterance, the
speech that confirms a barge-in, and the TTS speaking rate. What a policy does not set stays as the
dialplan says. [learning] names the baseline (default: the first policy), the shadow policies and
the guard's limits, whether to ask for an end-of-call rating, and the reward's weights.

A dialplan without policies still learns about itself: every call is an episode of its one implicit
policy, `default`.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tomsip.learn.guard import GuardConfig
from tomsip.learn.reward import RewardConfig

DEFAULT_POLICY = "default"
POLICY_NAME = r"^[A-Za-z0-9_.-]{1,40}$"  # it becomes part of a Redis hash field, `{name}:alpha`


class PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=POLICY_NAME)
    greeting: str | None = Field(None, min_length=1)
    prompt: str | None = Field(None, min_length=1, description="Persona / system prompt (llm, realtime)")
    silence_ms: int | None = Field(None, ge=100, le=5000)
    barge_in_min_ms: int | None = Field(None, ge=20, le=3000)
    speaking_rate: float | None = Field(None, ge=0.5, le=2.0, description="1.0 is the voice's own rate")

    def settings_update(self) -> dict[str, Any]:
        """The dialplan [settings] this policy overrides."""
        out: dict[str, Any] = {}
        if self.silence_ms is not None:
            out["silence_ms"] = self.silence_ms
        if self.barge_in_min_ms is not None:
            out["barge_in_min_ms"] = self.barge_in_min_ms
        return out

    def options_update(self) -> dict[str, Any]:
        """The pipeline options this policy overrides."""
        out: dict[str, Any] = {}
        if self.prompt is not None:
            out["system_prompt"] = self.prompt
        if self.speaking_rate is not None:
            out["speaking_rate"] = self.speaking_rate
        return out


class RewardModel(BaseModel):
    """Overrides of tomsip.learn.reward.RewardConfig (documented there)."""

    model_config = ConfigDict(extra="forbid")

    rating_weight: float = Field(RewardConfig.rating_weight, ge=0, le=1)
    w_task: float = Field(RewardConfig.w_task, ge=0)
    w_no_abandon: float = Field(RewardConfig.w_no_abandon, ge=0)
    w_barge: float = Field(RewardConfig.w_barge, ge=0)
    w_latency: float = Field(RewardConfig.w_latency, ge=0)
    w_length: float = Field(RewardConfig.w_length, ge=0)
    barge_cap: int = Field(RewardConfig.barge_cap, ge=1)
    latency_good_ms: float = Field(RewardConfig.latency_good_ms, ge=0)
    latency_bad_ms: float = Field(RewardConfig.latency_bad_ms, gt=0)
    length_ok_s: float = Field(RewardConfig.length_ok_s, ge=0)
    length_bad_s: float = Field(RewardConfig.length_bad_s, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> RewardModel:
        if self.latency_bad_ms <= self.latency_good_ms or self.length_bad_s <= self.length_ok_s:
            raise ValueError("latency_bad_ms and length_bad_s must be above latency_good_ms and length_ok_s")
        return self

    def config(self) -> RewardConfig:
        return RewardConfig(**self.model_dump())


class LearningModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    baseline: str | None = None
    shadow: list[str] = Field(default_factory=list)
    kill: bool = Field(False, description="Kill switch: serve only the baseline")
    min_samples: int = Field(GuardConfig.min_samples, ge=0)
    new_policy_cap: float = Field(GuardConfig.new_policy_cap, ge=0, le=1)
    blacklist_prob: float = Field(GuardConfig.blacklist_prob, gt=0.5, le=1)
    blacklist_min_samples: int = Field(GuardConfig.blacklist_min_samples, ge=1)
    ask_rating: bool = Field(False, description="Ask for a 1-5 rating when the assistant ends the call")
    rating_timeout_s: float = Field(6.0, ge=1, le=60)
    reward: RewardModel = Field(default_factory=RewardModel)

    def guard_config(self) -> GuardConfig:
        return GuardConfig(self.min_samples, self.new_policy_cap, self.blacklist_prob, self.blacklist_min_samples)


class LearningPlan(Protocol):
    """A dialplan as the learning loop sees it: its name (the bandit's context), its policies and how
    to learn. tomsip/call/dialplan.py's DialplanModel is one; the loop needs nothing else of a call."""

    @property
    def name(self) -> str: ...

    @property
    def baseline(self) -> str: ...

    @property
    def policy_names(self) -> list[str]: ...

    @property
    def learning(self) -> LearningModel: ...


def check_policies(policies: list[PolicyModel], learning: LearningModel) -> None:
    """Raise ValueError unless the names are unique and baseline and shadow name real policies."""
    names = [p.name for p in policies]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"policy names must be unique; repeated: {', '.join(dupes)}")
    known = set(names) or {DEFAULT_POLICY}
    if learning.baseline is not None and learning.baseline not in known:
        raise ValueError(f"learning.baseline {learning.baseline!r} is not one of the policies {sorted(known)}")
    unknown = sorted(set(learning.shadow) - known)
    if unknown:
        raise ValueError(f"learning.shadow names unknown policies: {', '.join(unknown)}")
    baseline = learning.baseline or (names[0] if names else DEFAULT_POLICY)
    if baseline in learning.shadow:
        raise ValueError("the baseline cannot be a shadow policy")
