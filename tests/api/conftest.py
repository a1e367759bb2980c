"""The API's tests share one served shop per session (``served``, tests/conftest.py), on
one xdist worker (group ``api``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from lakehouse.settings import Settings


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
