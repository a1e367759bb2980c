"""The serving API under load on 127.0.0.1: an open-loop stream of requests at a fixed
rate, mixed over search, propositions and forecasts, against one ``lakehouse api serve``
process, with ``/health`` in the same stream as the framework's floor.

Open loop: request *i* is due at ``i / rate`` whatever the earlier ones are doing, and its
latency counts from when it was due, so a slow server is not hidden by a client that
waits for it (coordinated omission). The load generator runs in this process, the server
in another, on the same cores.

The issue's bar: at 200 requests/s, p95 at most 50 ms and no error.

Usage: ``python -m bench.api [--data-dir DIR] [--rate 200] [--seconds 30]``: DIR a data
directory the demo (``make demo``) served; default: the small served shop of the API's
tests, built once under ``.lakehouse/bench/api`` (about three minutes). Results:
``bench/results/api.json`` and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from lakehouse.settings import Settings, load_settings
from lakehouse.warehouse import connect

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
console = Console()
BAR_P95_MS = 50.0
# what a shopper types: words of the catalogue's categories and uses
QUERIES = [
    "running shoes",
    "gift for a gardener",
    "kitchen knife",
    "warm jacket",
    "headphones",
    "camping",
    "coffee",
    "office chair",
    "toy for a child",
    "cheap and durable",
]


def _served(data_dir: Path | None) -> Settings:
    if data_dir is not None:
        return load_settings(data_dir=data_dir)
    from tests.support.served import served_shop

    target = Path(".lakehouse").resolve() / "bench" / "api"
    if not (target / "published").exists():
        console.print(f"building the served shop under {target} (once, about 3 minutes)")
        return served_shop(target)
    return load_settings(data_dir=target)


def _ids(settings: Settings) -> tuple[list[int], list[int]]:
    """Clients with propositions and products with forecasts, from the published marts."""
    with connect(settings) as marts:
        clients = marts.query(
            f"select distinct client_id from {marts.qualified('mart_client_recommendations')}"
        ).column(0)
        products = marts.query(
            f"select distinct product_id from {marts.qualified('mart_demand_forecast')}"
        ).column(0)
    return sorted(clients.to_pylist()), sorted(products.to_pylist())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LAKEHOUSE_DATA_DIR": str(settings.root)}
    server = subprocess.Popen(
        [sys.executable, "-m", "lakehouse.cli.main", "api", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the API did not start: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit("the API did not answer /health within 180 s")


def _paths(clients: list[int], products: list[int], n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` requests (kind, path): a third each of search, propositions and forecasts,
    one in twenty a /health."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 20 == 19:
            out.append(("health", "/health"))
            continue
        kind = ("search", "propositions", "forecast")[rng.randrange(3)]
        if kind == "search":
            out.append((kind, f"/search?q={rng.choice(QUERIES)}&limit=10"))
        elif kind == "propositions":
            out.append((kind, f"/clients/{rng.choice(clients)}/propositions"))
        else:
            out.append((kind, f"/forecasts/{rng.choice(products)}"))
    return out


async def _load(
    port: int, key: str, requests: list[tuple[str, str]], rate: float
) -> list[tuple[str, float, int]]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"X-API-Key": key},
        limits=limits,
        timeout=10,
    ) as client:
        start = time.perf_counter()
        results: list[tuple[str, float, int]] = []

        async def one(i: int, kind: str, path: str) -> None:
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                status = (await client.get(path)).status_code
            except httpx.HTTPError:
                status = 0
            results.append((kind, 1000 * (time.perf_counter() - due), status))

        await asyncio.gather(*(one(i, k, p) for i, (k, p) in enumerate(requests)))
        return results


def _summary(results: list[tuple[str, float, int]]) -> dict[str, dict[str, float]]:
    out = {}
    for kind in ("all", "search", "propositions", "forecast", "health"):
        rows = [r for r in results if kind == "all" or r[0] == kind]
        if kind == "all":
            rows = [r for r in rows if r[0] != "health"]
        ms = np.array([r[1] for r in rows])
        out[kind] = {
            "requests": len(rows),
            "errors": sum(1 for r in rows if r[2] != 200),
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(ms.max()), 2),
        }
    return out


def run(data_dir: Path | None, rate: float, seconds: float, seed: int) -> dict[str, Any]:
    settings = _served(data_dir)
    clients, products = _ids(settings)
    port = _free_port()
    server = _start(settings, port)
    try:
        key = settings.api_secret()
        warm = _paths(clients, products, 300, seed + 1)
        asyncio.run(_load(port, key, warm, rate))  # every route and cache warmed alike
        requests = _paths(clients, products, int(rate * seconds), seed)
        began = time.perf_counter()
        results = asyncio.run(_load(port, key, requests, rate))
        took = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(timeout=30)
    summary = _summary(results)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "python": platform.python_version(),
        "data_dir": str(settings.root),
        "clients": len(clients),
        "products": len(products),
        "rate_per_s": rate,
        "seconds": seconds,
        "achieved_rate_per_s": round(len(results) / took, 1),
        "bar_p95_ms": BAR_P95_MS,
        "meets_bar": summary["all"]["p95_ms"] <= BAR_P95_MS and summary["all"]["errors"] == 0,
        "latency": summary,
    }


def show(result: dict[str, Any]) -> None:
    table = Table(
        "requests",
        "count",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        title=f"API at {result['rate_per_s']:g} requests/s for {result['seconds']:g} s "
        f"(achieved {result['achieved_rate_per_s']:g}/s)",
    )
    for kind, row in result["latency"].items():
        table.add_row(
            kind,
            f"{row['requests']:,}",
            str(row["errors"]),
            f"{row['p50_ms']:.1f}",
            f"{row['p95_ms']:.1f}",
            f"{row['p99_ms']:.1f}",
            f"{row['max_ms']:.1f}",
        )
    console.print(table)
    verdict = "meets" if result["meets_bar"] else "MISSES"
    console.print(f"{verdict} the bar: p95 <= {BAR_P95_MS:g} ms with no error (health: floor)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    result = run(args.data_dir, args.rate, args.seconds, args.seed)
    show(result)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "api.json"
    out.write_text(json.dumps(result, indent=2))
    console.print(f"results: {out}")


if __name__ == "__main__":
    main()
