"""What a route depends on: the serving state of the application, and the caller's scope
(401 without a valid key)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from lakehouse.api.auth import Principal, presented_key
from lakehouse.api.problems import Problem

if TYPE_CHECKING:
    from lakehouse.api.state import ServingState

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="a scope's API key")
_bearer = HTTPBearer(auto_error=False, description="the same key as a bearer token")


def serving_state(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state


def principal(
    request: Request,
    api_key: Annotated[str | None, Security(_api_key)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Principal:
    """The caller's scope; 401 (with ``WWW-Authenticate``) without a key we gave."""
    key = presented_key(api_key, f"Bearer {bearer.credentials}" if bearer else None)
    if key is None:
        raise Problem(
            401,
            "no API key: send it as `X-API-Key: <key>` or `Authorization: Bearer <key>`",
            kind="unauthenticated",
        )
    found = serving_state(request).keys.principal(key)
    if found is None:
        raise Problem(401, "this API key is not valid", kind="unauthenticated")
    return found


Caller = Annotated[Principal, Depends(principal)]
State = Annotated["ServingState", Depends(serving_state)]
