"""The learning loop wired up: policies from dialplans, the store's bandit state (in-process and a real
redis-server shared by two processes), the run-time learner and its guard, training from the episode
log, and the `tomsip learn` commands."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import redis

from tests.support.redis_server import RedisServer
from tests.support.server import TomsipServer
from tomsip.call.dialplan import DialplanError, DialplanModel, Route, load_file
from tomsip.learn.episode import Episode
from tomsip.learn.learner import Assignment, PolicyLearner, contexts_of
from tomsip.learn.reward import CallSignals, reward
from tomsip.learn.state import parse_state
from tomsip.learn.training import train
from tomsip.monitor.metrics import Metrics
from tomsip.speech.intents import find_rating
from tomsip.store.base import StoreUnavailable, increment_posterior
from tomsip.store.memory import MemoryStore
from tomsip.store.redis_store import RedisStore

ROOT = Path(__file__).resolve().parents[1]


def plan(**learning: object) -> DialplanModel:
    return DialplanModel.model_validate(
        {
            "name": "shop",
            "policies": [{"name": "base"}, {"name": "new", "silence_ms": 300}, {"name": "trial"}],
            "learning": {"baseline": "base", **learning},
        }
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


# ---- policies in dialplans ----


def test_a_policy_changes_greeting_settings_and_pipeline_options(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        'name = "p"\ngreeting = "Hello."\n[settings]\nsilence_ms = 700\n[options]\ntransfer_uri = "sip:x@y"\n'
        '[[policies]]\nname = "plain"\n'
        '[[policies]]\nname = "quick"\ngreeting = "Hi!"\nsilence_ms = 350\nbarge_in_min_ms = 120\n'
        'speaking_rate = 1.2\nprompt = "Be brief."\n'
    )
    model = load_file(path)
    assert model.baseline == "plain" and model.policy_names == ["plain", "quick"]
    route = Route(model, "local", path)
    plain, quick = route.with_policy("plain"), route.with_policy("quick")
    assert plain.plan.greeting == "Hello." and plain.plan.settings.silence_ms == 700 and plain.policy == "plain"
    assert quick.plan.greeting == "Hi!" and quick.plan.settings.silence_ms == 350
    assert quick.fsm_config.barge_in_min_ms == 120 and quick.turn_taking.silence_ms == 350
    assert quick.plan.options == {"transfer_uri": "sip:x@y", "system_prompt": "Be brief.", "speaking_rate": 1.2}
    assert route.plan.settings.silence_ms == 700, "the dialplan itself is untouched"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ('[[policies]]\nname = "a"\n[[policies]]\nname = "a"\n', "unique"),
        ('[[policies]]\nname = "a:b"\n', "policies.0.name"),
        ('[learning]\nbaseline = "x"\n[[policies]]\nname = "a"\n', "baseline"),
        ('[learning]\nshadow = ["x"]\n[[policies]]\nname = "a"\n', "shadow"),
        ('[learning]\nshadow = ["a"]\n[[policies]]\nname = "a"\n', "baseline cannot be a shadow"),
        ('[[policies]]\nname = "a"\nspeaking_rate = 9\n', "speaking_rate"),
        ("[learning.reward]\nlatency_bad_ms = 10\n", "latency_bad_ms"),
    ],
)
def test_bad_policy_declarations_stop_start_up_naming_the_problem(tmp_path: Path, body: str, complaint: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(DialplanError, match=complaint):
        load_file(path)


def test_a_speaking_rate_the_mock_cannot_honour_is_ignored_with_a_warning(tmp_path: Path) -> None:
    """The mock's tones carry what the tests read back, so it keeps their lengths; the shipped
    dialplans (whose policies set a rate) still run on it, as the README shows."""
    (tmp_path / "d.toml").write_text('default = true\n[[policies]]\nname = "a"\nspeaking_rate = 1.3\n')
    server = TomsipServer(env={"TOMSIP_DIALPLANS": str(tmp_path)}, log_path=tmp_path / "server.log").start()
    try:
        assert server.healthz()[0] == 200
        assert "speaking_rate 1.30 ignored" in server.log_text()
    finally:
        assert server.stop() == 0


def test_a_speaking_rate_the_pipeline_cannot_honour_stops_start_up() -> None:
    from tomsip.speech.realtime import RealtimeConfig, RealtimePipeline

    config = RealtimeConfig("ws://127.0.0.1:9/v1/realtime", None, "alloy", 3.0, "auto", "ga")
    pipeline = RealtimePipeline(config, Metrics(), b"")
    with pytest.raises(ValueError, match="speaking_rate"):
        pipeline.check({"speaking_rate": 1.3})


# ---- stored state ----


def test_stored_state_with_unknown_and_corrupt_policies_is_read_without_crashing() -> None:
    fields = {
        "base:alpha": "3.5",
        "base:beta": "2.5",
        "base:pulls": "4",
        "new:alpha": "banana",
        "new:beta": "1",
        "new:pulls": "1",
        "trial:alpha": "-1",
        "trial:beta": "1",
        "trial:pulls": "0",
        "gone:alpha": "9",
        "killed": "1",
        "trial:blacklisted": "1",
    }
    state = parse_state(fields, ["base", "new", "trial", "fresh"])
    assert state.posteriors["base"].mean == pytest.approx(3.5 / 6) and state.posteriors["base"].pulls == 4
    assert state.corrupt == ["new", "trial"] and state.unknown == ["gone"]
    assert state.posteriors["new"].pulls == 0 and state.posteriors["fresh"].alpha == 1.0
    assert state.killed and state.blacklisted == {"trial"}


def test_the_in_process_update_resets_corrupt_state_and_clamps_rewards() -> None:
    fields: dict[str, str] = {}
    assert increment_posterior(fields, "a", 0.75) is False
    assert fields == {"a:alpha": "1.75", "a:beta": "1.25", "a:pulls": "1"}
    fields["a:beta"] = "nan"
    assert increment_posterior(fields, "a", 7.0) is True, "corrupt: reset to the prior, then updated"
    assert fields == {"a:alpha": "2.0", "a:beta": "1.0", "a:pulls": "1"}


UPDATER = """
import asyncio, sys
from tomsip.store.redis_store import RedisStore

