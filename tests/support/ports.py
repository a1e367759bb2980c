"""Free TCP ports for the services a test starts."""

from __future__ import annotations

import socket

_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, never one this process has handed out before: the
    kernel may give the same ephemeral port to two binds in a row, and two services of one
    test (MinIO's API and console, say) must not get the same one."""
    for _ in range(1000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError(f"the kernel gave only ports handed out already ({len(_handed_out)})")
