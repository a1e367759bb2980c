"""Redis for tests: the stack's own server (:class:`~lakehouse.supervisors.redis.
RedisServer`, the configuration `lakehouse stack up` writes) as a local process on the
settings' ``redis_port``, its state under the settings' stack directory, stopped with
nothing left behind."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from lakehouse.settings import Settings
from lakehouse.supervisors.process import pid_alive
from lakehouse.supervisors.redis import RedisServer

if TYPE_CHECKING:
    import redis


@contextmanager
def redis_server(settings: Settings) -> Iterator[RedisServer]:
    """The stack's Redis started for the block (bound to 127.0.0.1), then stopped: its
    process must be gone."""
    server = RedisServer(settings)
    server.start()
    pid = server.pid()
    try:
        yield server
    finally:
        server.stop()
        assert pid is None or not pid_alive(pid), f"redis-server {pid} outlived its stop"


def redis_client(settings: Settings) -> redis.Redis:
    """A client of the settings' Redis (database 0, Feast's), with a time limit."""
    import redis

    return redis.Redis(host="127.0.0.1", port=settings.redis_port, socket_timeout=10)
