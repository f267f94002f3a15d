"""The learning loop end to end: a real SIPp call, served under a policy the bandit chose, ends with
the caller pressing a rating digit, and the rating reaches that policy's posterior in a real Redis."""

from __future__ import annotations

import json
import time

import pytest
import redis

from tests.support.redis_server import RedisServer
from tests.support.rtp import RtpPeer
from tests.support.sipp import run_sipp
from tests.support.tones import find_tones, near
from tomsip.call.dialplan import DialplanModel
from tomsip.learn.reward import CallSignals, reward


def wait_for(predicate, timeout_s: float = 5.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


@pytest.mark.redis
def test_a_rating_digit_at_the_end_updates_the_policy_that_served_the_call(
    make_server, redis_server: RedisServer, rtp_peer: RtpPeer
) -> None:  # type: ignore[no-untyped-def]
    server = make_server(TOMSIP_REDIS_URL=redis_server.url)
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    result = run_sipp("rating", server.sip_port, "learn", [rtp_peer.port])
    assert result.ok, result.errors  # passes only if the server's BYE arrives after the rating

    tones = find_tones(rtp_peer.decode())
    order = [hz for hz in (2600, 1800, 350) if any(near(t.hz, hz) for t in tones)]
    assert order == [2600, 1800, 350], tones  # "#" acknowledged, the rating question, goodbye
    starts = [next(t.start_ms for t in tones if near(t.hz, hz)) for hz in order]
    assert starts == sorted(starts)

    episode = wait_for(lambda: client.xrange("episodes"))
    assert len(episode) == 1
    logged = json.loads(episode[0][1]["json"])
    assert logged["context"] == "learning" and logged["outcome"] == "completed"
    assert logged["signals"]["rating"] == 4 and logged["rating_source"] == "dtmf"
    policy = logged["policy"]
    assert policy in ("calm", "brisk")
    record = client.hgetall(f"call:{logged['call_id']}")
    assert record["policy"] == policy and record["dialplan"] == "learning"

    bandit = client.hgetall("bandit:learning")
    other = "brisk" if policy == "calm" else "calm"
    assert bandit[f"{policy}:pulls"] == "1" and f"{other}:pulls" not in bandit
    plan = DialplanModel(name="learning")
    signals = CallSignals(**logged["signals"])
    assert float(bandit[f"{policy}:alpha"]) == pytest.approx(1 + reward(signals, plan.learning.reward.config()))
    assert reward(signals) > reward(CallSignals(**{**logged["signals"], "rating": 1}))

    assert server.wait_metric('tomsip_ratings_total{source="dtmf"}', 1) == 1
    assert server.metric('tomsip_ratings_rejected_total{source="dtmf"}') == 1  # the 7
    assert server.metric('tomsip_episodes_total{outcome="logged"}') == 1
    selected = [k for k in server.metrics() if k.startswith("tomsip_policy_selections_total{")]
    assert any(f'policy="{policy}"' in k and 'dialplan="learning"' in k for k in selected)
