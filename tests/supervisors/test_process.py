"""LocalProcess: a detached service with a pid file, a health check, and a stop that
leaves no process behind."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from lakehouse.exceptions import ServiceError
from lakehouse.supervisors.kafka import KafkaBroker
from lakehouse.supervisors.process import LocalProcess, process_cwd, process_start_time
from tests.support.ports import free_port


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _web_server(home: Path) -> tuple[LocalProcess, int]:
    """A small HTTP server on a free port, as a service; and its port."""
    port = free_port()
    server = LocalProcess(
        "web",
        home,
        lambda: [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        lambda: _answers(port),
        start_timeout_s=30,
    )
    return server, port


def test_start_is_idempotent_and_stop_leaves_nothing(tmp_path: Path) -> None:
    server, port = _web_server(tmp_path)
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


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A process of nobody's service, with a session of its own like a service's."""
    proc = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10  # until the fork has become `sleep`
        while psutil.Process(proc.pid).cmdline() != ["sleep", "300"]:
            assert time.monotonic() < deadline, "sleep did not start"
            time.sleep(0.01)
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def _service(home: Path, *, cwd: Path | None = None) -> LocalProcess:
    return LocalProcess("svc", home, lambda: ["true"], lambda: False, cwd=cwd)


@pytest.mark.parametrize("written_by", ["this version", "an older version"])
def test_stop_never_signals_a_pid_that_is_now_another_program(
    tmp_path: Path,
    stranger: subprocess.Popen[bytes],
    caplog: pytest.LogCaptureFixture,
    written_by: str,
) -> None:
    """After a crash or a reboot the pid of a pid file may be another program's: stop
    leaves it alone, removes the stale file and says so in one line."""
    service = _service(tmp_path)
    if written_by == "this version":  # the pid with some other process's start time
        started = process_start_time(os.getpid())
        service.pid_path.write_text(f"{stranger.pid} {started}\n")
    else:  # the pid alone; the stranger does not run in the service's home
        assert process_cwd(stranger.pid) != tmp_path.resolve()
        service.pid_path.write_text(f"{stranger.pid}\n")
    with caplog.at_level(logging.WARNING, logger="lakehouse.supervisors.process"):
        assert service.stop() is False
    time.sleep(0.5)  # a signal would have landed by now
    assert stranger.poll() is None, "the unrelated process was signalled"
    assert not service.pid_path.exists()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and f"pid {stranger.pid}" in said[0] and "sleep 300" in said[0], said


@pytest.mark.parametrize("written_by", ["this version", "an older version"])
def test_stop_does_signal_its_own_process(
    tmp_path: Path, stranger: subprocess.Popen[bytes], written_by: str
) -> None:
    """The positive control: the same pid file naming the process it started (its start
    time, or for an older pid file its working directory) is stopped."""
    service = _service(tmp_path, cwd=process_cwd(stranger.pid))
    started = process_start_time(stranger.pid) if written_by == "this version" else ""
    service.pid_path.write_text(f"{stranger.pid} {started}\n")
    assert service.pid() == stranger.pid
    assert service.stop(timeout_s=10) is True
    stranger.wait(timeout=10)  # stop reaped it already (our child): it is gone
    assert not psutil.pid_exists(stranger.pid)
    assert not service.pid_path.exists()


def test_start_records_the_start_time(tmp_path: Path) -> None:
    server, port = _web_server(tmp_path)
    try:
        server.start()
        pid, started = (int(f) for f in server.pid_path.read_text().split())
        assert started == process_start_time(pid) and psutil.Process(pid).cmdline()[-3:] == [
            str(port),
            "--bind",
            "127.0.0.1",
        ]
    finally:
        server.stop()


def test_the_kafka_broker_never_signals_a_pid_that_is_now_another_program(
    tmp_path: Path, stranger: subprocess.Popen[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    """The broker, which keeps a pid file of its own, checks its pid the same way (its
    command line names its main class and its configuration)."""
    broker = KafkaBroker(tmp_path, free_port(), free_port())
    broker.home.mkdir(parents=True, exist_ok=True)
    broker.pid_path.write_text(f"{stranger.pid}\n")
    assert not broker.running
    with caplog.at_level(logging.WARNING, logger="lakehouse.supervisors.kafka"):
        broker.stop(timeout_s=5)
    time.sleep(0.5)  # a signal would have landed by now
    assert stranger.poll() is None, "the unrelated process was signalled"
    assert not broker.pid_path.exists()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and f"pid {stranger.pid}" in said[0], said
