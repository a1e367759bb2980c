"""The API's tests share one served shop per session (tests/support/served.py), on one
xdist worker (group ``api``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from lakehouse.settings import Settings
from tests.quality.gate_support import lake_settings
from tests.support.served import served_shop


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The served shop; for an edit loop, ``LAKEHOUSE_TESTS_SERVED_FROM=<a data dir
    served_shop built>`` copies that one instead of building (CI always builds)."""
    target = tmp_path_factory.mktemp("served") / "data"
    built = os.environ.get("LAKEHOUSE_TESTS_SERVED_FROM")
    if built:
        shutil.copytree(built, target)
        return lake_settings(target)
    return served_shop(target)


@pytest.fixture(scope="session")
def api(served: Settings) -> Iterator[TestClient]:
    """The application on the served shop, its refresh done once at start-up."""
    from lakehouse.api.app import create_app

    with TestClient(create_app(served, refresh=False)) as client:
        yield client


@pytest.fixture(scope="session")
def key(served: Settings) -> dict[str, str]:
    """The whole business's key, as a header."""
    return {"X-API-Key": served.api_secret()}


@pytest.fixture(scope="session")
def region_key(served: Settings) -> dict[str, str]:
    """The first region's key (superset_region_roles: ``north`` by default)."""
    region = served.superset_region_roles[0]
    return {"X-API-Key": served.api_region_secrets()[region]}
