"""The serving API under load on 127.0.0.1: an open-loop stream of requests at a fixed
rate, mixed over search, propositions and forecasts, against one ``lakehouse api serve``
process, with ``/health`` in the same stream as the framework's floor.

Open loop: vegeta (Go) sends request *i* at ``i / rate`` whatever the earlier ones are
doing (a new connection when every open one is busy), so a slow server is not hidden by a
client that waits for it. The load generator and the server share the same cores.

The issue's bar: at 200 requests/s, p95 at most 50 ms and no error.

Usage: ``python -m bench.api [--data-dir DIR] [--rate 200] [--seconds 30]``: DIR a data
directory the demo (``make demo``) served; default: the small served shop of the API's
tests, built once under ``.lakehouse/bench/api`` (about three minutes). Results:
``bench/results/api.json`` and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from bench import record
from lakehouse.settings import Settings, load_settings
from lakehouse.warehouse import connect

BENCH = Path(__file__).resolve().parent
VEGETA_MODULE = "github.com/tsenart/vegeta/v12@v12.13.0"
VEGETA = Path.home() / ".cache" / "lakehouse" / "bin" / "vegeta"
console = Console()
BAR_P95_MS = 50.0
# queries as a search log has them: a few asked often, most rarely (Zipf, s = 1.1) over
# the labelled queries of tests/search and every product's name; each process embeds a
# query once (its cache), so the share of first-seen queries is reported
ZIPF_S = 1.1
LABELLED = Path(__file__).resolve().parent.parent / "tests" / "search" / "queries.yaml"


def _served(data_dir: Path | None) -> Settings:
    if data_dir is not None:
        return load_settings(data_dir=data_dir)
    from tests.support.served import served_shop

    target = Path(".lakehouse").resolve() / "bench" / "api"
    if not (target / "published").exists():
        console.print(f"building the served shop under {target} (once, about 3 minutes)")
        return served_shop(target)
    return load_settings(data_dir=target)


def _queries(settings: Settings) -> list[str]:
    import yaml

    labelled = [q["query"] for q in yaml.safe_load(LABELLED.read_text())]
    with connect(settings) as marts:
        names = marts.query(
            f"select distinct product_name from {marts.qualified('dim_product')} "
            "where is_current and product_id >= 0 order by 1"
        ).column(0)
    return labelled + names.to_pylist()


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


def _paths(
    queries: list[str], clients: list[int], products: list[int], n: int, seed: int
) -> list[tuple[str, str]]:
    """``n`` requests (kind, path): a third each of search, propositions and forecasts,
    one in twenty a /health."""
    rng = random.Random(seed)
    order = queries[:]
    random.Random(0).shuffle(order)
    weights = [1 / (rank**ZIPF_S) for rank in range(1, len(order) + 1)]
    out = []
    for i in range(n):
        if i % 20 == 19:
            out.append(("health", "/health"))
            continue
        kind = ("search", "propositions", "forecast")[rng.randrange(3)]
        if kind == "search":
            query = rng.choices(order, weights)[0]
            out.append((kind, "/search?" + urlencode({"q": query, "limit": 10})))
        elif kind == "propositions":
            out.append((kind, f"/clients/{rng.choice(clients)}/propositions"))
        else:
            out.append((kind, f"/forecasts/{rng.choice(products)}"))
    return out


def _load(
    port: int, key: str, requests: list[tuple[str, str]], rate: float
) -> list[tuple[str, float, int]]:
    """The requests sent by vegeta at ``rate`` per second, in order: each one's kind,
    latency (ms) and status (0: no answer)."""
    kinds = {path: kind for kind, path in requests}
    base = f"http://127.0.0.1:{port}"
    targets = "".join(f"GET {base}{path}\nX-API-Key: {key}\n\n" for _, path in requests)
    attack = subprocess.run(
        [
            _vegeta(),
            "attack",
            f"-rate={rate:g}/s",
            f"-duration={len(requests) / rate:.3f}s",
            "-timeout=10s",
            "-keepalive=true",
            "-max-workers=256",
            "-format=http",
        ],
        input=targets.encode(),
        capture_output=True,
        check=True,
    )
    encoded = subprocess.run(
        [_vegeta(), "encode", "-to=json"], input=attack.stdout, capture_output=True, check=True
    )
    out = []
    for line in encoded.stdout.decode().splitlines():
        result = json.loads(line)
        path = result["url"].removeprefix(base)
        out.append((kinds.get(path, "other"), result["latency"] / 1e6, int(result["code"])))
    return out


def _vegeta() -> str:
    """vegeta (github.com/tsenart/vegeta), an open-loop HTTP load generator in Go: built
    once by ``make bench-api`` into ~/.cache/lakehouse/bin."""
    found = shutil.which("vegeta") or str(VEGETA)
    if not Path(found).exists():
        raise SystemExit(
            f"vegeta is not installed: `make bench-api` builds it ({VEGETA_MODULE} into "
            f"{VEGETA.parent})"
        )
    return found


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
    queries = _queries(settings)
    port = _free_port()
    server = _start(settings, port)
    try:
        key = settings.api_secret()
        warm = _paths(queries, clients, products, 300, seed + 1)
        _load(port, key, warm, rate)  # every route and cache warmed alike
        requests = _paths(queries, clients, products, int(rate * seconds), seed)
        searched = [p for k, p in requests if k == "search"]
        warmed = {p for k, p in warm if k == "search"}
        first_seen = len(set(searched) - warmed)
        began = time.perf_counter()
        results = _load(port, key, requests, rate)
        took = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(timeout=30)
    summary = _summary(results)
    return {
        "data_dir": str(settings.root),
        "clients": len(clients),
        "products": len(products),
        "rate_per_s": rate,
        "seconds": seconds,
        "achieved_rate_per_s": round(len(results) / took, 1),
        "distinct_queries": len(queries),
        "searches_first_seen": first_seen,
        "searches": len(searched),
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
    console.print(
        f"{result['searches_first_seen']:,} of {result['searches']:,} searches asked a query "
        f"first ({result['distinct_queries']:,} queries, Zipf s = {ZIPF_S})"
    )
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
    latency = result["latency"]
    out = record.write(
        "api",
        result,
        parameters={
            "rate_per_s": args.rate,
            "seconds": args.seconds,
            "seed": args.seed,
            "warm_up_requests": 300,
            "clients": result["clients"],
            "products": result["products"],
            "distinct_queries": result["distinct_queries"],
        },
        peers={
            "api (search, propositions, forecast)": latency["all"],
            "/health": latency["health"],
        },
        ratios={"p95_vs_bar": latency["all"]["p95_ms"] / BAR_P95_MS},
        libraries=("fastapi", "uvicorn", "httpx", "qdrant-client", "duckdb", "numpy"),
        other_versions={"vegeta": VEGETA_MODULE.rsplit("@v", 1)[1]},
    )
    console.print(f"results: {out}")


if __name__ == "__main__":
    main()
