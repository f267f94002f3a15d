"""The deploy guard: what keeps a new or bad conversation policy from hurting many callers.

Around every Thompson draw (tomsip/learn/bandit.py):
- kill switch: everyone gets the baseline, nothing else is drawn;
- blacklist: a policy worse than the baseline with high posterior probability is never drawn;
- traffic cap: until a policy has `min_samples` pulls, a draw that picks it serves it only with
  probability `new_policy_cap`, the baseline otherwise, so its share stays under the cap;
- shadow mode: a shadow policy can be drawn (and the draw is logged), but the baseline is served.
Every decision says why, so that each can be logged and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tomsip.learn.bandit import Posterior, choose, prob_worse


@dataclass(frozen=True)
class GuardConfig:
    min_samples: int = 50
    new_policy_cap: float = 0.1
    blacklist_prob: float = 0.95
    blacklist_min_samples: int = 20


@dataclass(frozen=True)
class Decision:
    served: str  # the policy the call runs under
    drawn: str  # what the bandit picked (differs when capped, shadowed or killed)
    reason: str  # bandit, capped, shadow, killed


@dataclass
class Guard:
    baseline: str
    config: GuardConfig = field(default_factory=GuardConfig)
    shadow: set[str] = field(default_factory=set)
    blacklisted: set[str] = field(default_factory=set)
    killed: bool = False

    def decide(self, posteriors: dict[str, Posterior], rng: np.random.Generator) -> Decision:
        if self.killed:
            return Decision(self.baseline, self.baseline, "killed")
        eligible = [name for name in posteriors if name not in self.blacklisted or name == self.baseline]
        drawn = choose(posteriors, eligible, rng)
        if drawn == self.baseline:
            return Decision(drawn, drawn, "bandit")
        if drawn in self.shadow:
            return Decision(self.baseline, drawn, "shadow")
        if posteriors[drawn].pulls < self.config.min_samples and rng.random() >= self.config.new_policy_cap:
            return Decision(self.baseline, drawn, "capped")
        return Decision(drawn, drawn, "bandit")

    def review(self, posteriors: dict[str, Posterior], rng: np.random.Generator) -> list[str]:
        """Blacklist the policies now known to be worse than the baseline; returns the new ones."""
        base = posteriors[self.baseline]
        newly: list[str] = []
        for name, posterior in posteriors.items():
            if name == self.baseline or name in self.blacklisted:
                continue
            if posterior.pulls < self.config.blacklist_min_samples:
                continue
            if prob_worse(posterior, base, rng) > self.config.blacklist_prob:
                self.blacklisted.add(name)
                newly.append(name)
        return newly
