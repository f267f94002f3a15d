"""A test caller's media end: records every RTP packet the server sends, decodes it, and can send audio.

SIPp does the signalling (and plays pcaps for G.711); the SDP it sends names this peer's port, so the
server's RTP lands here with arrival times. For G.722 and Opus, where SIPp has no encoder, this peer
also sends the caller's audio.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np

from tomsip.audio.g711 import alaw_to_pcm, ulaw_to_pcm


@dataclass(frozen=True)
class RtpIn:
    arrival: float
    pt: int
    seq: int
    ts: int
    ssrc: int
    marker: bool
    payload: bytes
    source: tuple[str, int]


def parse_rtp(data: bytes, arrival: float, source: tuple[str, int]) -> RtpIn | None:
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    cc = data[0] & 0x0F
    offset = 12 + 4 * cc
    if data[0] & 0x10 and len(data) >= offset + 4:
        offset += 4 + 4 * struct.unpack("!H", data[offset + 2 : offset + 4])[0]
    pt = data[1] & 0x7F
    if pt >= 72 and pt <= 79:  # RTCP on the RTP port (rtcp-mux)
        return None
    seq, ts, ssrc = struct.unpack("!HII", data[2:12])
    return RtpIn(arrival, pt, seq, ts, ssrc, bool(data[1] & 0x80), data[offset:], source)


class RtpPeer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets: list[RtpIn] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            packet = parse_rtp(data, time.monotonic(), addr)
            if packet is not None:
                self.packets.append(packet)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    @property
    def server_addr(self) -> tuple[str, int] | None:
        return self.packets[0].source if self.packets else None

    def audio_packets(self) -> list[RtpIn]:
        """Media packets (not telephone-events, not comfort noise), in arrival order."""
        return [p for p in self.packets if p.pt in (0, 8, 9) or (96 <= p.pt <= 127 and len(p.payload) > 4)]

    def payload_types(self) -> set[int]:
        return {p.pt for p in self.packets}

    def decode(self, rate: int = 8000) -> np.ndarray:
        """The server's audio as float samples at `rate`, laid out by RTP timestamp (gaps are zeros)."""
        packets = [p for p in self.packets if p.pt in (0, 8, 9, 111, 96, 97, 98, 99, 100, 102, 103, 104, 105)]
        if not packets:
            return np.zeros(0)
        pt = packets[0].pt
        if pt in (0, 8):
            decode = ulaw_to_pcm if pt == 0 else alaw_to_pcm
            clock = 8000
            chunks = [(p.ts, np.frombuffer(decode(p.payload), "<i2")) for p in packets if p.pt == pt]
        else:
            from tests.support.codecs import decode_packets

            clock, chunks = decode_packets(pt, [p for p in packets if p.pt == pt])
        chunks.sort(key=lambda c: c[0])
        base = chunks[0][0]
        total = max(((ts - base) & 0xFFFFFFFF) + len(s) for ts, s in chunks)
        out = np.zeros(total, dtype=np.float32)
        for ts, samples in chunks:
            off = (ts - base) & 0xFFFFFFFF
            out[off : off + len(samples)] = samples
        if clock != rate:
            import soxr

            out = soxr.resample(out, clock, rate)
        return out

    def send(self, pt: int, payloads: list[tuple[bytes, int]], dest: tuple[str, int]) -> None:
        """Send (payload, RTP timestamp increment) pairs as one RTP stream, one packet per 20 ms."""
        from tests.support.pcap import rtp_packet

        start = time.monotonic()
        ts = 0
        for i, (payload, increment) in enumerate(payloads):
            time.sleep(max(0.0, start + i * 0.02 - time.monotonic()))
            self.sock.sendto(rtp_packet(pt, i, ts, 0xC0DEC, payload, marker=i == 0), dest)
            ts += increment
