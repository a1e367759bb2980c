"""The API under a real uvicorn server on 127.0.0.1, in a thread of the test's process
(for what a test client cannot do: a browser, requests running while an alias moves)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lakehouse.settings import Settings
from tests.support.ports import free_port


@contextmanager
def running_api(settings: Settings) -> Iterator[str]:
    """The API's base URL while the block runs."""
    import uvicorn

    from lakehouse.api.app import create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", workers=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
