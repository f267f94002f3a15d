"""Rewards, the Thompson-sampling bandit and the deploy guard, pure and seeded."""

from __future__ import annotations

import numpy as np
import pytest

from tomsip.learn.bandit import Posterior, choose, prob_worse
from tomsip.learn.guard import Guard, GuardConfig
from tomsip.learn.reward import BadRating, CallSignals, RewardConfig, reward
from tomsip.learn.simulation import simulate

RATES = {"terse": 0.3, "baseline": 0.5, "warm": 0.7}


def test_reward_edges() -> None:
    perfect = CallSignals(task_completed=True, turn_latency_ms=500, call_s=60, rating=5)
    assert reward(perfect) == pytest.approx(1.0)
    worst = CallSignals(hung_up_while_speaking=True, barge_ins=9, turn_latency_ms=5000, call_s=900, rating=1)
    assert reward(worst) == pytest.approx(0.0)
    unrated = CallSignals(task_completed=True, call_s=60)
    assert 0.0 < reward(unrated) <= 1.0, "an unrated call still teaches something; unknown latency drops out"
    assert reward(CallSignals(rating=5)) > reward(CallSignals(rating=4)) > reward(CallSignals(rating=1))
    only_rating = RewardConfig(rating_weight=1.0)
    assert reward(CallSignals(rating=3), only_rating) == pytest.approx(0.5)
    for bad in (0, 6, -1):
        with pytest.raises(BadRating):
            reward(CallSignals(rating=bad))


def test_fractional_rewards_update_the_posterior_and_are_clamped() -> None:
    p = Posterior()
    p.update(0.75)
    p.update(7.0)  # clamped to 1
    assert (p.alpha, p.beta, p.pulls) == (2.75, 1.25, 2)
    assert p.mean == pytest.approx(2.75 / 4)
    low, high = p.interval(np.random.default_rng(1))
    assert 0 < low < p.mean < high < 1


def test_thompson_finds_the_best_policy_and_regret_grows_sublinearly() -> None:
    result, posteriors = simulate(RATES, 2000, Guard("baseline", GuardConfig(min_samples=0)), seed=11)
    assert result.share("warm", last=500) >= 0.9, "the best policy gets at least 90 % of the traffic"
    r = result.regret
    assert r[1999] - r[999] < 0.5 * r[999], "the second thousand episodes cost far less than the first"
    assert posteriors["warm"].mean == pytest.approx(0.7, abs=0.05)


def test_a_new_policy_is_capped_until_it_has_samples() -> None:
    guard = Guard("baseline", GuardConfig(min_samples=100, new_policy_cap=0.1))
    posteriors = {"baseline": Posterior(5, 5, 10), "new": Posterior(50, 1, 10)}  # looks great, few pulls
    decisions = [guard.decide(posteriors, np.random.default_rng(s)) for s in range(2000)]
    served_new = sum(d.served == "new" for d in decisions) / len(decisions)
    assert served_new <= 0.13 and any(d.reason == "capped" for d in decisions)


def test_shadow_is_drawn_but_the_baseline_is_served_and_the_kill_switch_serves_only_baseline() -> None:
    guard = Guard("baseline", shadow={"new"})
    posteriors = {"baseline": Posterior(1, 50, 60), "new": Posterior(50, 1, 60)}
    decision = guard.decide(posteriors, np.random.default_rng(3))
    assert (decision.drawn, decision.served, decision.reason) == ("new", "baseline", "shadow")
    guard.killed = True
    assert guard.decide(posteriors, np.random.default_rng(3)).reason == "killed"


def test_a_policy_worse_than_the_baseline_is_blacklisted_and_never_drawn_again() -> None:
    guard = Guard("baseline", GuardConfig(min_samples=0, blacklist_min_samples=20))
    posteriors = {
        "baseline": Posterior(31, 31, 60),  # about 0.5
        "terse": Posterior(8, 18, 24),  # about 0.3, with enough samples to tell
        "young": Posterior(1, 4, 3),  # looks bad, but three calls prove nothing
        "warm": Posterior(40, 18, 56),
    }
    rng = np.random.default_rng(0)
    assert guard.review(posteriors, rng) == ["terse"]
    assert guard.review(posteriors, rng) == [], "each blacklisting is decided once"
    served = {guard.decide(posteriors, np.random.default_rng(s)).drawn for s in range(500)}
    assert "terse" not in served and "warm" in served
    assert prob_worse(Posterior(10, 90, 100), Posterior(50, 50, 100), rng) > 0.99
    assert choose({"a": Posterior(), "b": Posterior()}, ["b"], rng) == "b"
