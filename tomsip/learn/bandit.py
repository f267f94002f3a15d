"""Thompson sampling over conversation policies, with Beta posteriors.

Each policy has Beta(alpha, beta), starting from Beta(1, 1). To choose, draw one sample from every
eligible policy's posterior and take the largest: policies are tried in proportion to the chance
that they are the best, so exploration fades by itself as evidence accumulates.

Rewards are fractional (0.73, not success/failure). A reward r updates the posterior as
alpha += r, beta += 1 - r: the expected update of the Bernoulli trick (a success with probability
r), without its extra noise. With r in {0, 1} it is the textbook update; the posterior mean stays
(successes + 1) / (pulls + 2) in the fractional sense.

Pure: the random source is passed in, the state is plain numbers (the store keeps it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Posterior:
    alpha: float = 1.0
    beta: float = 1.0
    pulls: int = 0

    def update(self, reward: float) -> None:
        r = min(1.0, max(0.0, reward))
        self.alpha += r
        self.beta += 1.0 - r
        self.pulls += 1

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    def interval(self, rng: np.random.Generator, level: float = 0.95, draws: int = 4000) -> tuple[float, float]:
        """The central `level` credible interval, by sampling (no scipy needed)."""
        samples = rng.beta(self.alpha, self.beta, draws)
        tail = (1 - level) / 2 * 100
        return float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))


def choose(posteriors: dict[str, Posterior], eligible: list[str], rng: np.random.Generator) -> str:
    """One Thompson draw among `eligible` policies."""
    if not eligible:
        raise ValueError("no eligible policy to choose from")
    draws = {name: rng.beta(posteriors[name].alpha, posteriors[name].beta) for name in eligible}
    return max(draws, key=lambda name: draws[name])


def prob_worse(candidate: Posterior, baseline: Posterior, rng: np.random.Generator, draws: int = 4000) -> float:
    """P(candidate's true rate < baseline's), by Monte Carlo over both posteriors."""
    a = rng.beta(candidate.alpha, candidate.beta, draws)
    b = rng.beta(baseline.alpha, baseline.beta, draws)
    return float(np.mean(a < b))
