"""Free loopback ports for servers the tests start.

They are drawn below the kernel's ephemeral range (32768-60999 by default), from 20000-31999: a
port the kernel handed out as free can be taken, before the server binds it, by any process's next
outgoing connection (a node talking to its speech workers while it starts), and tomsip's own RTP
range (10000-20000 by default) lies below. What is drawn is still checked by binding it.
"""

from __future__ import annotations

import random
import socket

LOW, HIGH = 20000, 32000


def free_port(pair: bool = False, span: int = 1) -> int:
    """A port free for both UDP and TCP on 127.0.0.1, with the next `span - 1` ports (port+1 too when
    `pair`): SIPp's media port, for one, also binds mp+2 for video."""
    span = max(span, 2 if pair else 1)
    for _ in range(200):
        port = random.randrange(LOW, HIGH - span)
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
