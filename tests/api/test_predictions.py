"""The model-serving routes: propositions, forecasts (with contributions), /models, and
the registry's aliases served without a restart (promotion under load, canary, shadow).

Truths: the published marts the batch scoring jobs wrote (same model, same inputs), the
registry (alias -> version, run metrics), and each version's model called directly.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lakehouse.api import forecasts
from lakehouse.api.app import create_app
from lakehouse.api.predictions import VERSION_HEADER, watchers
from lakehouse.settings import Settings
from lakehouse.warehouse import connect
from ml import tracking
from ml.demand.models import GlobalBoosted, StatisticalFamily
from ml.demand.train import REGISTERED_MODEL as DEMAND
from ml.propositions.train import REGISTERED_MODEL as PROPOSITIONS
from tests.support import model_variants
from tests.support.api_server import running_api

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("api")]

PROBLEM = "application/problem+json"


def _is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("urn:lakehouse:problem:")
    assert "Traceback" not in response.text
    return body


def _mart(settings: Settings, name: str) -> pd.DataFrame:
    with connect(settings) as marts:
        frame: pd.DataFrame = marts.read_mart(name).to_pandas()
    return frame


def _champion(settings: Settings, name: str) -> str:
    found = tracking.champion(settings, name)
    assert found is not None
    return str(found.version)


def _champion_s(response: httpx.Response, champion: str) -> dict[str, Any]:
    """The body of an answer the champion's version made."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert response.headers[VERSION_HEADER] == champion == body["model"]["version"]
    assert body["model"]["alias"] == "champion"
    return body


@pytest.fixture(scope="module")
def variants(served: Settings) -> dict[str, str]:
    """Versions beside the champions: the propositions reversed, and two forecasters on
    the served panel (a LightGBM with contributions, a local statistical one without)."""
    frame = forecasts.read(served).frame
    return {
        "reversed": model_variants.reversed_propositions(served),
        "lightgbm": model_variants.demand_version(served, frame, GlobalBoosted(n_estimators=40)),
        "statistical": model_variants.demand_version(
            served, frame, StatisticalFamily(candidates=("ADIDA",))
        ),
    }


def _app(settings: Settings, **update: Any) -> tuple[FastAPI, TestClient]:
    """An app on ``settings`` with ``update``; no start-up refresh (the test loads only
    the watcher it needs)."""
    app = create_app(settings.model_copy(update=update), refresh=False)
    return app, TestClient(app)


# -- propositions -----------------------------------------------------------------------


def test_propositions_are_the_published_lists(
    api: TestClient, served: Settings, key: dict[str, str]
) -> None:
    """Every client's answer at the default top-N is the list the scoring job published
    (same champion, same online features, same rules), and says the champion made it."""
    mart = _mart(served, "mart_client_recommendations").sort_values(["client_id", "rank"])
    champion = _champion(served, PROPOSITIONS)
    assert set(mart["model_version"].astype(str)) == {champion}
    for client_id, rows in mart.groupby("client_id"):
        body = _champion_s(api.get(f"/clients/{client_id}/propositions", headers=key), champion)
        got = [(p["rank"], p["product_id"], p["reason"]) for p in body["propositions"]]
        assert got == list(zip(rows["rank"], rows["product_id"], rows["reason"], strict=True))
        assert [p["score"] for p in body["propositions"]] == pytest.approx(rows["score"].tolist())
        assert (body["segment"], body["region"]) == (
            rows["segment"].iloc[0],
            rows["region"].iloc[0],
        )
    some = int(mart["client_id"].iloc[0])
    three = api.get(f"/clients/{some}/propositions?top=3", headers=key).json()["propositions"]
    assert [p["rank"] for p in three] == [1, 2, 3]


def test_a_region_key_sees_only_its_region_s_clients(
    api: TestClient, served: Settings, region_key: dict[str, str]
) -> None:
    """A region's key gets its clients; another region's client answers exactly as a
    client that does not exist (404, no hint that it exists)."""
    region = served.superset_region_roles[0]
    clients = _mart(served, "dim_client").query("is_current and not is_deleted and client_id > 0")
    mine = int(clients.loc[clients["region"] == region, "client_id"].iloc[0])
    theirs = int(clients.loc[clients["region"] != region, "client_id"].iloc[0])
    assert api.get(f"/clients/{mine}/propositions", headers=region_key).status_code == 200
    refused = _is_problem(api.get(f"/clients/{theirs}/propositions", headers=region_key), 404)
    unknown = _is_problem(api.get("/clients/987654321/propositions", headers=region_key), 404)
    assert refused["type"] == unknown["type"] and refused["title"] == unknown["title"]
    assert refused["detail"] == unknown["detail"].replace("987654321", str(theirs))


