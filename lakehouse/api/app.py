"""The application: routes, problem details for every error, metrics, background refresh.

Every route but ``/health``, ``/metrics``, the OpenAPI document and the live page needs a
key (:mod:`lakehouse.api.auth`). Nothing here writes: the marts come through the warehouse
port, features from Feast's online store, models from the registry by alias.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from importlib.metadata import version

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.exceptions import HTTPException

from lakehouse.api import live, predictions, reports, search, service
from lakehouse.api.problems import PROBLEM_JSON, Problem
from lakehouse.api.state import ServingState
from lakehouse.exceptions import LakehouseError, MissingTableError, SearchError
from lakehouse.settings import Settings

log = logging.getLogger("lakehouse.api")


def create_app(settings: Settings, *, refresh: bool = True) -> FastAPI:
    """The API on ``settings``; ``refresh`` False: no background refresh (tests call
    ``app.state.serving.refresh_now()`` themselves)."""
    state = ServingState.create(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(state.refresh_now)
        task = asyncio.create_task(state.refresh_forever()) if refresh else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(
        title="Lakehouse API",
        version=version("lakehouse"),
        summary="Product search, propositions, demand forecasts, insight reports and the "
        "marts' freshness, read-only.",
        lifespan=lifespan,
    )
    app.state.serving = state
    _problem_handlers(app)
    for module in (service, search, predictions, reports, live):
        app.include_router(module.router)
        module.install(state)
    _metrics(app)
    return app


def _metrics(app: FastAPI) -> None:
    """``/metrics``: this application's HTTP metrics (a registry of its own, so a second
    application in one process, as in the tests, counts its own requests) and the
    process's (the models' and the live view's, in the default registry)."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    own = CollectorRegistry()
    Instrumentator(excluded_handlers=["/metrics"], registry=own).instrument(app)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(
            generate_latest(own) + generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST
        )


def _problem(request: Request, problem: Problem) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="lakehouse"'} if problem.status == 401 else None
    return JSONResponse(
        problem.body(request.url.path),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _own(request: Request, exc: Problem) -> JSONResponse:
        return _problem(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "where": ".".join(str(p) for p in e.get("loc", ())),
                "message": str(e.get("msg", "")),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"where": "request", "message": "invalid"}
        detail = f"{first['where']}: {first['message']}"
        return _problem(request, Problem(422, detail, kind="invalid-request", errors=errors))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return _problem(request, Problem(exc.status_code, str(exc.detail)))

    @app.exception_handler(MissingTableError)
    async def _not_published(request: Request, exc: MissingTableError) -> JSONResponse:
        return _problem(request, Problem(503, str(exc), kind="not-published"))

    @app.exception_handler(SearchError)
    async def _search(request: Request, exc: SearchError) -> JSONResponse:
        return _problem(request, Problem(400, str(exc), kind="bad-search"))

    @app.exception_handler(LakehouseError)
    async def _ours(request: Request, exc: LakehouseError) -> JSONResponse:
        return _problem(request, Problem(503, str(exc), kind="unavailable"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        return _problem(request, Problem(500, "an unexpected error; the API's log has the details"))
