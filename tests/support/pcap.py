"""Reading and writing classic pcap files of RTP over UDP/IPv4 (what SIPp's play_pcap_audio takes).

Used by sipp_scenarios/make_pcaps.py to turn generated speech into caller media, and by bench/ to
read captures taken on loopback.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def rtp_packet(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def udp_frame(
    src_port: int, dst_port: int, payload: bytes, src_ip: str = "127.0.0.1", dst_ip: str = "127.0.0.1"
) -> bytes:
    """An Ethernet/IPv4/UDP frame around `payload` (UDP checksum 0: allowed on IPv4)."""
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    src = bytes(int(x) for x in src_ip.split("."))
    dst = bytes(int(x) for x in dst_ip.split("."))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
    eth = b"\x00" * 12 + b"\x08\x00"
    return eth + ip + udp


def write_pcap(path: str, packets: list[tuple[float, bytes]]) -> None:
    """Write (timestamp seconds, link-layer frame) pairs as an Ethernet pcap."""
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        for ts, frame in packets:
            sec = int(ts)
            usec = round((ts - sec) * 1_000_000)
            fh.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
            fh.write(frame)


@dataclass(frozen=True)
class UdpPacket:
    ts: float
    src_port: int
    dst_port: int
    payload: bytes


def read_udp(path: str) -> Iterator[UdpPacket]:
    """Every IPv4 UDP packet in a pcap (Ethernet or Linux cooked capture)."""
    with open(path, "rb") as fh:
        header = fh.read(24)
        magic = struct.unpack("<I", header[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        nanos = magic in (0xA1B23C4D, 0x4D3CB2A1)
        linktype = struct.unpack(endian + "I", header[20:24])[0]
        offset = {LINKTYPE_ETHERNET: 14, LINKTYPE_LINUX_SLL: 16, LINKTYPE_LINUX_SLL2: 20}.get(linktype)
        if offset is None:
            raise ValueError(f"unsupported pcap link type {linktype}")
        while True:
            rec = fh.read(16)
            if len(rec) < 16:
                return
            sec, frac, caplen, _ = struct.unpack(endian + "IIII", rec)
            data = fh.read(caplen)
            ts = sec + frac / (1e9 if nanos else 1e6)
            ip = data[offset:]
            if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
                continue
            ihl = (ip[0] & 0x0F) * 4
            src_port, dst_port, length, _ = struct.unpack("!HHHH", ip[ihl : ihl + 8])
            yield UdpPacket(ts, src_port, dst_port, ip[ihl + 8 : ihl + length])
