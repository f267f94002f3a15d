"""Offline training and reporting: rebuild the posteriors from an episode log, and describe them.

Training replays every episode's raw signals through the dialplan's current reward formula, so a
changed formula (or a lost or corrupt bandit state) is recovered from the log alone. Pure: episodes
in, posteriors out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from tomsip.learn.bandit import Posterior
from tomsip.learn.episode import BadEpisode, Episode
from tomsip.learn.reward import BadRating, RewardConfig, reward


@dataclass(frozen=True)
class Context:
    """What training needs to know about one dialplan."""

    policies: list[str]
    reward: RewardConfig = field(default_factory=RewardConfig)


@dataclass
class TrainResult:
    posteriors: dict[str, dict[str, Posterior]]  # dialplan -> policy -> posterior
    used: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # bad, unknown_dialplan, unknown_policy

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def train(episodes: Iterable[dict[str, object]], contexts: dict[str, Context]) -> TrainResult:
    result = TrainResult({name: {p: Posterior() for p in c.policies} for name, c in contexts.items()})
    for raw in episodes:
        try:
            episode = Episode.from_dict(raw)
        except BadEpisode:
            result.skip("bad")
            continue
        context = contexts.get(episode.context)
        if context is None:
            result.skip("unknown_dialplan")
            continue
        if episode.policy not in context.policies:
            result.skip("unknown_policy")
            continue
        try:
            value = reward(episode.signals, context.reward)
        except BadRating:
            result.skip("bad")
            continue
        result.posteriors[episode.context][episode.policy].update(value)
        result.used += 1
    return result


@dataclass(frozen=True)
class PolicyStatus:
    policy: str
    mean: float
    low: float
    high: float
    pulls: int
    share: float  # of all pulls in the dialplan
    flags: str  # baseline, shadow, blacklisted, killed


def describe(
    posteriors: dict[str, Posterior], flags: dict[str, list[str]], rng: np.random.Generator
) -> list[PolicyStatus]:
    total = sum(p.pulls for p in posteriors.values())
    rows = []
    for name, posterior in posteriors.items():
        low, high = posterior.interval(rng)
        share = posterior.pulls / total if total else 0.0
        rows.append(
            PolicyStatus(name, posterior.mean, low, high, posterior.pulls, share, ",".join(flags.get(name, [])))
        )
    return rows


def format_status(dialplan: str, rows: list[PolicyStatus]) -> str:
    lines = [
        f"dialplan {dialplan}",
        f"  {'policy':<20} {'mean':>6} {'95% interval':>15} {'pulls':>7} {'share':>7}  flags",
    ]
    for r in rows:
        interval = f"[{r.low:.3f}, {r.high:.3f}]"
        lines.append(f"  {r.policy:<20} {r.mean:6.3f} {interval:>15} {r.pulls:7d} {r.share:7.1%}  {r.flags}")
    return "\n".join(lines)
