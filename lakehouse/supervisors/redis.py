"""Redis (the online store Feast will use) as a local process under
``<stack_dir>/redis``.

``redis-server`` comes from Debian's ``redis-server`` package, installed with apt-get
when the program is missing and we are root. The package's own system service (port
6379) is stopped and disabled right after we install it: the stack runs its own server
with its own configuration, on ``redis_port``, and depends on nothing else.

=========================  ===================================================
``redis/redis.conf``       written on every start from the settings
``redis/dump.rdb``         the snapshot (Redis's ``dir`` is the home)
``redis/redis.log``        the server's output
``redis/redis.pid``        the running server's process id
=========================  ===================================================
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.exceptions import ServiceError
from lakehouse.supervisors.apt import apt_install
from lakehouse.supervisors.process import LocalProcess, ProcessService

if TYPE_CHECKING:
    from lakehouse.settings import Settings

PACKAGE = "redis-server"
START_TIMEOUT_S = 30.0

_CONFIG = """\
# written by lakehouse.supervisors.redis on every start: edit the settings, not this file
port {port}
bind 127.0.0.1
protected-mode yes
daemonize no
supervised no
dir {home}
dbfilename dump.rdb
logfile ""
save 3600 1 300 100 60 10000
"""


class RedisServer(ProcessService):
    """One ``redis-server`` on ``127.0.0.1:<redis_port>``, state under the stack dir."""

    name = "redis"

    def __init__(self, settings: Settings) -> None:
        self.port = settings.redis_port
        self.home = settings.stack_dir / "redis"
        self._process = LocalProcess(
            "redis",
            self.home,
            self._command,
            self._ping,
            start_timeout_s=START_TIMEOUT_S,
            ports={"redis_port": settings.redis_port},
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.home / "redis.conf"

    def start(self) -> bool:
        """Install if needed, write the configuration and start; False when it ran."""
        return self._process.start()

    def _command(self) -> list[str]:
        binary = find_redis_server()
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(_CONFIG.format(port=self.port, home=self.home))
        return [binary, str(self.config_path)]

    def _ping(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()


def find_redis_server(*, install: bool = True) -> str:
    """The ``redis-server`` program; installed from apt when missing and we are root."""
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)),
        None,
    )
    if found:
        return found
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        _apt_install(PACKAGE)
        _disable_system_service()
        return find_redis_server(install=False)
    raise ServiceError(
        "redis-server not found: install Redis (Debian/Ubuntu: `apt-get install "
        "redis-server`) or put redis-server on PATH"
    )


def _apt_install(package: str) -> None:
    failure = apt_install(package)
    if failure is not None:
        raise ServiceError(f"`apt-get install {package}` failed: {failure}; install Redis yourself")


def _disable_system_service() -> None:
    """Debian's package may start (and enable) a system Redis on 6379: the stack does not
    use it, so stop it and keep it from starting at boot."""
    if Path("/run/systemd/system").is_dir():
        commands = [["systemctl", "disable", "--now", PACKAGE]]
    else:
        commands = [["invoke-rc.d", PACKAGE, "stop"], ["update-rc.d", PACKAGE, "disable"]]
    for command in commands:
        with contextlib.suppress(OSError):
            subprocess.run(command, capture_output=True, check=False)