@pytest.mark.parametrize(
    "path", ["/clients/1/propositions", "/forecasts/1", "/forecasts/1?explain=true", "/models"]
)
def test_no_key_or_a_wrong_one_is_refused(api: TestClient, served: Settings, path: str) -> None:
    _is_problem(api.get(path), 401)
    wrong = served.api_secret()[:-1] + ("0" if served.api_secret()[-1] != "0" else "1")
    _is_problem(api.get(path, headers={"X-API-Key": wrong}), 401)
    _is_problem(api.get(path, headers={"Authorization": f"Bearer {wrong}"}), 401)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/clients/abc/propositions", 422),
        ("/clients/-3/propositions", 422),
        ("/clients/0/propositions", 422),
        ("/clients/1.5/propositions", 422),
        ("/clients/99999999999999999999999999/propositions", 422),
        ("/clients/9223372036854775807/propositions", 404),
        ("/clients/987654321/propositions", 404),
        ("/clients/1/propositions?top=0", 422),
        ("/clients/1/propositions?top=51", 422),
        ("/clients/1/propositions?top=ten", 422),
        ("/forecasts/abc", 422),
        ("/forecasts/-1", 422),
        ("/forecasts/99999999999999999999999999", 422),
        ("/forecasts/987654321", 404),
        ("/forecasts/1?explain=maybe", 422),
        ("/forecasts/1?explain=true&features=0", 422),
        ("/forecasts/1?explain=true&features=1000", 422),
    ],
)
def test_bad_input_is_a_problem_never_a_500(
    api: TestClient, key: dict[str, str], path: str, status: int
) -> None:
    _is_problem(api.get(path, headers=key), status)


# -- forecasts --------------------------------------------------------------------------


def test_forecasts_are_the_published_ones(
    api: TestClient, served: Settings, key: dict[str, str]
) -> None:
    """Every product's weeks and intervals are the scoring job's published forecast."""
    mart = _mart(served, "mart_demand_forecast").sort_values(["product_id", "week_start_date"])
    champion = _champion(served, DEMAND)
    assert set(mart["model_version"].astype(str)) == {champion}
    for product_id, rows in mart.groupby("product_id"):
        body = _champion_s(api.get(f"/forecasts/{product_id}", headers=key), champion)
        assert body["model"]["algorithm"] == rows["model_name"].iloc[0]
        assert "explanation" not in body
        weeks = pd.DataFrame(body["weeks"])
        assert weeks["week_start_date"].tolist() == [str(d) for d in rows["week_start_date"]]
        for ours, theirs in (
            ("forecast", "forecast_units"),
            ("lower_80", "lower_80"),
            ("upper_80", "upper_80"),
        ):
            assert weeks[ours].tolist() == pytest.approx(rows[theirs].tolist(), rel=1e-9)
        assert body["product_name"] == rows["product_name"].iloc[0]


def test_explain_gives_lightgbm_s_own_contributions_or_a_409(
    served: Settings, key: dict[str, str], variants: dict[str, str]
) -> None:
    """Through a canary at 100%: the LightGBM version's forecasts equal that model called
    directly, and bias + every contribution is the log of the forecast; a statistical
    version answers ?explain with a 409 that names the model (and forecasts without it)."""
    tracking.set_alias(served, DEMAND, "canary-test", variants["lightgbm"])
    try:
        app, client = _app(served, api_canary_alias="canary-test", api_canary_share=1.0)
        watchers(app.state.serving).forecasts.refresh()
        frame = forecasts.read(served).frame
        direct = tracking.load_version(served, DEMAND, variants["lightgbm"]).predict(frame)
        for product_id in direct["unique_id"].drop_duplicates().head(5).tolist():
            response = client.get(f"/forecasts/{product_id}?explain=true&features=3", headers=key)
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model"] == {
                "name": DEMAND,
                "version": variants["lightgbm"],
                "alias": "canary-test",
                "algorithm": "lightgbm",
            }
            expected = direct[direct["unique_id"] == product_id]["forecast"].tolist()
            assert [w["forecast"] for w in body["weeks"]] == pytest.approx(expected)
            for week, explained in zip(body["weeks"], body["explanation"], strict=True):
                assert len(explained["top"]) == 3
                sizes = [abs(c["contribution"]) for c in explained["top"]]
                assert sizes == sorted(sizes, reverse=True)
                total = explained["bias"] + sum(c["contribution"] for c in explained["top"])
                assert math.exp(total + explained["others"]) == pytest.approx(week["forecast"])
        tracking.set_alias(served, DEMAND, "canary-test", variants["statistical"])
        watchers(app.state.serving).forecasts.refresh()
        body = _is_problem(client.get("/forecasts/1?explain=true", headers=key), 409)
        assert "ADIDA" in body["detail"] and variants["statistical"] in body["detail"]
        plain = client.get("/forecasts/1", headers=key)
        assert plain.status_code == 200 and plain.headers[VERSION_HEADER] == variants["statistical"]
    finally:
        tracking.delete_alias(served, DEMAND, "canary-test")


