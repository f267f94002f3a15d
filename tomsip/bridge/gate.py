"""The door every browser session comes through (WebSocket stream and WebRTC signalling alike):
connection attempts limited per source address, then the token verified and its nonce spent.

Refusals happen before any upgrade, as HTTP errors with a JSON body that names the reason:
429 for too many attempts, 401 for every token problem (including a replayed nonce and a store that
cannot be reached to check it: browser sessions fail closed), 409 for a conversation id in use on
any node sharing the store (tomsip/store/call_ids.py),
503 (with Retry-After) while the node drains or its speech workers carry all the conversations they can.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from tomsip.monitor.metrics import Metrics
from tomsip.security.token_bucket import KeyedTokenBuckets
from tomsip.security.tokens import AuthRefused, Claims, TokenVerifier
from tomsip.store.base import Store, StoreUnavailable

log = logging.getLogger("tomsip.bridge")

# fullmatch, never match with "$": "$" also matches before a trailing newline ("abc\n" would pass).
CALL_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


RETRY_AFTER_S = 5  # a busy node: a conversation ends every few seconds


def refuse(status: int, reason: str) -> web.HTTPException:
    body = json.dumps({"error": "unauthorized" if status == 401 else "refused", "reason": reason})
    kind = {
        401: web.HTTPUnauthorized,
        409: web.HTTPConflict,
        429: web.HTTPTooManyRequests,
        503: web.HTTPServiceUnavailable,
    }.get(status, web.HTTPBadRequest)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return kind(text=body, content_type="application/json", headers=headers)


def token_of(request: web.Request) -> str | None:
    """`?token=...`, or a Sec-WebSocket-Protocol value that is a JWT (browsers cannot set headers on
    a WebSocket), or `Authorization: Bearer` for plain HTTP clients."""
    token = request.query.get("token")
    if token:
        return token
    for proto in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        proto = proto.strip()
        if proto.count(".") == 2:
            return proto
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


class CallIdClaims(Protocol):
    """One live conversation per call id across every node (the app, over the shared store)."""

    async def claim(self, call_id: str) -> bool:
        """Take the id for a new conversation; False if one holds it. Raises StoreUnavailable."""
        ...

    def release(self, call_id: str) -> None:
        """The conversation (or the attempt) that held the id is over."""
        ...


@dataclass(frozen=True)
class GateConfig:
    """What the gate reads of the settings (built in the composition root)."""

    connect_rate: float  # new connections a second per client address (TOMSIP_WS_CONNECT_RATE)
    connect_burst: float
    trusted_proxies: tuple[str, ...]  # whose X-Forwarded-For is believed
    jwt_leeway_s: float


class BrowserGate:
    def __init__(
        self,
        config: GateConfig,
        verifier: TokenVerifier | None,
        store: Store,
        metrics: Metrics,
        call_ids: CallIdClaims,
        busy: Callable[[str | None], str | None] = lambda to: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verifier = verifier
        self._store = store
        self._metrics = metrics
        self._call_ids = call_ids
        self._busy = busy  # why this node takes no new conversation to a number now (draining, full), or None
        self._clock = clock
        self._leeway = config.jwt_leeway_s
        self._attempts = KeyedTokenBuckets(config.connect_rate, config.connect_burst)
        self._proxies = set(config.trusted_proxies)

    def source(self, request: web.Request) -> str:
        """The client's address: the peer, or what a trusted proxy says the client was."""
        peer = request.remote or "unknown"
        forwarded = request.headers.get("X-Forwarded-For", "")
        if peer in self._proxies and forwarded:
            return forwarded.split(",")[-1].strip()[:64] or peer
        return peer

    async def admit(self, request: web.Request, call_id: str) -> Claims:
        self._refuse_if_busy(None)
        if not self._attempts.allow(self.source(request), self._clock()):
            self._metrics.rate_limit_hits.labels(scope="connect").inc()
            self._metrics.websocket_connections.labels(outcome="refused").inc()
            raise refuse(429, "too_many_attempts")
        try:
            claims = await self._check(request, call_id)
        except AuthRefused as exc:
            self._metrics.auth_failures.labels(reason=exc.reason).inc()
            self._metrics.websocket_connections.labels(outcome="refused").inc()
            shown = call_id if CALL_ID.fullmatch(call_id) else "-"  # never echo arbitrary URL text into logs
            log.warning("browser session refused reason=%s", exc.reason, extra={"call_id": shown})
            raise refuse(401, exc.reason) from None
        self._metrics.auth_success.inc()
        self._refuse_if_busy(claims.to)
        try:
            taken = await self._call_ids.claim(call_id)
        except StoreUnavailable:
            self._metrics.websocket_connections.labels(outcome="refused").inc()
            raise refuse(503, "store_unavailable") from None
        if not taken:  # a live conversation has this id, on this node or another
            self._metrics.websocket_connections.labels(outcome="refused").inc()
            raise refuse(409, "call_id_in_use")
        return claims

    def release(self, call_id: str) -> None:
        """The session admitted for `call_id` is over (or never started): its id is free again."""
        self._call_ids.release(call_id)

    def _refuse_if_busy(self, to: str | None) -> None:
        """503 with Retry-After while the node drains (checked before the token) or the number's
        pipeline carries all the conversations it can (checked once the token names the number; the
        token is spent: a client retries with a new one)."""
        busy = self._busy(to)
        if busy is not None:
            self._metrics.websocket_connections.labels(outcome="refused").inc()
            self._metrics.admission_refusals.labels(reason=busy).inc()
            raise refuse(503, busy)

    async def _check(self, request: web.Request, call_id: str) -> Claims:
        if self._verifier is None:
            raise AuthRefused("auth_not_configured")
        if not CALL_ID.fullmatch(call_id):
            raise AuthRefused("call_id_mismatch", "malformed call id")
        try:
            claims = self._verifier.verify(token_of(request), call_id)
        except AuthRefused:
            raise
        except Exception as exc:  # noqa: BLE001 - hostile input must end as a 401, never a 500
            raise AuthRefused("malformed", type(exc).__name__) from None
        ttl = int(claims.exp - time.time() + self._leeway) + 1
        try:
            fresh = await self._store.claim_nonce(claims.nonce, max(1, ttl))
        except StoreUnavailable:
            raise AuthRefused("store_unavailable", "cannot check the token's nonce") from None
        if not fresh:
            raise AuthRefused("replayed")
        return claims
