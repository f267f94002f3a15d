"""A simulated population of calls for the bandit and the guard: each policy has a true success
rate, each episode draws a policy, a Bernoulli reward comes back. Used by the tests and by
bench/bandit_simulation.py (which plots the regret)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tomsip.learn.bandit import Posterior
from tomsip.learn.guard import Guard


@dataclass
class SimulationResult:
    served: list[str] = field(default_factory=list)
    regret: list[float] = field(default_factory=list)  # cumulative, per episode
    reasons: dict[str, int] = field(default_factory=dict)

    def share(self, policy: str, last: int) -> float:
        tail = self.served[-last:]
        return tail.count(policy) / len(tail)


def simulate(
    true_rates: dict[str, float], episodes: int, guard: Guard, seed: int = 7, review_every: int = 50
) -> tuple[SimulationResult, dict[str, Posterior]]:
    rng = np.random.default_rng(seed)
    posteriors = {name: Posterior() for name in true_rates}
    best = max(true_rates.values())
    result = SimulationResult()
    total = 0.0
    for episode in range(episodes):
        decision = guard.decide(posteriors, rng)
        result.reasons[decision.reason] = result.reasons.get(decision.reason, 0) + 1
        reward = float(rng.random() < true_rates[decision.served])
        posteriors[decision.served].update(reward)
        total += best - true_rates[decision.served]
        result.served.append(decision.served)
        result.regret.append(total)
        if (episode + 1) % review_every == 0:
            guard.review(posteriors, rng)
    return result, posteriors