# -- the models in service --------------------------------------------------------------


def test_models_lists_each_alias_s_version_and_metrics(
    api: TestClient, served: Settings, key: dict[str, str]
) -> None:
    body = api.get("/models", headers=key).json()
    assert [m["name"] for m in body] == [PROPOSITIONS, DEMAND]
    for model, metric in zip(body, ("map_at_10", "wape"), strict=True):
        champion = tracking.champion(served, model["name"])
        assert champion is not None
        assert model["serving"] is True and model["problem"] is None
        (alias,) = model["aliases"]
        assert (alias["alias"], alias["version"], alias["run_id"]) == (
            "champion",
            str(champion.version),
            champion.run_id,
        )
        recorded = tracking.run_metrics(served, str(champion.run_id))
        assert alias["metrics"][metric] == pytest.approx(recorded[metric])


# -- canary and shadow ------------------------------------------------------------------


def test_a_canary_share_routes_a_stable_half_of_the_clients(
    served: Settings, key: dict[str, str], variants: dict[str, str]
) -> None:
    """Share 0.5 to ``challenger``: about half the clients get the reversed version (its
    own lists), the others the champion's; each client always gets the same one."""
    tracking.set_alias(served, PROPOSITIONS, "challenger", variants["reversed"])
    try:
        app, client = _app(served, api_canary_share=0.5)
        watchers(app.state.serving).propositions.refresh()
        champion = _champion(served, PROPOSITIONS)
        clients = _mart(served, "mart_client_recommendations")["client_id"].unique().tolist()
        versions: dict[int, str] = {}
        for client_id in clients:
            first = client.get(f"/clients/{client_id}/propositions", headers=key)
            again = client.get(f"/clients/{client_id}/propositions", headers=key)
            assert first.status_code == again.status_code == 200
            assert first.json() == again.json()  # stable per client
            versions[client_id] = first.headers[VERSION_HEADER]
            assert first.json()["model"]["alias"] == (
                "challenger" if versions[client_id] == variants["reversed"] else "champion"
            )
        share = sum(v == variants["reversed"] for v in versions.values()) / len(versions)
        assert set(versions.values()) == {champion, variants["reversed"]}
        assert 0.4 <= share <= 0.6, share
        # the challenger's answers are its own: the champion's candidates, worst first
        routed = next(c for c, v in versions.items() if v == variants["reversed"])
        ours = client.get(f"/clients/{routed}/propositions?top=50", headers=key).json()
        scores = [p["score"] for p in ours["propositions"]]
        assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)
    finally:
        tracking.delete_alias(served, PROPOSITIONS, "challenger")


