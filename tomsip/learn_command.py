"""`tomsip learn status | train | kill`: the operator's view of the learning loop.

- status: each dialplan's policies with posterior mean, 95 % interval, pulls and traffic share. With
  Redis it reads the live state every node shares; with the in-process store the state lives inside
  the server, so it is rebuilt from the episode log (TOMSIP_EPISODE_LOG), as the server does at start.
- train: rebuild the posteriors from an episode log (a JSONL file, or the store's own log) with the
  dialplans' current reward formulas; `--write` replaces the stored posteriors (Redis), keeping the
  blacklist and the kill switch. Updates landing while it runs are overwritten: run it when quiet.
- kill: the kill switch of one dialplan for every node on the Redis (`--off` lifts it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tomsip.call.dialplan import DialplanModel, Dialplans
from tomsip.learn.bandit import Posterior
from tomsip.learn.learner import contexts_of
from tomsip.learn.state import parse_state, posterior_fields
from tomsip.learn.training import describe, format_status, train
from tomsip.settings import Settings
from tomsip.store.base import KILLED_FIELD, Store
from tomsip.store.factory import build_store
from tomsip.store.memory import read_jsonl


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    learn: argparse.ArgumentParser = sub.add_parser(
        "learn", help="inspect and train the policy bandit", description=__doc__
    )
    learn.add_argument("action", choices=["status", "train", "kill"])
    learn.add_argument("--config", help="TOML settings file (env TOMSIP_CONFIG_FILE)")
    learn.add_argument("--redis-url", dest="redis_url", help="env TOMSIP_REDIS_URL")
    learn.add_argument("--dialplans", dest="dialplans", help="env TOMSIP_DIALPLANS")
    learn.add_argument("--episode-log", dest="episode_log", help="env TOMSIP_EPISODE_LOG")
    learn.add_argument("--dialplan", dest="only", help="only this dialplan (kill: required)")
    learn.add_argument("--log", type=Path, help="train: replay this JSONL episode log instead of the store's")
    learn.add_argument("--write", action="store_true", help="train: store the rebuilt posteriors")
    learn.add_argument("--off", action="store_true", help="kill: lift the kill switch")
    return learn


async def run(args: argparse.Namespace, settings: Settings) -> int:
    plans = Dialplans.load(settings.dialplans, settings.pipeline).plans()
    if args.only:
        plans = [p for p in plans if p.name == args.only]
        if not plans:
            print(f"tomsip learn: no dialplan named {args.only!r}")
            return 2
    store = build_store(settings.redis_url, settings.episode_log, settings.episode_log_max)
    shared = store.shared
    try:
        if args.action == "kill":
            return await _kill(store, shared, plans, args)
        if args.action == "train":
            return await _train(store, shared, plans, args)
        return await _status(store, shared, plans, settings)
    finally:
        await store.close()


async def _status(store: Store, shared: bool, plans: list[DialplanModel], settings: Settings) -> int:
    rng = np.random.default_rng(0)
    if shared:
        for plan in plans:
            state = parse_state(await store.bandit_fields(plan.name), plan.policy_names)
            for policy in state.corrupt:
                print(f"warning: {plan.name}/{policy}: stored posterior is corrupt; shown as the prior")
            for policy in state.unknown:
                print(f"warning: {plan.name}: stored state has unknown policy {policy!r}; ignored")
            flags = _flags(plan, state.blacklisted, state.killed)
            print(format_status(plan.name, describe(state.posteriors, flags, rng)))
        return 0
    if settings.episode_log is None:
        print("tomsip learn status: the in-process store keeps its state inside the server; set")
        print("TOMSIP_EPISODE_LOG (the server's episode log) or TOMSIP_REDIS_URL to read it from here")
        return 2
    result = train(await store.episodes(), contexts_of(plans))
    print(f"(in-process store: rebuilt from {result.used} episodes in {settings.episode_log})")
    for plan in plans:
        print(format_status(plan.name, describe(result.posteriors[plan.name], _flags(plan, set(), False), rng)))
    return 0


async def _train(store: Store, shared: bool, plans: list[DialplanModel], args: argparse.Namespace) -> int:
    episodes = read_jsonl(args.log) if args.log else await store.episodes()
    result = train(episodes, contexts_of(plans))
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items())) or "none"
    print(f"replayed {result.used} of {len(episodes)} episodes (skipped: {skipped})")
    rng = np.random.default_rng(0)
    for plan in plans:
        print(format_status(plan.name, describe(result.posteriors[plan.name], _flags(plan, set(), False), rng)))
    if not args.write:
        return 0
    if not shared:
        print("--write needs TOMSIP_REDIS_URL: an in-process server rebuilds from its episode log at start")
        return 2
    for plan in plans:
        await _replace_posteriors(store, plan.name, result.posteriors[plan.name])
    print("posteriors written")
    return 0


async def _replace_posteriors(store: Store, context: str, posteriors: dict[str, Posterior]) -> None:
    kept = {
        k: v for k, v in (await store.bandit_fields(context)).items() if k == KILLED_FIELD or k.endswith(":blacklisted")
    }
    fields = dict(kept)
    for policy, posterior in posteriors.items():
        fields.update(posterior_fields(policy, posterior))
    await store.bandit_set(context, fields, replace=True)


async def _kill(store: Store, shared: bool, plans: list[DialplanModel], args: argparse.Namespace) -> int:
    if not args.only:
        print("tomsip learn kill: name the dialplan with --dialplan")
        return 2
    if not shared:
        print("tomsip learn kill needs TOMSIP_REDIS_URL; a single node sets `kill = true` under [learning]")
        return 2
    await store.bandit_set(args.only, {KILLED_FIELD: "0" if args.off else "1"})
    print(f"dialplan {args.only}: kill switch {'off' if args.off else 'on'} (baseline only)")
    return 0


def _flags(plan: DialplanModel, blacklisted: set[str], killed: bool) -> dict[str, list[str]]:
    flags: dict[str, list[str]] = {}
    for name in plan.policy_names:
        marks = []
        if name == plan.baseline:
            marks.append("baseline")
        if name in plan.learning.shadow:
            marks.append("shadow")
        if name in blacklisted:
            marks.append("blacklisted")
        if (killed or plan.learning.kill) and name != plan.baseline:
            marks.append("killed")
        flags[name] = marks
    return flags
