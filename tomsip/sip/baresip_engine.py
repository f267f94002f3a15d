"""SipEngine on baresip-python 0.5.2a3.

The stack's quirks (shared/research/sip-stack.md) are all handled here and nowhere else:
- one UserAgent per transport, each `catchall=yes` so that any called number reaches us;
- `video_codecs=none`, or the stack re-INVITEs to drop video 0.1 s after answering;
- `ausrc_srate 16000`: we always write internal-format audio and the stack resamples TX;
- the stack's own call cap stays above ours, so that refusals happen here where they are counted;
- the INVITE's Via and To are exposed to learn the source host and the called number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from baresip import Account, BaresipError, Config, NoLocalAddressError, Runtime, UserAgent
from baresip.call import Call

from tomsip.audio.media_clock import MediaClock
from tomsip.audio.port import AudioPort
from tomsip.monitor.logs import mask_uri
from tomsip.monitor.metrics import Metrics
from tomsip.settings import Settings
from tomsip.sip.baresip_port import BaresipPort
from tomsip.sip.engine import CallInfo, DialFailed, NoTrunk, OnCall, OutgoingCall
from tomsip.sip.headers import uri_user, via_source
from tomsip.sip.outgoing import BaresipOutgoing, EarlyOutcomes
from tomsip.sip.registration import TrunkConfig, TrunkRegistration

log = logging.getLogger("tomsip.sip")

SipTransport = Literal["udp", "tcp", "tls"]

CODEC_SPECS = {"pcmu": "pcmu", "pcma": "pcma", "g722": "g722/16000/1", "opus": "opus/48000/2"}
ESTABLISH_TIMEOUT_S = 10.0
STACK_LINES = 255  # a user agent's call lines in the stack; the 256th INVITE gets its "500 Call Error"


class EngineStartError(RuntimeError):
    pass


class BaresipIncoming:
    def __init__(self, call: Call, info: CallInfo, engine: BaresipEngine) -> None:
        self._call = call
        self.info = info
        self._engine = engine

    async def answer(self) -> AudioPort:
        await self._call.answer()
        await self._call.wait_established(timeout=ESTABLISH_TIMEOUT_S)
        replaces = "replaces" in self._call.headers.get("Supported", "").lower()
        return BaresipPort(self._call, self.info.call_id, self._engine.clock, self._engine.metrics, replaces)

    async def refuse(self) -> None:
        try:
            await self._call.reject()
        except BaresipError:
            pass  # cancelled meanwhile


class BaresipEngine:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = MediaClock(metrics.media_tick_seconds, metrics.media_tick_lateness_seconds)
        self._runtime: Runtime | None = None
        self._on_call: OnCall | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._calls: dict[int, Call] = {}  # every call the stack gave us that may not be closed yet
        self._registration: TrunkRegistration | None = None
        self._proxy_ua: UserAgent | None = None  # outbound calls through TOMSIP_OUTBOUND_PROXY
        self._early = EarlyOutcomes()
        self._local_ua: UserAgent | None = None  # this node's own UDP identity (warm-transfer agents)

    def _config(self) -> Config:
        s = self.settings
        transports = ["udp", "tcp"] + (["tls"] if s.sip_tls_port else [])
        lines = [
            f"sip_listen {s.sip_host}:{s.sip_port}",
            f"sip_transports {','.join(transports)}",
            "ausrc_srate 16000",
            "ausrc_channels 1",
            f"rtp_ports {s.rtp_ports}",
            f"audio_jitter_buffer_type {s.jitter_buffer}",
            f"audio_jitter_buffer_ms {s.jitter_buffer_ms}",
        ]
        if s.sip_tls_port and s.sip_tls_cert:
            lines.append(f"sip_certificate {s.sip_tls_cert}")
        return Config(
            net_interface=s.sip_host,
            # Above ours, so that calls past the limit reach tomsip's admission and are refused there.
            max_concurrent_calls=STACK_LINES,
            expose_headers=("Via", "To", "Supported"),
            rtp_timeout=s.rtp_timeout_s,
            native_log_level="warning",
            extra_config_text="\n".join(lines) + "\n",
        )

    def _account(self, transport: SipTransport, port: int) -> Account:
        s = self.settings
        return Account(
            user=s.sip_user,
            domain=f"{s.sip_host}:{port}",
            password="",
            reg_interval=0,
            transport=transport,
            audio_codecs=tuple(CODEC_SPECS[c] for c in s.codecs),
            dtmf_mode=s.dtmf_mode,
            extra_params=("catchall=yes", "video_codecs=none"),
        )

    async def start(self, on_call: OnCall) -> None:
        s = self.settings
        if s.sip_tls_cert and s.sip_tls_port and not s.sip_tls_cert.is_file():
            raise EngineStartError(f"TLS certificate {s.sip_tls_cert} not found (certs/make-dev-cert.sh makes one)")
        self._on_call = on_call
        self._runtime = Runtime(native_log_level="warning")
        try:
            await self._runtime.start(self._config())
        except BaresipError as exc:
            raise EngineStartError(f"the SIP stack did not start: {exc}") from exc
        self._runtime.subscribe(self._early)
        transports: list[tuple[SipTransport, int]] = [("udp", s.sip_port), ("tcp", s.sip_port)]
        if s.sip_tls_port:
            transports.append(("tls", s.sip_tls_port))
        for transport, port in transports:
            ua = await UserAgent.create(self._runtime, self._account(transport, port), transfer_policy="reject")
            ua.on_incoming(lambda call, t=transport: self._incoming(call, t))
            if transport == "udp":
                self._local_ua = ua
        self.clock.start()
        if s.trunk_registrar:
            self._registration = TrunkRegistration(self._runtime, trunk_config(s), self.metrics)
            await self._registration.start()
        elif s.outbound_proxy:
            self._proxy_ua = await UserAgent.create(self._runtime, self._proxy_account(), transfer_policy="reject")
        log.info("SIP listening on %s:%d (udp, tcp%s)", s.sip_host, s.sip_port, ", tls" if s.sip_tls_port else "")

    def _proxy_account(self) -> Account:
        s = self.settings
        assert s.outbound_proxy
        return Account(
            user=s.sip_user,
            domain=s.outbound_domain or s.outbound_proxy,
            password="",
            registrar=f"sip:{s.outbound_proxy};lr",
            reg_interval=0,
            transport="udp",
            audio_codecs=tuple(CODEC_SPECS[c] for c in s.codecs),
            dtmf_mode=s.dtmf_mode,
            extra_params=("video_codecs=none",),
        )

    def can_dial(self) -> bool:
        return bool(self.settings.trunk_registrar or self.settings.outbound_proxy)

    async def dial(self, number: str, call_id: str, caller_id: str | None) -> OutgoingCall:
        """INVITE sip:number@trunk-domain from the registered trunk account, or through the proxy."""
        s = self.settings
        if self._registration is not None and self._registration.ua is not None:
            ua, domain = self._registration.ua, s.trunk_domain or s.trunk_registrar
        elif self._proxy_ua is not None:
            ua, domain = self._proxy_ua, s.outbound_domain or s.outbound_proxy
        else:
            raise NoTrunk("no outbound trunk: set TOMSIP_OUTBOUND_PROXY or TOMSIP_TRUNK_REGISTRAR")
        headers = {"P-Asserted-Identity": f"<sip:{caller_id}@{domain}>"} if caller_id else None
        return await self._place(ua, f"sip:{number}@{domain}", headers, call_id)

    async def _place(self, ua: UserAgent, uri: str, headers: dict[str, str] | None, call_id: str) -> OutgoingCall:
        try:
            call = await ua.dial(uri, headers)
        except NoLocalAddressError as exc:
            raise DialFailed("failed", None, "no route to the trunk") from exc
        except BaresipError as exc:
            raise DialFailed("failed", None, str(exc)) from exc
        self._calls = {h: c for h, c in self._calls.items() if c.state.value != "closed"}
        self._calls[call.handle] = call

        def port(answered: Call) -> AudioPort:
            return BaresipPort(answered, call_id, self.clock, self.metrics)

        return BaresipOutgoing(call, port, self._early.take(call.handle))

    async def dial_agent(self, uri: str, call_id: str) -> OutgoingCall:
        """A warm transfer's call to the human agent: the URI as the dialplan gives it, from the trunk
        account or the outbound proxy when there is one, else straight from this node."""
        if self._registration is not None and self._registration.ua is not None:
            ua = self._registration.ua
        elif self._proxy_ua is not None:
            ua = self._proxy_ua
        elif self._local_ua is not None:
            ua = self._local_ua
        else:
            raise NoTrunk("the SIP engine is not started")
        return await self._place(ua, uri, None, call_id)

    def _incoming(self, call: Call, transport: str) -> None:
        headers = call.headers
        info = CallInfo(
            call_id=call.call_id or f"handle-{call.handle}",
            caller=call.peer or "",
            called=uri_user(headers.get("To")),
            source=via_source(headers.get("Via")),
            transport=transport,
        )
        log.info(
            "incoming call from=%s transport=%s", mask_uri(info.caller), transport, extra={"call_id": info.call_id}
        )
        assert self._on_call is not None
        self._calls = {h: c for h, c in self._calls.items() if c.state.value != "closed"}
        self._calls[call.handle] = call
        task = asyncio.ensure_future(self._on_call(BaresipIncoming(call, info, self)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if self._registration:
            await self._registration.stop()
        await self.clock.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._end_open_calls()
        if self._runtime is not None:
            await self._runtime.close()

    async def _end_open_calls(self) -> None:
        """Before the runtime goes: every call still open in the stack (ringing, failed half-way, never
        acknowledged) is ended, so that the stack is not torn down under calls in flight."""
        open_calls = [c for c in self._calls.values() if c.state.value != "closed"]
        self._calls.clear()

        async def end(call: Call) -> None:
            with contextlib.suppress(BaresipError):
                await call.hangup()

        if open_calls:
            log.info("ending %d calls still open in the stack", len(open_calls))
            await asyncio.wait([asyncio.ensure_future(end(c)) for c in open_calls], timeout=3)


def trunk_config(s: Settings) -> TrunkConfig:
    """The trunk account from the settings (which refuse a registrar without user and password)."""
    assert s.trunk_registrar and s.trunk_user and s.trunk_password
    return TrunkConfig(
        s.trunk_registrar,
        s.trunk_user,
        s.trunk_password.get_secret_value(),
        s.trunk_domain or "",
        s.trunk_auth_user,
        s.trunk_transport,
        s.trunk_register_interval_s,
    )
