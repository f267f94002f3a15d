"""Reading a dialplan's stored bandit state defensively.

The store keeps flat fields (tomsip/store/base.py: `{policy}:alpha`, `:beta`, `:pulls`,
`:blacklisted`, and `killed`). What comes back may have been written by an older version with other
policies, edited by hand, or damaged: a policy the dialplan no longer has is ignored, a policy whose
numbers do not parse starts again from the prior, and both are reported so that the caller can warn
and count. Nothing here raises on bad state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tomsip.learn.bandit import Posterior

FIELDS = ("alpha", "beta", "pulls", "blacklisted")


@dataclass
class BanditState:
    posteriors: dict[str, Posterior]
    blacklisted: set[str] = field(default_factory=set)
    killed: bool = False
    corrupt: list[str] = field(default_factory=list)  # policies reset to the prior
    unknown: list[str] = field(default_factory=list)  # stored policies the dialplan does not have


def parse_state(fields: dict[str, str], policies: list[str]) -> BanditState:
    by_policy: dict[str, dict[str, str]] = {}
    unknown: set[str] = set()
    for key, value in fields.items():
        policy, sep, name = key.rpartition(":")
        if not sep:
            continue  # `killed` and any future dialplan-wide flag
        if policy not in policies or name not in FIELDS:
            unknown.add(policy or key)
            continue
        by_policy.setdefault(policy, {})[name] = value
    state = BanditState({}, unknown=sorted(unknown), killed=fields.get("killed") == "1")
    for policy in policies:
        raw = by_policy.get(policy, {})
        if raw.get("blacklisted") == "1":
            state.blacklisted.add(policy)
        numbers = {k: v for k, v in raw.items() if k != "blacklisted"}
        if not numbers:
            state.posteriors[policy] = Posterior()
            continue
        posterior = _posterior(numbers)
        if posterior is None:
            state.corrupt.append(policy)
            posterior = Posterior()
        state.posteriors[policy] = posterior
    return state


def _posterior(raw: dict[str, str]) -> Posterior | None:
    try:
        alpha, beta, pulls = float(raw["alpha"]), float(raw["beta"]), int(raw["pulls"])
    except (KeyError, ValueError):
        return None
    if not (math.isfinite(alpha) and math.isfinite(beta) and alpha > 0 and beta > 0 and pulls >= 0):
        return None
    return Posterior(alpha, beta, pulls)


def posterior_fields(policy: str, posterior: Posterior) -> dict[str, str]:
    return {
        f"{policy}:alpha": repr(posterior.alpha),
        f"{policy}:beta": repr(posterior.beta),
        f"{policy}:pulls": str(posterior.pulls),
    }
