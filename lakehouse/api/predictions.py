"""Model serving: propositions for a client, the demand forecast of a product (with its
feature contributions on request), and the models in service.

Models come from the registry by alias (:mod:`lakehouse.api.registry`): a moved
``champion`` is served without a restart, a canary share routes a stable fraction of
clients or products to ``api_canary_alias``, and ``api_shadow_alias`` scores beside the
served version (logged and measured, never returned). Every answer says which version
made it (``model.version`` and the ``X-Model-Version`` header). Everything a request
reads is precomputed in memory (:mod:`.propositions`, :mod:`.forecasts`): a request is
a dict lookup.

Region scoping: a region's key asking for a client of another region gets the same 404
as for a client that does not exist, so a key cannot learn which clients exist outside
its region.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from lakehouse.api import forecasts, propositions
from lakehouse.api.deps import Caller, State
from lakehouse.api.problems import Problem
from lakehouse.api.registry import Served, Watcher, record
from lakehouse.api.state import ServingState
from ml.demand.train import REGISTERED_MODEL as DEMAND_MODEL
from ml.propositions.train import MODEL as PROPOSITIONS_ALGORITHM
from ml.propositions.train import REGISTERED_MODEL as PROPOSITIONS_MODEL
from ml.propositions.train import SERVED_CANDIDATES
from ml.tracking import CHAMPION

router = APIRouter(tags=["models"])
VERSION_HEADER = "X-Model-Version"
# an id is a positive 64-bit integer: larger is a 422, never an overflow further down
MAX_ID = 2**63 - 1
# the backtest metric of each registered model's runs, shown by /models
METRICS = {
    PROPOSITIONS_MODEL: ("map_at_10", "best_baseline_map_at_10"),
    DEMAND_MODEL: ("wape", "best_baseline_wape", "coverage_80"),
}


@dataclass
class _Watchers:
    propositions: Watcher[propositions.Inputs, propositions.Answers]
    forecasts: Watcher[forecasts.Inputs, forecasts.Answers]


def install(state: ServingState) -> None:
    """Watch both registered models' aliases: a refresher each (propositions first: it
    loads in seconds, the forecast's load can take longer)."""
    settings = state.settings
    watchers = _Watchers(
        Watcher(
            settings,
            PROPOSITIONS_MODEL,
            propositions.read,
            propositions.prepare,
            METRICS[PROPOSITIONS_MODEL],
        ),
        Watcher(
            settings,
            DEMAND_MODEL,
            forecasts.read,
            functools.partial(forecasts.prepare, settings),
            METRICS[DEMAND_MODEL],
        ),
    )
    state.hold(__name__, watchers, watchers.propositions.refresh, watchers.forecasts.refresh)


def watchers(state: ServingState) -> _Watchers:
    found: _Watchers = state.parts[__name__]
    return found


class ModelRef(BaseModel):
    """The version that answered."""

    name: str = Field(description="the registered model")
    version: str
    alias: str = Field(description="the alias that routed this request to it")
    algorithm: str | None = Field(default=None, description="what the version is (its run's)")


class Proposition(BaseModel):
    rank: int
    product_id: int
    product_name: str
    category: str
    score: float = Field(description="ranks within the client's list; not a probability")
    reason: str


class Propositions(BaseModel):
    client_id: int
    segment: str
    region: str
    as_of: date = Field(description="the day the list is for (after the last purchase)")
    model: ModelRef
    propositions: list[Proposition]


class ForecastWeek(BaseModel):
    week_start_date: date
    forecast: float = Field(description="expected units ordered that week")
    lower_80: float
    upper_80: float


class FeatureContribution(BaseModel):
    feature: str
    value: float | None
    contribution: float = Field(description="on the log scale: exp(bias + sum) = forecast")


class WeekExplanation(BaseModel):
    week_start_date: date
    bias: float
    top: list[FeatureContribution] = Field(description="largest |contribution| first")
    others: float = Field(description="the sum of the contributions not listed")


class Forecast(BaseModel):
    product_id: int
    product_name: str
    category: str
    model: ModelRef
    weeks: list[ForecastWeek]
    explanation: list[WeekExplanation] | None = None


class AliasInService(BaseModel):
    alias: str
    version: str
    run_id: str
    algorithm: str | None
    loaded_at: datetime
    publication: str = Field(description="the publication its answers were computed on")
    metrics: dict[str, float] = Field(description="its training run's backtest metrics")


class ModelInService(BaseModel):
    name: str
    serving: bool
    problem: str | None = Field(description="why nothing is served, when nothing is")
    canary: dict[str, Any] | None
    shadow_alias: str | None
    aliases: list[AliasInService]


ClientId = Annotated[int, Path(ge=1, le=MAX_ID, description="a client id")]
ProductId = Annotated[int, Path(ge=1, le=MAX_ID, description="a product id")]


