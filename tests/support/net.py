"""Free loopback ports for servers the tests start."""

from __future__ import annotations

import socket


def free_port(pair: bool = False) -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (and port+1 too when `pair`)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if pair and port >= 65535:
            continue
        ports = [port, port + 1] if pair else [port]
        try:
            held = []
            for p in ports:
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    held.append(s)
                    s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free port pair on 127.0.0.1")
