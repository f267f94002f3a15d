"""Many conversing callers on one event loop: the media side of a staggered SIPp load.

SIPp places the calls (one per line of its injection file, each advertising one of these callers'
RTP ports); each caller here waits for the server's first packet, then sends a packet every 20 ms,
speaking its next utterance once the assistant has been quiet for a natural pause. One loop and one
clock for all callers keeps the load generator cheap (it shares the cores with the server under
test) and its timing honest: every packet's send and arrival time is taken at the socket.

A caller whose INVITE was refused never hears a packet and says nothing.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from tests.support.pcap import rtp_packet
from tests.support.rtp import parse_rtp
from tomsip.audio.frames import rms_dbfs
from tomsip.audio.g711 import pcm_to_ulaw, ulaw_to_pcm

VOICED_DBFS = -45.0
SILENCE = pcm_to_ulaw(bytes(320))


Utterance = list[tuple[bytes, bool]]  # 20 ms PCMU payloads, each with whether it is voiced


def utterance_packets(pcm8k: bytes, trailing_silence_ms: int = 200) -> Utterance:
    """An utterance as 20 ms PCMU payloads of 8 kHz PCM16 audio, levels worked out once."""
    ulaw = pcm_to_ulaw(pcm8k + bytes(16 * trailing_silence_ms))
    payloads = [ulaw[i : i + 160] for i in range(0, len(ulaw) - 159, 160)]
    return [(p, rms_dbfs(ulaw_to_pcm(p)) > VOICED_DBFS) for p in payloads]


@dataclass
class Turn:
    index: int
    last_voiced_sent: float = 0.0
    reply_at: float | None = None  # the first voiced packet received after the utterance


@dataclass
class CrowdCaller:
    """One caller's media and what it observed."""

    utterances: list[Utterance]
    quiet_s: float
    port: int = 0
    server: tuple[str, int] | None = None
    first_heard: float | None = None
    last_heard: float = 0.0
    last_voiced_heard: float = 0.0
    turns: list[Turn] = field(default_factory=list)
    voiced_heard: list[float] = field(default_factory=list)  # arrival times of voiced packets
    _speaking: Utterance = field(default_factory=list)
    _seq: int = 0
    _transport: asyncio.DatagramTransport | None = None

    @property
    def answered(self) -> bool:
        return self.first_heard is not None

    @property
    def done_speaking(self) -> bool:
        return len(self.turns) == len(self.utterances) and not self._speaking

    def heard(self, data: bytes, addr: tuple[str, int]) -> None:
        now = time.monotonic()
        packet = parse_rtp(data, now, addr)
        if packet is None or packet.pt != 0:
            return
        if self.server is None:
            self.server, self.first_heard = addr, now
        self.last_heard = now
        if rms_dbfs(ulaw_to_pcm(packet.payload)) > VOICED_DBFS:
            self.last_voiced_heard = now
            self.voiced_heard.append(now)
            turn = self.turns[-1] if self.turns else None
            if turn is not None and turn.reply_at is None and not self._speaking and now > turn.last_voiced_sent:
                turn.reply_at = now

    def tick(self, now: float) -> None:
        """Send this 20 ms packet: the next piece of an utterance, or silence."""
        if self.server is None or self._transport is None:
            return
        if not self._speaking and len(self.turns) < len(self.utterances) and self._assistant_done(now):
            self._speaking = list(self.utterances[len(self.turns)])
            self.turns.append(Turn(len(self.turns)))
        payload = SILENCE
        if self._speaking:
            payload, voiced = self._speaking.pop(0)
            if voiced:
                self.turns[-1].last_voiced_sent = now
        self._transport.sendto(rtp_packet(0, self._seq & 0xFFFF, self._seq * 160, 0xC0FFEE, payload), self.server)
        self._seq += 1

    def _assistant_done(self, now: float) -> bool:
        """The assistant has said something since our last utterance and been quiet for a pause."""
        since = self.turns[-1].last_voiced_sent if self.turns else 0.0
        return self.last_voiced_heard > since and now - self.last_voiced_heard >= self.quiet_s


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, caller: CrowdCaller) -> None:
        self.caller = caller

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.caller.heard(data, addr)


class CallerCrowd:
    def __init__(self, count: int, utterances: list[Utterance], quiet_s: float = 0.8, seed: int = 7) -> None:
        rng = random.Random(seed)
        # A natural pause varies from person to person: 0.8 to 1.2 s after the assistant stops.
        self.callers = [CrowdCaller(utterances, quiet_s + rng.uniform(0, 0.4)) for _ in range(count)]

    async def open(self) -> list[int]:
        loop = asyncio.get_running_loop()
        for caller in self.callers:
            transport, _ = await loop.create_datagram_endpoint(
                lambda c=caller: _Receiver(c), local_addr=("127.0.0.1", 0)
            )
            caller._transport = transport
            caller.port = transport.get_extra_info("sockname")[1]
        return [c.port for c in self.callers]

    async def run(self, until: asyncio.Future[object], deadline_s: float) -> None:
        """Tick every 20 ms until `until` is done (SIPp finished) or the deadline passes."""
        start = time.monotonic()
        tick = 0
        while not until.done() and time.monotonic() - start < deadline_s:
            tick += 1
            await asyncio.sleep(max(0.0, start + tick * 0.02 - time.monotonic()))
            now = time.monotonic()
            for caller in self.callers:
                caller.tick(now)

    def close(self) -> None:
        for caller in self.callers:
            if caller._transport is not None:
                caller._transport.close()
