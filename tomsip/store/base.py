"""The Store seam: call records, the bandit's state and the learning episodes.

Call handling never waits on the store: writes are fire-and-forget from the session's point of view,
and an implementation that talks to a network service (Redis) queues them, retries, and drops with a
warning rather than stall a live call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol


@dataclass
class CallRecord:
    """What is known about one call; stored as `call:{call_id}`. No phone numbers, no transcripts."""

    call_id: str
    state: str
    started_at: float
    last_activity: float
    transport: str = ""
    codec: str = ""
    dialplan: str = ""
    turns: int = 0
    barge_ins: int = 0
    outcome: str = ""
    latencies_ms: dict[str, float] = field(default_factory=dict)
    policy: str = ""  # the conversation policy serving the call (tomsip/learn)
    node: str = ""  # the tomsip process holding the call (TOMSIP_NODE_NAME)
    direction: str = "inbound"  # or "outbound": tomsip placed the call (POST /api/calls)
    result: str = ""  # outbound: answered, busy, no_answer, rejected, failed, not_placed
    answered_by: str = ""  # outbound and answered: human, machine or unknown
    sip_status: int = 0  # outbound and not answered: the final SIP status, when there was one
    duration_s: float = 0.0  # from the answer (or the attempt) to the end
    recording: str = ""  # the consented recording's file, relative to TOMSIP_RECORDINGS_DIR

    def to_fields(self) -> dict[str, str]:
        """Flat string fields for a Redis hash."""
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            if key == "latencies_ms":
                for stage, ms in value.items():
                    out[f"latency_{stage}_ms"] = f"{ms:.1f}"
            else:
                out[key] = str(value)
        return out

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> CallRecord:
        latencies = {
            k[len("latency_") : -len("_ms")]: float(v)
            for k, v in fields.items()
            if k.startswith("latency_") and k.endswith("_ms")
        }
        return cls(
            call_id=fields["call_id"],
            state=fields.get("state", ""),
            started_at=float(fields.get("started_at", 0)),
            last_activity=float(fields.get("last_activity", 0)),
            transport=fields.get("transport", ""),
            codec=fields.get("codec", ""),
            dialplan=fields.get("dialplan", ""),
            policy=fields.get("policy", ""),
            node=fields.get("node", ""),
            turns=int(fields.get("turns", 0)),
            barge_ins=int(fields.get("barge_ins", 0)),
            outcome=fields.get("outcome", ""),
            latencies_ms=latencies,
            direction=fields.get("direction", "inbound"),
            result=fields.get("result", ""),
            answered_by=fields.get("answered_by", ""),
            sip_status=int(fields.get("sip_status", 0) or 0),
            duration_s=float(fields.get("duration_s", 0) or 0),
            recording=fields.get("recording", ""),
        )


class StoreUnavailable(RuntimeError):
    """The backing service cannot be reached right now."""


def bandit_field(policy: str, name: str) -> str:
    """A policy's field in a dialplan's bandit hash: `{policy}:alpha`, `:beta`, `:pulls`, `:blacklisted`.
    Policy names cannot contain ':' (the dialplan schema refuses it)."""
    return f"{policy}:{name}"


KILLED_FIELD = "killed"  # the kill switch of a whole dialplan, set by `tomsip learn kill`


def _positive(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and 0 < number < float("inf") else None


def increment_posterior(fields: dict[str, str], policy: str, reward: float) -> bool:
    """alpha += r, beta += 1 - r, pulls += 1 on a flat field dict, in place: the in-process twin of
    the Redis Lua script (tomsip/store/redis_store.py). Missing fields start from Beta(1, 1); fields
    that do not parse, or are not positive, are reset to it first. Returns True when it reset."""
    raw = [fields.get(bandit_field(policy, n)) for n in ("alpha", "beta", "pulls")]
    alpha, beta = _positive(raw[0]), _positive(raw[1])
    pulls = raw[2]
    ok = alpha is not None and beta is not None and pulls is not None and pulls.isdigit()
    reset = not ok and any(v is not None for v in raw)
    if not ok:
        alpha, beta, pulls = 1.0, 1.0, "0"
    assert alpha is not None and beta is not None and pulls is not None
    r = min(1.0, max(0.0, reward))
    fields[bandit_field(policy, "alpha")] = repr(alpha + r)
    fields[bandit_field(policy, "beta")] = repr(beta + 1.0 - r)
    fields[bandit_field(policy, "pulls")] = str(int(pulls) + 1)
    return reset


class Store(Protocol):
    @property
    def shared(self) -> bool:
        """Whether other processes see this state (Redis): the learning loop then reads it live instead
        of rebuilding it from the episode log, and `tomsip learn` may write to it."""
        ...

    def save_call(self, record: CallRecord, ended: bool = False) -> None:
        """Record the call's current state; never blocks, never raises. Ended records expire."""
        ...

    async def get_call(self, call_id: str) -> CallRecord | None: ...

    async def active_call_ids(self) -> list[str]: ...

    async def ping(self) -> bool: ...

    async def claim_nonce(self, nonce: str, ttl_s: int) -> bool:
        """Record a token's one-time nonce for `ttl_s` seconds; False if it was already recorded (a
        replay, also from another node on the same Redis). Raises StoreUnavailable."""
        ...

    # ---- browser conversation ids: one live conversation per id, across every node ----

    async def claim_call_id(self, call_id: str, owner: str, ttl_s: float) -> bool:
        """Take `call_id` for `owner` (one conversation on one node) for `ttl_s` seconds, atomically;
        False if someone holds it. The owner refreshes it while the conversation lives, so a dead
        node's claim lapses by itself. Raises StoreUnavailable."""
        ...

    async def refresh_call_ids(self, claims: dict[str, str], ttl_s: float) -> None:
        """Extend the claims (call id -> owner) that are still held by those owners."""
        ...

    async def release_call_id(self, call_id: str, owner: str) -> None:
        """Give `call_id` back, if `owner` still holds it; never raises."""
        ...

    # ---- the learning loop: one flat hash per dialplan, and the episode log ----

    async def bandit_fields(self, context: str) -> dict[str, str]:
        """The bandit state of dialplan `context` (see bandit_field); raises StoreUnavailable."""
        ...

    async def bandit_update(self, context: str, policy: str, reward: float) -> bool:
        """Add one reward to a policy's posterior atomically (safe with several processes on one Redis);
        True when its stored state was corrupt and was reset first. Raises StoreUnavailable."""
        ...

    async def bandit_set(self, context: str, fields: dict[str, str], replace: bool = False) -> None:
        """Write fields (a blacklisting, the kill switch, trained posteriors); `replace` drops the rest."""
        ...

    async def append_episode(self, episode: dict[str, object]) -> None:
        """Append one finished call's episode to the bounded log. Raises StoreUnavailable."""
        ...

    async def episodes(self) -> list[dict[str, object]]:
        """The whole episode log, oldest first (what `tomsip learn train` replays)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Flush what is queued (bounded in time) and release connections."""
        ...
