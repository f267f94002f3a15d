"""A caller that converses: it speaks each utterance when the assistant has been quiet for a while.

SIPp does the signalling; this drives the media through an RtpPeer (the port SIPp advertised), so the
conversation does not depend on guessing how long the assistant will talk. Utterances come from the
pcaps in sipp_scenarios/pcap (20 ms PCMU packets); they go out as one RTP stream whose sequence
numbers and timestamps keep counting across utterances, with silence packets between them, like a
real phone. Optionally the assistant's own audio is mixed back in, delayed and attenuated (echo), and
optionally later utterances barge in: they start `barge_in_ms` into the assistant's reply.

Every packet sent is kept with its send time and level (`sent`), and the RtpPeer keeps every packet
received with its arrival time, so bench/latency measures turn latency and barge-in reaction at the
caller's socket, i.e. on the wire.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from tests.support.pcap import read_udp, rtp_packet
from tests.support.rtp import RtpPeer
from tomsip.audio.frames import rms_dbfs
from tomsip.audio.g711 import pcm_to_ulaw, ulaw_to_pcm

PCAPS = Path(__file__).resolve().parents[2] / "sipp_scenarios" / "pcap"
SILENCE_ULAW = pcm_to_ulaw(bytes(320))


def utterance(name: str) -> list[bytes]:
    """The PCMU payloads of sipp_scenarios/pcap/<name>_pcmu.pcap."""
    return [p.payload[12:] for p in read_udp(str(PCAPS / f"{name}_pcmu.pcap"))]


def level_dbfs(ulaw: bytes) -> float:
    return rms_dbfs(ulaw_to_pcm(ulaw))


class ConversingCaller:
    def __init__(
        self,
        peer: RtpPeer,
        utterances: list[list[bytes]],
        quiet_ms: int = 1200,
        echo_db: float | None = None,
        echo_delay_ms: int = 60,
        timeout_s: float = 60,
        barge_in_ms: int | None = None,
    ) -> None:
        self.peer = peer
        self.utterances = utterances
        self.quiet_ms = quiet_ms
        self.echo_db = echo_db
        self.echo_delay_frames = echo_delay_ms // 20
        self.timeout_s = timeout_s
        self.barge_in_ms = barge_in_ms
        self.spoke_at: list[tuple[float, float]] = []  # (first, last packet of each utterance), monotonic
        self.sent: list[tuple[float, float, int]] = []  # (send time, level dBFS, utterance index or -1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ConversingCaller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _assistant_talking_for(self, since: float) -> float:
        """Seconds since the server's first voiced packet after `since`; -1 if none yet."""
        for p in self.peer.packets:
            if p.arrival > since and p.pt == 0 and level_dbfs(p.payload) > -45:
                return time.monotonic() - p.arrival
        return -1.0

    def _ready_to_speak(self, index: int) -> bool:
        said_last = self.spoke_at[-1][1] if self.spoke_at else 0.0
        if self.barge_in_ms is not None and index > 0:
            return self._assistant_talking_for(said_last) >= self.barge_in_ms / 1000
        return self._assistant_quiet_for(said_last) >= self.quiet_ms / 1000

    def _assistant_quiet_for(self, since: float) -> float:
        """Seconds since the server's last voiced packet, if it said something after `since` (it
        answered what we said last); -1 if it has not yet."""
        for p in reversed(self.peer.packets):
            if p.arrival <= since:
                break
            if p.pt == 0 and level_dbfs(p.payload) > -45:
                return time.monotonic() - p.arrival
        return -1.0

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while self.peer.server_addr is None and time.monotonic() < deadline:
            time.sleep(0.02)
        dest = self.peer.server_addr
        if dest is None:
            return
        seq = ts = 0
        start = time.monotonic()
        pending = list(self.utterances)
        current: list[bytes] = []
        first_sent = 0.0
        while not self._stop.is_set() and time.monotonic() < deadline:
            if not current and pending and self._ready_to_speak(len(self.spoke_at)):
                current = list(pending.pop(0))
                first_sent = time.monotonic()
            speaking = len(self.spoke_at) if current else -1
            payload = current.pop(0) if current else SILENCE_ULAW
            if self.echo_db is not None:
                payload = self._mix_echo(payload)
            time.sleep(max(0.0, start + seq * 0.02 - time.monotonic()))
            try:
                self.peer.sock.sendto(rtp_packet(0, seq, ts, 0xCA11E5, payload, marker=seq == 0), dest)
            except OSError:
                return
            self.sent.append((time.monotonic(), level_dbfs(payload), speaking))
            if first_sent and not current:
                self.spoke_at.append((first_sent, time.monotonic()))
                first_sent = 0.0
            seq += 1
            ts += 160

    def _mix_echo(self, payload: bytes) -> bytes:
        """Add the server's audio from `echo_delay` ago, `echo_db` down, to what the caller sends."""
        received = [p for p in self.peer.packets[-(self.echo_delay_frames + 8) :] if p.pt == 0]
        if len(received) <= self.echo_delay_frames:
            return payload
        echo = np.frombuffer(ulaw_to_pcm(received[-1 - self.echo_delay_frames].payload), "<i2").astype(np.float64)
        mine = np.frombuffer(ulaw_to_pcm(payload), "<i2").astype(np.float64)
        n = min(len(echo), len(mine))
        mixed = mine[:n] + echo[:n] * 10 ** (-self.echo_db / 20)  # type: ignore[operator]
        return pcm_to_ulaw(np.clip(mixed, -32768, 32767).astype("<i2").tobytes())
