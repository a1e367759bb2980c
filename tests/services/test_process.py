"""LocalProcess: a detached service with a pid file, a health check, and a stop that
leaves no process behind."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from lakehouse.services import ServiceError
from lakehouse.services.process import LocalProcess
from tests.support.ports import free_port


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_start_is_idempotent_and_stop_leaves_nothing(tmp_path: Path) -> None:
    port = free_port()
    server = LocalProcess(
        "web",
        tmp_path,
        lambda: [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        lambda: _answers(port),
        start_timeout_s=30,
    )
    assert server.start() is True
    pid = server.pid()
    assert pid is not None and _answers(port)
    assert server.start() is False  # a second start finds it running
    assert server.pid() == pid
    assert server.stop() is True
    assert not server.running() and not _answers(port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert server.stop() is False


def test_a_process_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    broken = LocalProcess(
        "broken",
        tmp_path,
        lambda: [sys.executable, "-c", "import sys; print('no config found'); sys.exit(3)"],
        lambda: False,
        start_timeout_s=30,
    )
    with pytest.raises(ServiceError, match=r"broken exited with code 3.*no config found"):
        broken.start()
    assert not broken.running()
