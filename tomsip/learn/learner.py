"""The learning loop at run time: choose a policy when a call comes in, learn from it when it ends.

`assign` reads the dialplan's bandit state from the store, lets the deploy guard decide (Thompson
draw, cap, shadow, blacklist, kill switch) and counts the decision. `finish` turns the call's signals
into a reward, adds it to the served policy's posterior with the store's atomic update, appends the
episode to the log, and lets the guard review the dialplan (a policy now known to be worse than the
baseline is blacklisted, for every node sharing the store).

A call never waits long on any of this and never fails because of it: if the store cannot be read
in time the baseline serves the call; if the update cannot be written, the episode is lost with a
warning and a metric. Bad stored state is ignored or reset with a warning (tomsip/learn/state.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tomsip.learn.episode import Episode
from tomsip.learn.guard import Guard
from tomsip.learn.policies import LearningPlan
from tomsip.learn.reward import BadRating, CallSignals, reward
from tomsip.learn.state import BanditState, parse_state, posterior_fields
from tomsip.learn.training import Context, train
from tomsip.monitor.metrics import Metrics
from tomsip.store.base import Store, StoreUnavailable

log = logging.getLogger("tomsip.learn")


@dataclass(frozen=True)
class Assignment:
    context: str  # the dialplan
    policy: str  # served
    drawn: str
    reason: str  # bandit, capped, shadow, killed, store_unavailable, only_policy


class PolicyLearner:
    def __init__(
        self, store: Store, metrics: Metrics, rng: np.random.Generator | None = None, store_timeout_s: float = 0.5
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._rng = rng or np.random.default_rng()
        self._timeout = store_timeout_s
        self._warned: set[tuple[str, str]] = set()

    # ---- start-up ----

    async def restore(self, plans: Sequence[LearningPlan]) -> None:
        """An in-process store starts empty: rebuild its posteriors from the episode log."""
        if self._store.shared:
            return
        episodes = await self._store.episodes()
        if not episodes:
            return
        result = train(episodes, contexts_of(plans))
        for context, posteriors in result.posteriors.items():
            fields: dict[str, str] = {}
            for policy, posterior in posteriors.items():
                fields.update(posterior_fields(policy, posterior))
            await self._store.bandit_set(context, fields, replace=True)
        log.info("bandit restored from %d logged episodes (%s skipped)", result.used, result.skipped or "none")

    # ---- a call starts ----

    async def assign(self, plan: LearningPlan) -> Assignment:
        baseline = plan.baseline
        if len(plan.policy_names) == 1:
            return self._chosen(plan.name, Assignment(plan.name, baseline, baseline, "only_policy"))
        try:
            state = await self._state(plan)
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("bandit state unreadable (%s): serving the baseline", type(exc).__name__)
            return self._chosen(plan.name, Assignment(plan.name, baseline, baseline, "store_unavailable"))
        guard = self._guard(plan, state)
        decision = guard.decide(state.posteriors, self._rng)
        if decision.reason != "bandit":
            log.info("guard: %s drawn, %s served (%s)", decision.drawn, decision.served, decision.reason)
        return self._chosen(plan.name, Assignment(plan.name, decision.served, decision.drawn, decision.reason))

    def _chosen(self, context: str, assignment: Assignment) -> Assignment:
        self._metrics.policy_selections.labels(context, assignment.policy, assignment.reason).inc()
        self._metrics.guard_decisions.labels(context, assignment.reason).inc()
        return assignment

    async def _state(self, plan: LearningPlan) -> BanditState:
        fields = await asyncio.wait_for(self._store.bandit_fields(plan.name), self._timeout)
        state = parse_state(fields, plan.policy_names)
        for policy in state.unknown:
            self._warn_once(plan.name, policy, "unknown_policy", "stored state names a policy the dialplan lacks")
        for policy in state.corrupt:
            self._warn_once(plan.name, policy, "corrupt", "stored posterior is corrupt; using the prior")
        return state

    def _warn_once(self, context: str, policy: str, reason: str, what: str) -> None:
        if (context, policy) in self._warned:
            return
        self._warned.add((context, policy))
        self._metrics.learning_state_resets.labels(reason).inc()
        log.warning("%s (dialplan %s, policy %s): ignored", what, context, policy)

    @staticmethod
    def _guard(plan: LearningPlan, state: BanditState) -> Guard:
        return Guard(
            plan.baseline,
            plan.learning.guard_config(),
            shadow=set(plan.learning.shadow),
            blacklisted=set(state.blacklisted),
            killed=plan.learning.kill or state.killed,
        )

    # ---- a call ends ----

    async def finish(
        self,
        plan: LearningPlan,
        assignment: Assignment,
        call_id: str,
        outcome: str,
        signals: CallSignals,
        rating_source: str = "",
    ) -> Episode:
        try:
            value = reward(signals, plan.learning.reward.config())
        except BadRating:  # never reaches here from a call (the FSM takes 1..5 only); be safe anyway
            self._metrics.feedback_refused.labels("out_of_range").inc()
            signals = dataclasses.replace(signals, rating=None)
            value = reward(signals, plan.learning.reward.config())
            rating_source = ""
        episode = Episode(
            call_id,
            assignment.context,
            assignment.policy,
            assignment.drawn,
            assignment.reason,
            outcome,
            signals,
            rating_source,
            round(value, 4),
            time.time(),
        )
        self._metrics.policy_rewards.labels(assignment.context, assignment.policy).observe(value)
        try:
            if await self._store.bandit_update(assignment.context, assignment.policy, value):
                self._metrics.learning_state_resets.labels("corrupt").inc()
                log.warning("corrupt posterior of policy %s reset before the update", assignment.policy)
            await self._store.append_episode(episode.to_dict())
        except StoreUnavailable as exc:
            self._metrics.episodes.labels("failed").inc()
            log.warning("episode not recorded: the store is unavailable (%s)", exc)
            return episode
        self._metrics.episodes.labels("logged").inc()
        if len(plan.policy_names) > 1:
            await self._review(plan)
        return episode

    async def _review(self, plan: LearningPlan) -> None:
        try:
            state = await self._state(plan)
            newly = self._guard(plan, state).review(state.posteriors, self._rng)
            if newly:
                await self._store.bandit_set(plan.name, {f"{p}:blacklisted": "1" for p in newly})
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("guard review skipped: %s", type(exc).__name__)
            return
        for policy in newly:
            self._metrics.guard_decisions.labels(plan.name, "blacklisted").inc()
            log.warning("guard: policy %s blacklisted in dialplan %s (worse than the baseline)", policy, plan.name)


def contexts_of(plans: Sequence[LearningPlan]) -> dict[str, Context]:
    return {p.name: Context(p.policy_names, p.learning.reward.config()) for p in plans}
