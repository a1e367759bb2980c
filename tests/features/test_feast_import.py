"""Importing Feast must leave the process's Prometheus export alone: Feast's import sets
``PROMETHEUS_MULTIPROC_DIR`` for the whole process, which would turn the API's
``/metrics`` into an empty multiprocess export (every counter gone)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lakehouse.settings import PROJECT_DIR

pytestmark = pytest.mark.timeout(120)
SHOW = "import os; print(os.environ.get('PROMETHEUS_MULTIPROC_DIR'))"


def _run(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")}
    done = subprocess.run(
        [sys.executable, "-c", f"{code}; {SHOW}"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_the_feature_store_s_import_of_feast_leaves_no_multiprocess_directory() -> None:
    assert _run("from lakehouse.features.store import _import_feast; _import_feast()") == "None"
    # the control: Feast imported plainly sets it
    assert _run("import feast") != "None"