async def main(url, n, offset):
    store = RedisStore(url)
    for i in range(n):
        await store.bandit_update("race", "p", ((i + offset) % 5) / 4)
    await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


@pytest.mark.redis
def test_two_processes_updating_one_redis_lose_no_update(redis_server: RedisServer) -> None:
    n = 600
    procs = [
        subprocess.Popen([sys.executable, "-c", UPDATER, redis_server.url, str(n), str(k)], cwd=ROOT) for k in (0, 2)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    fields = redis.Redis(port=redis_server.port, decode_responses=True).hgetall("bandit:race")
    rewards = [((i + k) % 5) / 4 for k in (0, 2) for i in range(n)]
    assert int(fields["p:pulls"]) == 2 * n
    assert float(fields["p:alpha"]) == pytest.approx(1 + sum(rewards), abs=1e-9)
    assert float(fields["p:beta"]) == pytest.approx(1 + sum(1 - r for r in rewards), abs=1e-9)


@pytest.mark.redis
async def test_the_redis_script_resets_corrupt_state_and_the_log_is_a_bounded_stream(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url, episode_log_max=100)
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    client.hset("bandit:shop", mapping={"base:alpha": "x", "base:beta": "1", "base:pulls": "2"})
    assert await store.bandit_update("shop", "base", 1.0) is True
    assert await store.bandit_fields("shop") == {"base:alpha": "2", "base:beta": "1", "base:pulls": "1"}
    assert await store.bandit_update("shop", "base", 0.5) is False
    for i in range(300):
        await store.append_episode({"call_id": f"c{i}"})
    assert client.xlen("episodes") < 300, "trimmed to about episode_log_max"
    client.xadd("episodes", {"json": "{not json"})
    logged = await store.episodes()
    assert logged[-1] == {"call_id": "c299"}, "an unreadable entry is skipped"
    await store.close()


# ---- the learner ----


class DownStore(MemoryStore):
    async def bandit_fields(self, context: str) -> dict[str, str]:
        raise StoreUnavailable("down")

    async def bandit_update(self, context: str, policy: str, reward: float) -> bool:
        raise StoreUnavailable("down")


async def test_the_guard_caps_a_new_policy_until_it_has_samples() -> None:
    store, metrics = MemoryStore(), Metrics()
    learner = PolicyLearner(store, metrics, np.random.default_rng(3))
    model = plan(min_samples=50, new_policy_cap=0.1)
    # The new policies look great, but have no samples yet: the cap holds their share down.
    await store.bandit_set("shop", {"new:alpha": "30", "new:beta": "1", "trial:alpha": "30", "trial:beta": "1"})
    await store.bandit_set("shop", {"new:pulls": "0", "trial:pulls": "0", "base:alpha": "1", "base:beta": "1"})
    served = [(await learner.assign(model)).policy for _ in range(400)]
    assert served.count("base") / 400 > 0.8
    assert sample(metrics, "tomsip_guard_decisions_total", dialplan="shop", decision="capped") > 250


async def test_shadow_is_drawn_and_logged_but_the_baseline_serves() -> None:
    store, metrics = MemoryStore(), Metrics()
    learner = PolicyLearner(store, metrics, np.random.default_rng(5))
    model = plan(shadow=["new"], min_samples=0)
    await store.bandit_set("shop", {"new:alpha": "90", "new:beta": "1", "new:pulls": "89"})
    results = [await learner.assign(model) for _ in range(50)]
    shadowed = [a for a in results if a.reason == "shadow"]
    assert shadowed and all(a.drawn == "new" and a.policy == "base" for a in shadowed)
    assert all(a.policy != "new" for a in results)


async def test_the_kill_switch_in_the_store_serves_only_the_baseline() -> None:
    store, metrics = MemoryStore(), Metrics()
    learner = PolicyLearner(store, metrics, np.random.default_rng(1))
    await store.bandit_set("shop", {"killed": "1", "new:alpha": "90", "new:beta": "1", "new:pulls": "89"})
    assert {(await learner.assign(plan(min_samples=0))).reason for _ in range(20)} == {"killed"}
    assert {(await learner.assign(plan(min_samples=0))).policy for _ in range(20)} == {"base"}


async def test_a_finished_call_updates_the_served_policy_logs_an_episode_and_can_blacklist(tmp_path: Path) -> None:
    store, metrics = MemoryStore(episode_log=tmp_path / "episodes.jsonl"), Metrics()
    learner = PolicyLearner(store, metrics, np.random.default_rng(2))
    model = plan(min_samples=0, blacklist_min_samples=20)
    await store.bandit_set("shop", {"base:alpha": "40", "base:beta": "10", "base:pulls": "48"})
    await store.bandit_set("shop", {"trial:alpha": "3", "trial:beta": "20", "trial:pulls": "21"})
    bad = CallSignals(hung_up_while_speaking=True, barge_ins=3, call_s=30, rating=1)
    episode = await learner.finish(model, Assignment("shop", "trial", "trial", "bandit"), "c1", "remote", bad, "dtmf")
    assert episode.reward == pytest.approx(reward(bad, model.learning.reward.config()), abs=1e-4)
    fields = await store.bandit_fields("shop")
    assert fields["trial:pulls"] == "22" and fields["trial:blacklisted"] == "1"
    assert sample(metrics, "tomsip_guard_decisions_total", dialplan="shop", decision="blacklisted") == 1
    assert all([(await learner.assign(model)).policy != "trial" for _ in range(100)])
    line = json.loads((tmp_path / "episodes.jsonl").read_text().splitlines()[-1])
    assert line["policy"] == "trial" and line["signals"]["rating"] == 1 and line["rating_source"] == "dtmf"
    assert Episode.from_dict(line) == episode


async def test_an_unreachable_store_serves_the_baseline_and_loses_only_the_episode() -> None:
    metrics = Metrics()
    learner = PolicyLearner(DownStore(), metrics)
    assignment = await learner.assign(plan())
    assert (assignment.policy, assignment.reason) == ("base", "store_unavailable")
    await learner.finish(plan(), assignment, "c1", "completed", CallSignals(task_completed=True))
    assert sample(metrics, "tomsip_episodes_total", outcome="failed") == 1


async def test_unknown_policies_in_stored_state_are_ignored_and_counted_once() -> None:
    store, metrics = MemoryStore(), Metrics()
    learner = PolicyLearner(store, metrics)
    await store.bandit_set("shop", {"retired:alpha": "50", "retired:beta": "1", "retired:pulls": "49"})
    for _ in range(5):
        assert (await learner.assign(plan(min_samples=0))).policy in {"base", "new", "trial"}
    assert sample(metrics, "tomsip_learning_state_resets_total", reason="unknown_policy") == 1


# ---- training and the episode log ----


def episode(policy: str, rating: int | None, call_id: str = "c") -> dict[str, object]:
    signals = CallSignals(task_completed=rating is not None and rating > 3, call_s=40, rating=rating)
    return Episode(call_id, "shop", policy, policy, "bandit", "completed", signals, "dtmf").to_dict()


async def test_training_replays_the_log_to_the_live_posteriors_and_restores_after_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "episodes.jsonl"
    model = plan(min_samples=0)
    live = MemoryStore(episode_log=log)
    learner = PolicyLearner(live, Metrics())
    for i, (policy, rating) in enumerate([("base", 3), ("new", 5), ("new", 4), ("trial", 1), ("base", None)]):
        raw = episode(policy, rating, f"c{i}")
        e = Episode.from_dict(raw)
        await learner.finish(model, Assignment("shop", policy, policy, "bandit"), e.call_id, e.outcome, e.signals)
    with log.open("a") as fh:
        fh.write("not json\n")
        fh.write(json.dumps(episode("retired", 5)) + "\n")
        fh.write(json.dumps({"call_id": "x", "context": "shop", "policy": "new", "signals": {"rating": 9}}) + "\n")
    result = train(await live.episodes(), contexts_of([model]))
    assert result.used == 5 and result.skipped == {"unknown_policy": 1, "bad": 1}
    state = parse_state(await live.bandit_fields("shop"), model.policy_names)
    for name, posterior in result.posteriors["shop"].items():
        assert posterior.alpha == pytest.approx(state.posteriors[name].alpha)
        assert posterior.pulls == state.posteriors[name].pulls
    restarted = MemoryStore(episode_log=log)
    await PolicyLearner(restarted, Metrics()).restore([model])
    restored = parse_state(await restarted.bandit_fields("shop"), model.policy_names).posteriors
    for name, posterior in restored.items():
        assert (posterior.alpha, posterior.beta) == pytest.approx(
            (state.posteriors[name].alpha, state.posteriors[name].beta)
        )
        assert posterior.pulls == state.posteriors[name].pulls


def test_the_jsonl_episode_log_rotates_at_its_bound(tmp_path: Path) -> None:
    log = tmp_path / "e.jsonl"
    store = MemoryStore(episode_log=log, episode_log_max=100)

    async def fill() -> list[dict[str, object]]:
        for i in range(250):
            await store.append_episode({"call_id": f"c{i}"})
        return await store.episodes()

    kept = asyncio.run(fill())
    assert len(log.read_text().splitlines()) <= 100 and (tmp_path / "e.jsonl.1").exists()
    assert kept[-1] == {"call_id": "c249"} and len(kept) <= 200


# ---- the commands ----


def learn_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tomsip", "learn", *args, "--dialplans", str(ROOT / "tests" / "dialplans")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )


@pytest.mark.redis
def test_learn_status_train_and_kill_against_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    client.hset("bandit:learning", mapping={"calm:alpha": "7", "calm:beta": "3", "calm:pulls": "8"})
    status = learn_cli("status", "--redis-url", redis_server.url, "--dialplan", "learning")
    assert status.returncode == 0, status.stderr
    calm = next(line for line in status.stdout.splitlines() if line.strip().startswith("calm"))
    assert "0.700" in calm and " 8 " in calm and "100.0%" in calm and "baseline" in calm
    log = tmp_path / "e.jsonl"
    ep = {**episode("brisk", 5), "context": "learning"}
    log.write_text("\n".join(json.dumps(ep) for _ in range(3)) + "\n")
    trained = learn_cli(
        "train", "--redis-url", redis_server.url, "--dialplan", "learning", "--log", str(log), "--write"
    )
    assert trained.returncode == 0 and "replayed 3 of 3" in trained.stdout, trained.stdout + trained.stderr
    assert client.hget("bandit:learning", "brisk:pulls") == "3" and client.hget("bandit:learning", "calm:pulls") == "0"
    killed = learn_cli("kill", "--redis-url", redis_server.url, "--dialplan", "learning")
    assert killed.returncode == 0 and client.hget("bandit:learning", "killed") == "1"
    assert "killed" in learn_cli("status", "--redis-url", redis_server.url, "--dialplan", "learning").stdout


def test_learn_status_from_the_in_process_episode_log(tmp_path: Path) -> None:
    log = tmp_path / "e.jsonl"
    log.write_text(json.dumps({**episode("calm", 5), "context": "learning"}) + "\n")
    out = learn_cli("status", "--episode-log", str(log), "--dialplan", "learning")
    assert out.returncode == 0 and "rebuilt from 1 episodes" in out.stdout, out.stdout + out.stderr
    assert learn_cli("status", "--dialplan", "learning").returncode == 2, "no log, no state: say so"


def test_spoken_ratings_are_understood() -> None:
    assert [find_rating(t) for t in ("Four.", "I'd say five stars.", "for", "2", "Three, please.")] == [4, 5, 4, 2, 3]
    assert [find_rating(t) for t in ("", "three or four", "ten", "1200 ms of speech", "seven")] == [None] * 5


async def test_feedback_for_unknown_finished_or_out_of_range_is_refused_and_counted() -> None:
    from tomsip.app import App
    from tomsip.settings import Settings
    from tomsip.store.base import CallRecord

    app = App(Settings(dialplans=ROOT / "tests" / "dialplans", pipeline="mock"), engine=object())  # type: ignore[arg-type]
    assert await app.feedback("no-such-call", 4) == "unknown_call"
    app.store.save_call(CallRecord("done-call", "ended", 1.0, 2.0, outcome="completed"), ended=True)
    assert await app.feedback("done-call", 4) == "finished"
    for bad in (0, 6, "5", 4.5, True, None):
        assert await app.feedback("done-call", bad) == "out_of_range"
    counted = {r: sample(app.metrics, "tomsip_feedback_refused_total", reason=r) for r in ("unknown_call", "finished")}
    assert counted == {"unknown_call": 1, "finished": 1}
    assert sample(app.metrics, "tomsip_feedback_refused_total", reason="out_of_range") == 6