def test_a_shadow_scores_alongside_and_is_never_returned(
    served: Settings,
    key: dict[str, str],
    variants: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With ``api_shadow_alias``: every answer is still the champion's; each request is
    counted by served and shadow version, its agreement measured and logged. The
    control: the same app without a shadow measures nothing."""
    tracking.set_alias(served, PROPOSITIONS, "shadow-test", variants["reversed"])
    tracking.set_alias(served, DEMAND, "shadow-test", variants["lightgbm"])
    champion = _champion(served, PROPOSITIONS)

    def compared(client: TestClient, model: str = PROPOSITIONS) -> float:
        versions = (
            _champion(served, model),
            variants["reversed" if model == PROPOSITIONS else "lightgbm"],
        )
        label = (
            f'lakehouse_api_shadow_comparisons_total{{model="{model}",'
            f'served_version="{versions[0]}",shadow_version="{versions[1]}"}}'
        )
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(label):
                return float(line.split()[-1])
        return 0.0

    try:
        app, client = _app(served, api_shadow_alias="shadow-test")
        watchers(app.state.serving).propositions.refresh()
        clients = _mart(served, "mart_client_recommendations")["client_id"].unique()[:20]
        before = compared(client)
        with caplog.at_level(logging.INFO, logger="lakehouse.api.shadow"):
            for client_id in clients:
                response = client.get(f"/clients/{client_id}/propositions", headers=key)
                assert response.headers[VERSION_HEADER] == champion
                assert response.json()["model"] == {
                    "name": PROPOSITIONS,
                    "version": champion,
                    "alias": "champion",
                    "algorithm": "als_content",
                }
                assert "shadow" not in response.text
        assert compared(client) - before == len(clients)
        logged = [r for r in caplog.records if r.name == "lakehouse.api.shadow"]
        assert len(logged) == len(clients)
        assert {(r.served_version, r.shadow_version) for r in logged} == {  # type: ignore[attr-defined]
            (champion, variants["reversed"])
        }
        # the reversed list shares little of the champion's top 10 with it
        assert all(r.agreement < 1.0 for r in logged)  # type: ignore[attr-defined]
        # the forecast too: the champion answers, the LightGBM shadow is measured
        watchers(app.state.serving).forecasts.refresh()
        before = compared(client, DEMAND)
        for product_id in range(1, 6):
            response = client.get(f"/forecasts/{product_id}", headers=key)
            assert response.headers[VERSION_HEADER] == _champion(served, DEMAND)
        assert compared(client, DEMAND) - before == 5
        control_app, control = _app(served)
        watchers(control_app.state.serving).propositions.refresh()
        before = compared(control)
        control.get(f"/clients/{clients[0]}/propositions", headers=key)
        assert compared(control) == before
    finally:
        tracking.delete_alias(served, PROPOSITIONS, "shadow-test")
        tracking.delete_alias(served, DEMAND, "shadow-test")


# -- promotion without a restart --------------------------------------------------------


@pytest.fixture
def server(served: Settings) -> Iterator[str]:
    """The API under a real uvicorn server on 127.0.0.1, refreshing every 0.5 s."""
    with running_api(served.model_copy(update={"api_refresh_seconds": 0.5})) as url:
        yield url


@pytest.mark.timeout(300)
def test_a_promotion_is_served_without_a_restart_while_requests_run(
    served: Settings, key: dict[str, str], variants: dict[str, str], server: str
) -> None:
    """Requests run without pause while ``champion`` moves to another version: every
    request answers 200, the new version answers within a bound, and its answers are
    the new version's lists. The champion is moved back after."""
    before = _champion(served, PROPOSITIONS)
    clients = _mart(served, "mart_client_recommendations")["client_id"].unique().tolist()
    seen: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def fire() -> None:
        with httpx.Client(base_url=server, headers=key, timeout=10) as http:
            i = 0
            while not stop.is_set():
                response = http.get(f"/clients/{clients[i % len(clients)]}/propositions")
                seen.append(
                    (time.monotonic(), response.status_code, response.headers.get(VERSION_HEADER))
                )
                i += 1

    worker = threading.Thread(target=fire, daemon=True)
    worker.start()
    try:
        time.sleep(1.0)
        moved_at = time.monotonic()
        tracking.promote(served, PROPOSITIONS, variants["reversed"])
        deadline = moved_at + 30
        while not any(v == variants["reversed"] for _, _, v in seen[-5:]):
            assert time.monotonic() < deadline, "the new champion was not served in 30 s"
            time.sleep(0.1)
        switched = next(t for t, _, v in seen if t >= moved_at and v == variants["reversed"])
        time.sleep(1.0)
        stop.set()
        worker.join(timeout=15)
        with httpx.Client(base_url=server, headers=key, timeout=10) as http:
            body = http.get(f"/clients/{clients[0]}/propositions?top=50").json()
    finally:
        stop.set()
        tracking.promote(served, PROPOSITIONS, before)
    assert {status for _, status, _ in seen} == {200}, "a request failed during the swap"
    after = [v for t, _, v in seen if t > switched]
    assert set(after) == {variants["reversed"]}, "an old answer after the switch"
    assert body["model"]["version"] == variants["reversed"]
    direct = tracking.load_version(served, PROPOSITIONS, variants["reversed"]).predict(
        pd.DataFrame(
            {"client_id": [clients[0]], "segment": [body["segment"]], "region": [body["region"]]}
        )
    )
    served_products = [p["product_id"] for p in body["propositions"]]
    # the new version's order, its candidates cut by today's rules
    order = direct.sort_values("score", ascending=False)["product_id"].tolist()
    assert served_products == [p for p in order if p in set(served_products)]
    print(f"switched {switched - moved_at:.2f} s after the promotion; {len(seen)} requests")
