"""The live view: ``GET /live`` (a page, no data in it) and the WebSocket ``/live/ws`` that
pushes the last hours of orders, revenue and stock-outs as changes land in silver
(:mod:`lakehouse.api.live_feed`: why silver, and how it is watched).

The key never travels in a URL. The page reads it from the URL's fragment (``#key=...``),
which browsers do not send to the server, so it stays out of access logs, proxies and
``Referer`` headers; a browser cannot put an ``X-API-Key`` header on a WebSocket, and a
query string would be logged. So the socket's first message carries the key, and a key
that is no key of ours closes the socket with 1008 (policy violation). The socket uses no
cookie, so another site's page cannot borrow a visitor's session with it.

``auth.Keys.principal`` is used directly: the HTTP dependency (``deps.principal``) reads
headers, which a browser's socket cannot set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
from starlette import status

from lakehouse.api import pages
from lakehouse.api.auth import Principal
from lakehouse.api.live_feed import DEFAULT_HOURS, MAX_HOURS, LiveHub
from lakehouse.api.state import ServingState

router = APIRouter(tags=["live"])

AUTH_SECONDS = 10.0  # an unauthenticated socket is closed after this
MAX_MESSAGE_CHARS = 1024  # a client's message is a key and a window, no more
PAGE = pages.page("live.html")
# sockets to this origin only
PAGE_HEADERS = pages.headers(PAGE, "connect-src 'self'; img-src data:")


def install(state: ServingState) -> None:
    """Nothing to refresh: the hub is made with the first socket and watches silver only
    while sockets are connected."""


@router.get(
    "/live",
    summary="The live view: a page that opens /live/ws with the key of its #key= fragment",
    response_class=HTMLResponse,
)
def live_page() -> HTMLResponse:
    return HTMLResponse(PAGE, headers=PAGE_HEADERS)


@router.websocket("/live/ws")
async def live_socket(websocket: WebSocket) -> None:
    """First message: ``{"key": "...", "hours": 6}`` (or the key alone); then a snapshot
    at once and at every move of silver. ``{"hours": n}`` changes the window."""
    await websocket.accept()
    serving: ServingState = websocket.app.state.serving
    try:
        first = await asyncio.wait_for(websocket.receive(), AUTH_SECONDS)
    except TimeoutError:
        await websocket.close(status.WS_1008_POLICY_VIOLATION, "no API key within 10 s")
        return
    if first["type"] == "websocket.disconnect":
        return
    hello = _message(first)
    key = hello.get("key") if hello is not None else None
    principal = serving.keys.principal(key) if isinstance(key, str) else None
    if principal is None:
        await websocket.close(status.WS_1008_POLICY_VIOLATION, "this API key is not valid")
        return
    hours = _hours(hello, websocket.query_params.get("hours"))
    if hours is None:
        await websocket.close(status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, _BAD_HOURS)
        return
    await _serve(websocket, _hub(websocket), principal, hours)


_BAD_HOURS = f"hours: a whole number from 1 to {MAX_HOURS}"


def _hub(websocket: WebSocket) -> LiveHub:
    """The process's one hub (per application), made with its first socket."""
    app_state = websocket.app.state
    hub: LiveHub | None = getattr(app_state, "live_hub", None)
    if hub is None:
        hub = app_state.live_hub = LiveHub(app_state.serving.settings)
    return hub


async def _serve(websocket: WebSocket, hub: LiveHub, principal: Principal, hours: int) -> None:
    subscriber = await hub.subscribe(principal.region, hours)

    async def send() -> None:
        while True:
            await websocket.send_text(json.dumps(await subscriber.inbox.get()))

    sender = asyncio.create_task(send())
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            asked = _message(message)
            if asked is None or "hours" not in asked:
                continue  # nothing else is asked of the server
            wanted = _hours(asked, None)
            if wanted is None:
                await websocket.close(status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, _BAD_HOURS)
                break
            if wanted != subscriber.hours:
                await hub.change(subscriber, wanted)
    except (WebSocketDisconnect, RuntimeError):  # gone while we were sending or closing
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await sender
        hub.unsubscribe(subscriber)


def _message(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """A client's message as an object: JSON, or a bare key; None when it is neither."""
    text = message.get("text")
    if not isinstance(text, str) or len(text) > MAX_MESSAGE_CHARS:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"key": text}
    if isinstance(value, dict):
        return value
    return {"key": text} if isinstance(value, str) else None


def _hours(message: dict[str, Any] | None, query: str | None) -> int | None:
    """The window asked for (message, else query string, else the default), or None when
    it is no whole number of hours within bounds."""
    raw: Any = DEFAULT_HOURS
    if message is not None and message.get("hours") is not None:
        raw = message["hours"]
    elif query is not None:
        raw = query
    if isinstance(raw, bool):
        return None
    try:
        hours = int(raw)
    except (TypeError, ValueError):
        return None
    if isinstance(raw, float) and raw != hours:
        return None
    return hours if 1 <= hours <= MAX_HOURS else None
