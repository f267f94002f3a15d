"""The Store seam and the call record it keeps.

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
            turns=int(fields.get("turns", 0)),
            barge_ins=int(fields.get("barge_ins", 0)),
            outcome=fields.get("outcome", ""),
            latencies_ms=latencies,
        )


class StoreUnavailable(RuntimeError):
    """The backing service cannot be reached right now."""


class Store(Protocol):
    def save_call(self, record: CallRecord, ended: bool = False) -> None:
        """Record the call's current state; never blocks, never raises. Ended records expire."""
        ...

    async def get_call(self, call_id: str) -> CallRecord | None: ...

    async def active_call_ids(self) -> list[str]: ...

    async def ping(self) -> bool: ...

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Flush what is queued (bounded in time) and release connections."""
        ...
