"""The test groups hold: under `pytest -n 2 --dist loadgroup` (`make test`) a test
marked ``xdist_group`` runs on its group's worker, so a module's expensive fixture is
set up once. pytest-xdist marks the grouped tests by suffixing their node ids, which
pytest 9 ignores (hence pytest<9 in pyproject.toml)."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.xdist_group("test-groups")


def test_a_grouped_test_carries_its_group(request: pytest.FixtureRequest) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER") or request.config.getvalue("dist") != "no":
        pytest.skip("not run by a pytest-xdist worker")  # plain `pytest`: nothing to group
    if not request.config.getvalue("loadgroup"):
        pytest.skip("the workers were not started with --dist loadgroup")
    assert request.node.nodeid.endswith("@test-groups")
