"""The API's shell: who may call it (keys per scope), what a bad request gets (a problem
detail, never a 500), /health, /metrics, /freshness and the OpenAPI document."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.settings import Settings
from lakehouse.warehouse import connect

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api")]

PROBLEM = "application/problem+json"
GUARDED = ["/search?q=shoes", "/freshness", "/models"]
# refused before anything is looked up: the same 401 whether the client or product exists
LOCKED = [*GUARDED, "/clients/1/propositions", "/forecasts/1", "/forecasts/1?explain=true"]


def _is_problem(response, status: int) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:lakehouse:problem:")
    assert body["detail"] and body["title"] and body["instance"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize("path", LOCKED)
def test_no_key_or_a_wrong_one_is_refused(api: TestClient, served: Settings, path: str) -> None:
    _is_problem(api.get(path), 401)
    assert api.get(path).headers["www-authenticate"].startswith("Bearer")
    wrong = served.api_secret()[:-1] + ("0" if served.api_secret()[-1] != "0" else "1")
    _is_problem(api.get(path, headers={"X-API-Key": wrong}), 401)
    _is_problem(api.get(path, headers={"Authorization": f"Bearer {wrong}"}), 401)
    _is_problem(api.get(path, headers={"Authorization": f"Basic {served.api_secret()}"}), 401)
    _is_problem(api.get(path, headers={"X-API-Key": ""}), 401)
    # a key of another installation's secrets file: a near miss by length too
    _is_problem(api.get(path, headers={"X-API-Key": served.api_secret() + "x"}), 401)


@pytest.mark.parametrize("path", GUARDED)
def test_each_scope_s_key_opens_the_door(
    api: TestClient, served: Settings, region_key: dict[str, str], path: str
) -> None:
    assert api.get(path, headers={"X-API-Key": served.api_secret()}).status_code == 200
    assert (
        api.get(path, headers={"Authorization": f"Bearer {served.api_secret()}"}).status_code == 200
    )
    assert api.get(path, headers=region_key).status_code == 200


def test_health_and_metrics_need_no_key(api: TestClient, key: dict[str, str]) -> None:
    assert api.get("/health").json()["status"] == "ok"
    api.get("/freshness", headers=key)
    metrics = api.get("/metrics")
    assert metrics.status_code == 200
    assert 'handler="/freshness"' in metrics.text  # requests are counted per route


def test_freshness_is_the_publication(
    api: TestClient, served: Settings, key: dict[str, str]
) -> None:
    got = api.get("/freshness", headers=key).json()
    with connect(served) as marts:
        publication = marts.publication()
        health = marts.query(
            f"select outcome, newest_source_commit_at from "
            f"{marts.qualified('mart_pipeline_health')} where is_latest_run"
        ).to_pylist()[0]
    assert publication is not None
    assert got["run_id"] == publication.run_id
    assert {m["mart"]: m["rows"] for m in got["marts"]} == publication.rows
    assert got["last_run_outcome"] == health["outcome"]
    assert got["newest_source_commit_at"][:19] == health["newest_source_commit_at"].isoformat()[:19]
    assert got["source_to_now_seconds"] > 0  # the recorded shop is in the past


def test_the_openapi_document_lists_every_route_and_the_keys(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    assert {
        "/search",
        "/freshness",
        "/health",
        "/models",
        "/clients/{client_id}/propositions",
        "/forecasts/{product_id}",
    } <= set(document["paths"])
    schemes = document["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"apiKey", "http"}


BAD_SEARCHES = [
    ("/search", 422),  # no query
    ("/search?q=", 422),
    ("/search?q=%20%20", 422),
    ("/search?q=shoes&limit=0", 422),
    ("/search?q=shoes&limit=abc", 422),
    ("/search?q=shoes&limit=100000", 422),
    ("/search?q=shoes&offset=-1", 422),
    ("/search?q=shoes&min_price=-5", 422),
    ("/search?q=shoes&min_price=nan", 422),
    ("/search?q=shoes&min_price=10&max_price=5", 400),
    ("/search?q=shoes&mode=telepathy", 422),
    ("/search?q=shoes&category=No%20Such%20Thing", 400),
    ("/search?q=" + "x" * 501, 422),
    ("/search?q=shoes&in_stock=perhaps", 422),
    ("/nowhere", 404),
]


@pytest.mark.parametrize(("path", "status"), BAD_SEARCHES)
def test_bad_input_gets_a_problem_detail(
    api: TestClient, key: dict[str, str], path: str, status: int
) -> None:
    _is_problem(api.get(path, headers=key), status)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    q=st.text(min_size=0, max_size=40),
    category=st.text(max_size=12),
    limit=st.integers(-5, 200),
    offset=st.integers(-5, 2000),
)
def test_no_search_input_makes_a_server_error(
    api: TestClient, key: dict[str, str], q: str, category: str, limit: int, offset: int
) -> None:
    params: dict[str, str | int] = {"q": q, "limit": limit, "offset": offset}
    if category:
        params["category"] = category
    response = api.get("/search", params=params, headers=key)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == PROBLEM
