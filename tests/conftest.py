"""Time limits: every test has pyproject's ``timeout`` (900 s, its fixtures included),
except those that may download, install or build services on a cold cache (MinIO is
built from source, Trino and Kafka fetched from Maven Central, Superset installed into a
virtual environment of its own), which get ``COLD_CACHE_TIMEOUT_S``. A test's own
``@pytest.mark.timeout`` wins."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lakehouse.settings import Settings

COLD_CACHE_TIMEOUT_S = 2400
# the `lakehouse demo` of the e2e tests waits up to 1800 s for its subprocess
_COLD_CACHE_MARKERS = ("stack", "e2e")
_COLD_CACHE_DIRS = (Path(__file__).parent / "superset",)  # Superset's first install


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        if any(item.get_closest_marker(m) for m in _COLD_CACHE_MARKERS) or any(
            item.path.is_relative_to(d) for d in _COLD_CACHE_DIRS
        ):
            item.add_marker(pytest.mark.timeout(COLD_CACHE_TIMEOUT_S))


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The served shop (tests/support/served.py) of the API's and the reports' tests, both
    in group ``api`` so that one worker builds it once; for an edit loop,
    ``LAKEHOUSE_TESTS_SERVED_FROM=<a data dir served_shop built>`` copies that one instead
    of building (CI always builds)."""
    target = tmp_path_factory.mktemp("served") / "data"
    built = os.environ.get("LAKEHOUSE_TESTS_SERVED_FROM")
    if built:
        shutil.copytree(built, target)
        from tests.quality.gate_support import lake_settings  # deltalake: only when used

        return lake_settings(target)
    from tests.support.served import served_shop  # the demo's stages: loaded when used

    return served_shop(target)
