"""Free loopback ports for servers the tests start."""

from __future__ import annotations

import socket


def free_port(pair: bool = False, span: int = 1) -> int:
    """A port free for both UDP and TCP on 127.0.0.1, with the next `span - 1` ports (port+1 too when
    `pair`): SIPp's media port, for one, also binds mp+2 for video."""
    span = max(span, 2 if pair else 1)
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + span - 1 > 65535:
            continue
        ports = list(range(port, port + span))
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
