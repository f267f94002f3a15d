"""Digest-authenticated REGISTER toward a SIP trunk, kept alive.

The stack refreshes a registration by itself once it holds; this loop covers the first registration
and every later failure: a clear log line (status and reason, never the password), a metric, and a
retry with backoff until it holds again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Literal

from baresip import Account, RegistrationError, Runtime, UserAgent
from baresip.events import Event, StackEvent

from tomsip.monitor.metrics import Metrics
from tomsip.tasks import cancel_and_wait

log = logging.getLogger("tomsip.sip.register")

RETRY_MIN_S = 2.0
RETRY_MAX_S = 60.0


@dataclass(frozen=True)
class TrunkConfig:
    """The trunk account (TOMSIP_TRUNK_*), built where the engine starts."""

    registrar: str
    user: str
    password: str = field(repr=False)
    domain: str = ""  # default: the registrar
    auth_user: str | None = None
    transport: Literal["udp", "tcp", "tls"] = "udp"
    register_interval_s: int = 300


class TrunkRegistration:
    def __init__(self, runtime: Runtime, config: TrunkConfig, metrics: Metrics) -> None:
        self._runtime = runtime
        self._config = config
        self._metrics = metrics
        self._ua: UserAgent | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.holding = False

    def _account(self) -> Account:
        c = self._config
        return Account(
            user=c.user,
            domain=c.domain or c.registrar,
            password=c.password,
            registrar=c.registrar,
            reg_interval=c.register_interval_s,
            transport=c.transport,
            auth_user=c.auth_user,
            audio_codecs=("pcmu", "pcma", "g722/16000/1", "opus/48000/2"),
            extra_params=("catchall=yes", "video_codecs=none"),
        )

    @property
    def ua(self) -> UserAgent | None:
        """The trunk's user agent, which outbound calls go out from (digest-challenged INVITEs too)."""
        return self._ua

    async def start(self) -> None:
        self._ua = await UserAgent.create(self._runtime, self._account(), transfer_policy="reject")
        self._ua.on(self._on_event)
        self._task = asyncio.get_running_loop().create_task(self._keep_registered(), name="trunk-register")

    def _on_event(self, event: StackEvent) -> None:
        if event.event is Event.REGISTER_FAIL and self.holding:
            self.holding = False
            self._metrics.registered.set(0)
            self._metrics.registration_failures.inc()
            log.error("trunk registration refresh failed: %s", event.text or "no reason given")
            self._lost.set()

    async def _keep_registered(self) -> None:
        assert self._ua is not None
        delay = RETRY_MIN_S
        registrar = self._config.registrar
        while True:
            try:
                await self._ua.register()
            except RegistrationError as exc:
                self.holding = False
                self._metrics.registered.set(0)
                self._metrics.registration_failures.inc()
                log.error(
                    "trunk registration to %s failed: status=%s reason=%s; retrying in %.0f s",
                    registrar,
                    exc.status,
                    exc.reason or exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.holding = True
            self._metrics.registered.set(1)
            log.info("registered with trunk %s", registrar)
            delay = RETRY_MIN_S
            self._lost.clear()
            await self._lost.wait()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._ua is not None and self.holding:
            try:
                await self._ua.unregister(timeout=2)
            except Exception:  # noqa: BLE001 - shutting down anyway
                log.warning("trunk unregister failed")
