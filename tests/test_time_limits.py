"""Every test has a time limit (pytest-timeout, pyproject's ``timeout``), and one past it
fails with a message rather than hanging the run; tests that may fill a cold cache (the
stack's services, Superset) get a longer one (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakehouse.settings import PROJECT_DIR
from tests.conftest import COLD_CACHE_TIMEOUT_S, pytest_collection_modifyitems


def test_the_limit_is_set_for_every_test(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.hasplugin("timeout")
    assert float(request.config.getini("timeout")) == 900
    assert request.config.getini("timeout_func_only") is False  # fixtures count too


def test_a_test_past_its_limit_fails_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "test_hangs.py").write_text(
        "import time\n\ndef test_hangs():\n    time.sleep(120)\n"
    )
    began = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(PROJECT_DIR / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            "-p",
            "no:cacheprovider",
            "-o",
            "timeout=2",
            str(tmp_path / "test_hangs.py"),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=tmp_path,
    )
    assert run.returncode == 1, run.stdout[-2000:]
    assert "Timeout (>2.0s)" in run.stdout, run.stdout[-2000:]
    assert time.monotonic() - began < 60


class _Item:
    """What the hook reads of a collected test."""

    def __init__(self, path: Path, *marks: pytest.MarkDecorator) -> None:
        self.path = path
        self.marks = [m.mark for m in marks]

    def get_closest_marker(self, name: str) -> pytest.Mark | None:
        return next((m for m in self.marks if m.name == name), None)

    def add_marker(self, mark: pytest.MarkDecorator) -> None:
        self.marks.append(mark.mark)


def test_tests_that_may_fill_a_cold_cache_get_more() -> None:
    tests = Path(__file__).parent
    items = {
        "unit": _Item(tests / "cdc" / "test_decode.py"),
        "integration": _Item(tests / "oltp" / "test_cluster.py", pytest.mark.integration),
        "stack": _Item(tests / "supervisors" / "test_trino.py", pytest.mark.stack),
        "e2e": _Item(tests / "e2e" / "test_demo.py", pytest.mark.e2e),
        "superset": _Item(tests / "superset" / "test_dashboards.py", pytest.mark.integration),
        "own limit": _Item(tests / "e2e" / "test_x.py", pytest.mark.e2e, pytest.mark.timeout(5)),
    }
    pytest_collection_modifyitems(list(items.values()))  # type: ignore[arg-type]
    limits = {}
    for name, item in items.items():
        mark = item.get_closest_marker("timeout")
        limits[name] = None if mark is None else mark.args[0]
    assert limits == {
        "unit": None,  # pyproject's default
        "integration": None,
        "stack": COLD_CACHE_TIMEOUT_S,
        "e2e": COLD_CACHE_TIMEOUT_S,
        "superset": COLD_CACHE_TIMEOUT_S,
        "own limit": 5,
    }
