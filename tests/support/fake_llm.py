"""A FAKE OpenAI-compatible endpoint on 127.0.0.1, for the reports' narrative: a hosted or
on-premises language model cannot run here, so the tests stand this in for vLLM, TGI or
llama.cpp's server. It answers ``POST /v1/chat/completions`` with the text it is given
(or a function of the request's facts), or hangs to test the time-out, and keeps every
request body it received."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | Callable[[dict[str, Any]], str]


@dataclass
class FakeLLM:
    """What the fake answers (``reply``) or how long it stalls first (``hang_s``)."""

    reply: Reply = "A quiet week."
    hang_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    raw_bodies: list[bytes] = field(default_factory=list)
    url: str = ""

    def text_for(self, body: dict[str, Any]) -> str:
        return self.reply(body) if callable(self.reply) else self.reply


def facts_of(body: dict[str, Any]) -> dict[str, Any]:
    """The facts a chat request carries (the user message's JSON after ``Facts:``)."""
    user = next(m for m in body["messages"] if m["role"] == "user")["content"]
    return json.loads(user.split("\n", 1)[1])


@contextmanager
def fake_llm(reply: Reply = "A quiet week.", *, hang_s: float = 0.0) -> Iterator[FakeLLM]:
    """The fake served on a free port of 127.0.0.1 while the block runs; ``.url`` is its
    base URL (``http://127.0.0.1:<port>/v1``), what ``llm_base_url`` takes."""
    fake = FakeLLM(reply=reply, hang_s=hang_s)
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            fake.raw_bodies.append(raw)
            body = json.loads(raw)
            fake.requests.append(body)
            if self.path.rstrip("/") != "/v1/chat/completions":
                self.send_error(404)
                return
            if fake.hang_s:
                stop.wait(fake.hang_s)  # the client gives up first; the server stops early
            answer = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": fake.text_for(body)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
            data = json.dumps(answer).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, name="fake-llm", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