def _answered(
    watcher: Watcher[Any, Any],
    routed: tuple[str, Served[Any], Served[Any] | None],
    key: int,
    response: Response,
    compare: Callable[[Any], float],
) -> ModelRef:
    """Count the answer, compare the shadow's (never returned), name the version."""
    alias, served, shadow = routed
    agreement = None if shadow is None else compare(shadow.answers)
    record(watcher.name, alias, served, shadow, key, agreement)
    response.headers[VERSION_HEADER] = served.version
    return ModelRef(
        name=watcher.name, version=served.version, alias=alias, algorithm=_algorithm(served)
    )


def _routed(watcher: Watcher[Any, Any], key: int) -> tuple[str, Served[Any], Served[Any] | None]:
    snapshot = watcher.snapshot
    routed = snapshot.route(key)
    if routed is None:
        raise Problem(
            503, watcher.problem or f"{watcher.name} is loading", kind="model-unavailable"
        )
    return routed[0], routed[1], snapshot.shadow()


@router.get(
    "/clients/{client_id}/propositions",
    summary="A client's propositions: the served model's list cut by today's rules",
    response_model=Propositions,
)
def client_propositions(
    client_id: ClientId,
    caller: Caller,
    state: State,
    response: Response,
    top: Annotated[
        int | None,
        Query(ge=1, le=SERVED_CANDIDATES, description="how many (default: the setting)"),
    ] = None,
) -> Propositions:
    watcher = watchers(state).propositions
    alias, served, shadow = _routed(watcher, client_id)
    answers: propositions.Answers = served.answers
    found = answers.by_client.get(client_id)
    if found is None or not caller.sees(found.region):
        raise Problem(404, f"no client {client_id}")
    items = found.items[: top or state.settings.propositions_top_n]

    def compare(theirs: propositions.Answers) -> float:
        found_there = theirs.by_client.get(client_id)
        return propositions.overlap(items, found_there.items if found_there else ())

    model = _answered(watcher, (alias, served, shadow), client_id, response, compare)
    return Propositions(
        client_id=client_id,
        segment=found.segment,
        region=found.region,
        as_of=answers.as_of,
        model=model,
        propositions=[Proposition(**i.__dict__) for i in items],
    )


@router.get(
    "/forecasts/{product_id}",
    summary="A product's demand forecast: the weeks ahead with 80% intervals",
    response_model=Forecast,
    response_model_exclude_none=True,
)
def product_forecast(
    product_id: ProductId,
    caller: Caller,
    state: State,
    response: Response,
    explain: Annotated[
        bool, Query(description="add each week's top feature contributions")
    ] = False,
    features: Annotated[
        int, Query(ge=1, le=30, description="how many contributions per week, with explain")
    ] = 5,
) -> Forecast:
    watcher = watchers(state).forecasts
    alias, served, shadow = _routed(watcher, product_id)
    answers: forecasts.Answers = served.answers
    found = answers.by_product.get(product_id)
    if found is None:
        raise Problem(404, f"no forecast for product {product_id}")
    explanation = None
    if explain:
        if found.explanation is None:
            raise Problem(
                409, answers.no_contributions or "no contributions", kind="no-contributions"
            )
        explanation = [_explained(w, features) for w in found.explanation]

    def compare(theirs: forecasts.Answers) -> float:
        found_there = theirs.by_product.get(product_id)
        return forecasts.agreement(found.weeks, found_there.weeks) if found_there else 0.0

    model = _answered(watcher, (alias, served, shadow), product_id, response, compare)
    return Forecast(
        product_id=product_id,
        product_name=found.product_name,
        category=found.category,
        model=model,
        weeks=[ForecastWeek(**w.__dict__) for w in found.weeks],
        explanation=explanation,
    )


def _explained(week: forecasts.WeekExplanation, n: int) -> WeekExplanation:
    shown = week.contributions[:n]
    return WeekExplanation(
        week_start_date=week.week_start_date,
        bias=week.bias,
        top=[FeatureContribution(**c.__dict__) for c in shown],
        others=sum(c.contribution for c in week.contributions[n:]),
    )


@router.get(
    "/models",
    summary="The models in service: each alias's version, when it was loaded, its metrics",
    response_model=list[ModelInService],
)
def models_in_service(caller: Caller, state: State) -> list[ModelInService]:
    found = watchers(state)
    return [_in_service(w) for w in (found.propositions, found.forecasts)]


def _in_service(watcher: Watcher[Any, Any]) -> ModelInService:
    snapshot = watcher.snapshot
    canary = None
    if snapshot.canary_alias:
        canary = {"alias": snapshot.canary_alias, "share": snapshot.canary_share}
    return ModelInService(
        name=watcher.name,
        serving=CHAMPION in snapshot.by_alias,
        problem=watcher.problem,
        canary=canary,
        shadow_alias=snapshot.shadow_alias,
        aliases=[
            AliasInService(
                alias=alias,
                version=s.version,
                run_id=s.run_id,
                algorithm=_algorithm(s),
                loaded_at=s.loaded_at,
                publication=s.publication,
                metrics=s.metrics,
            )
            for alias, s in sorted(snapshot.by_alias.items())
        ],
    )


def _algorithm(served: Served[Any]) -> str | None:
    if isinstance(served.answers, forecasts.Answers):
        return served.answers.model_name
    return PROPOSITIONS_ALGORITHM
