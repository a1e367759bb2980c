"""The lease: a second holder waits for the first, then gives up with one line naming it;
a holder killed with SIGKILL leaves no lease behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lakehouse.exceptions import LakeBusy
from lakehouse.lease import hold, holder, lock_path
from lakehouse.settings import Settings, load_settings
from tests.support.killer import lease_holders

HOLD = """
import sys, time
from lakehouse.lease import hold
from lakehouse.settings import load_settings
with hold(load_settings(data_dir=sys.argv[1]), "lander"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path)


def _holder_process(settings: Settings, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(settings.root), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_a_second_lander_gives_up_naming_the_holder(settings: Settings) -> None:
    proc = _holder_process(settings, 30)
    try:
        assert holder(settings, "lander") is not None
        started = time.monotonic()
        with pytest.raises(LakeBusy) as caught, hold(settings, "lander", wait=0.5):
            pytest.fail("two landers held the lease at once")
        assert 0.5 <= time.monotonic() - started < 5
        message = str(caught.value)
        assert f"pid {proc.pid} on " in message and "lease_wait_seconds" in message
        assert "\n" not in message  # one line
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_second_lander_waits_then_holds(settings: Settings) -> None:
    proc = _holder_process(settings, 1.5)
    started = time.monotonic()
    with hold(settings, "lander", wait=30):
        assert time.monotonic() - started >= 1.0  # held only once the first let it go
        who = holder(settings, "lander")
        assert who is not None and who["pid"] == os.getpid()
    assert proc.wait(timeout=10) == 0


def test_a_killed_holder_leaves_no_lease(settings: Settings) -> None:
    proc = _holder_process(settings, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert holder(settings, "lander") is None
    with hold(settings, "lander", wait=0):
        pass


def test_leases_are_per_name_and_reentrant(settings: Settings) -> None:
    with hold(settings, "lander", wait=0), hold(settings, "build", wait=0):
        with hold(settings, "lander", wait=0):  # an ingest inside a flow that holds it
            pass
        who = holder(settings, "lander")  # still held after the inner block
        assert who is not None and who["pid"] == os.getpid()
    assert lock_path(settings, "lander").exists() and holder(settings, "lander") is None


def test_another_thread_waits_for_the_lease(settings: Settings) -> None:
    order: list[str] = []
    with hold(settings, "build", wait=0):

        def second() -> None:
            with hold(settings, "build", wait=10):
                order.append("second")

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        order.append("first done")
    thread.join(timeout=10)
    assert order == ["first done", "second"]


def test_the_command_names_the_holder_in_one_error_line(settings: Settings) -> None:
    lakehouse = str(Path(sys.executable).with_name("lakehouse"))
    env = {**os.environ, "LAKEHOUSE_LEASE_WAIT_SECONDS": "0.5"}
    with hold(settings, "lander", wait=0):
        run = subprocess.run(
            [lakehouse, "ingest", "--data-dir", str(settings.root)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"pid {os.getpid()} on " in errors[0], run.stderr


def test_the_kill_tests_see_who_holds_the_lease(settings: Settings) -> None:
    """The kill tests read the holder from the kernel's lock table (``/proc/locks``):
    the holding process while it holds it, nobody once it let go or died."""
    path = lock_path(settings, "lander")
    assert lease_holders(path) == set()
    proc = _holder_process(settings, 60)
    try:
        assert lease_holders(path) == {proc.pid}
        assert lease_holders(lock_path(settings, "build")) == set()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert lease_holders(path) == set()
    with hold(settings, "lander"):
        assert lease_holders(path) == {os.getpid()}
    assert lease_holders(path) == set()
