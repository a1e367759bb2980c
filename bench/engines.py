"""The dashboard queries over the marts on DuckDB vs Trino vs Spark SQL, in one run, at
the default scale and at ten times that scale, with and without engine start-up.

The marts are built once per scale by the embedded pipeline (generate -> ingest ->
``dbt build`` on DuckDB) under ``.lakehouse/bench/engines-x<scale>``. Each engine then
reads the same marts in its own native form:

- DuckDB:  the build area through the warehouse port (a DuckDB file, read-only);
- Trino:   the marts as Delta tables on the stack's MinIO, registered in its catalog;
- Spark:   the same Delta tables (local copies), read with delta-spark.

Every engine at every scale runs in a process of its own, started cold (a Spark run
after another would otherwise reuse the JVM pyspark keeps per process), and is warmed
the same way: start-up is what a reader pays before the first query (DuckDB's connect,
Trino's server start until it answers, Spark's session with the Delta jars plus loading
the tables); each query then runs once cold, then ``--repeat`` times; "queries" is the
sum over queries of the median warm time. Every engine must return the same number of
rows per query.

Usage: ``python -m bench.engines [--scales 1 10] [--repeat 3]``. Results:
``bench/results/engines.json`` and a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import peer, record
from bench.dashboard_queries import QUERIES
from lakehouse.cdc.file_source import FileSource
from lakehouse.cdc.lander import ingest
from lakehouse.generate import GenerateParams, generate
from lakehouse.settings import Settings, load_settings
from lakehouse.transform.dbt import run_dbt
from lakehouse.warehouse import Warehouse, connect

DATA = Path(".lakehouse") / "bench"
console = Console()

Run = Callable[[str], int]  # runs one query, returns its row count


def prepare(scale: int) -> Settings:
    """The marts at ``scale`` times the default demo (clients and products scaled; the
    same 730 days), built once and reused."""
    settings = load_settings(data_dir=DATA / f"engines-x{scale}", profile="local", pii_key="b" * 32)
    if not settings.warehouse.exists():
        console.print(f"building the marts at {scale}x the default scale (once)")
        generate(settings, GenerateParams(clients=1000 * scale, products=300 * scale))
        ingest(settings, source=FileSource(settings.changes_path))
        run_dbt(settings, ["build"])
    return settings


def export_marts(settings: Settings, uri: str, storage_options: dict[str, str]) -> list[str]:
    """Every mart of the DuckDB build area as a Delta table under ``uri``."""
    from deltalake import write_deltalake

    with connect(settings, "build") as build:
        tables = build.marts()
        for table in tables:
            write_deltalake(
                f"{uri}/{table}",
                build.read_mart(table),
                mode="overwrite",
                storage_options=storage_options or None,
            )
    return tables


def measure(start: Callable[[], Run], stop: Callable[[], None], repeat: int) -> dict[str, Any]:
    began = time.perf_counter()
    run = start()
    startup = time.perf_counter() - began
    per_query: dict[str, dict[str, float | int]] = {}
    try:
        for name, _ in QUERIES.items():
            t = time.perf_counter()
            rows = run(name)
            cold = time.perf_counter() - t
            warm = []
            for _ in range(repeat):
                t = time.perf_counter()
                run(name)
                warm.append(time.perf_counter() - t)
            per_query[name] = {"rows": rows, "cold_s": cold, "warm_s": statistics.median(warm)}
    finally:
        stop()
    queries = sum(float(q["warm_s"]) for q in per_query.values())
    cold = sum(float(q["cold_s"]) for q in per_query.values())
    return {
        "startup_s": startup,
        "queries_s": queries,
        "first_pass_s": cold,
        "with_startup_s": startup + cold,
        "per_query": per_query,
    }


def duckdb_engine(settings: Settings) -> tuple[Callable[[], Run], Callable[[], None]]:
    state: dict[str, Warehouse] = {}

    def start() -> Run:
        build = state["build"] = connect(settings, "build")  # a reader's start-up
        build.query("select 1")
        return lambda name: build.query(QUERIES[name].format(m=build.schema)).num_rows

    return start, lambda: state["build"].close()


def trino_engine(
    stack: Settings, scale: int, tables: list[str]
) -> tuple[Callable[[], Run], Callable[[], None]]:
    from lakehouse.supervisors.trino import TrinoServer

    server = TrinoServer(stack)
    schema = f"bench_x{scale}"

    # the marts were built on DuckDB: Trino reads their Delta copies, registered in a
    # schema of the bench's own, over the port's connection
    trino: Warehouse = connect(stack, "build")

    def start() -> Run:
        server.start()
        trino.query(f"create schema if not exists {schema}")
        known = set(trino.query(f"show tables from {schema}").column(0).to_pylist())
        for table in tables:
            if table not in known:
                location = f"{stack.lake_root}/bench/x{scale}/{table}"
                trino.query(
                    f"call system.register_table(schema_name => '{schema}', "
                    f"table_name => '{table}', table_location => '{location}')"
                )

        def run(name: str) -> int:
            return trino.query(QUERIES[name].format(m=schema)).num_rows

        return run

    def stop() -> None:
        trino.close()
        server.stop()

    return start, stop


def spark_engine(
    settings: Settings, uri: str, tables: list[str]
) -> tuple[Callable[[], Run], Callable[[], None]]:
    from lakehouse.lake.spark_session import spark_session

    state: dict[str, Any] = {}
    schema = "marts"

    def start() -> Run:
        spark = spark_session(settings)
        state["spark"] = spark
        spark.sql(f"create database if not exists {schema}")
        for table in tables:
            spark.sql(
                f"create table if not exists {schema}.{table} using delta location '{uri}/{table}'"
            )

        def run(name: str) -> int:
            return len(spark.sql(QUERIES[name].format(m=schema)).collect())

        return run

    def stop() -> None:
        state["spark"].stop()

    return start, stop


ENGINES = ("duckdb", "trino", "spark")


def _measure_one(engine: str, scale: int, repeat: int) -> dict[str, Any]:
    """One engine at one scale, in this (fresh) process."""
    settings = prepare(scale)
    stack = load_settings(data_dir=DATA / "stack", profile="stack")
    with connect(settings, "build") as build:
        tables = build.marts()
    engines = {
        "duckdb": lambda: duckdb_engine(settings),
        "trino": lambda: trino_engine(stack, scale, tables),
        "spark": lambda: spark_engine(
            settings, str((settings.root / "marts_delta").resolve()), tables
        ),
    }
    start, stop = engines[engine]()
    return measure(start, stop, repeat)


def _spawn(engine: str, scale: int, repeat: int) -> dict[str, Any]:
    return peer.in_own_process(
        *("bench.engines", "--child", engine, "--scales", str(scale), "--repeat", str(repeat))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.stdout.write(json.dumps(_measure_one(args.child, args.scales[0], args.repeat)) + "\n")
        return

    from lakehouse.supervisors.minio import MinioServer
    from lakehouse.supervisors.trino import TrinoServer

    stack = load_settings(data_dir=DATA / "stack", profile="stack")
    minio = MinioServer(stack)
    if "trino" in args.engines:
        minio.start()
    results: dict[str, Any] = {"scales": {}}
    try:
        for scale in args.scales:
            settings = prepare(scale)
            local_uri = str((settings.root / "marts_delta").resolve())
            export_marts(settings, local_uri, {})
            if "trino" in args.engines:
                export_marts(
                    settings, f"{stack.lake_root}/bench/x{scale}", stack.lake_storage_options
                )
            with connect(settings, "build") as build:
                counted = build.query(f"select count(*) from {build.qualified('fct_order_item')}")
                facts = int(counted.column(0)[0].as_py())
            by_engine = {}
            for name in args.engines:
                console.print(f"x{scale}: {name}")
                by_engine[name] = _spawn(name, scale, args.repeat)
            rows = [{q: r["per_query"][q]["rows"] for q in QUERIES} for r in by_engine.values()]
            assert all(r == rows[0] for r in rows), rows
            results["scales"][str(scale)] = {
                "fct_order_item_rows": facts,
                "engines": by_engine,
            }
    finally:
        if "trino" in args.engines:
            TrinoServer(stack).stop()
            minio.stop()
    _report(results)
    from lakehouse.lake.spark_session import DELTA_VERSION
    from lakehouse.supervisors.trino import DEFAULT_VERSION

    peers, ratios = {}, {}
    for scale, entry in results["scales"].items():
        base = entry["engines"].get("duckdb")
        for engine, r in entry["engines"].items():
            peers[f"{engine} x{scale}"] = {k: v for k, v in r.items() if k != "per_query"}
            if base and engine != "duckdb":
                ratios[f"{engine}_vs_duckdb_queries_x{scale}"] = r["queries_s"] / base["queries_s"]
                ratios[f"{engine}_vs_duckdb_with_startup_x{scale}"] = (
                    r["with_startup_s"] / base["with_startup_s"]
                )
    record.write(
        "engines",
        results,
        parameters={
            "scales": args.scales,
            "repeat": args.repeat,
            "engines": args.engines,
            "fct_order_item_rows": {
                s: e["fct_order_item_rows"] for s, e in results["scales"].items()
            },
            "queries": list(QUERIES),
        },
        peers=peers,
        ratios=ratios,
        libraries=("duckdb", "trino", "pyspark", "deltalake", "dbt-duckdb"),
        other_versions={
            "trino_server": DEFAULT_VERSION if "trino" in args.engines else None,
            "delta-spark": DELTA_VERSION if "spark" in args.engines else None,
        },
    )


def _report(results: dict[str, Any]) -> None:
    table = Table(title="dashboard queries over the marts (8 queries; ratio = engine / DuckDB)")
    for column in (
        "scale",
        "engine",
        "start-up s",
        "queries s",
        "ratio",
        "with start-up s",
        "ratio",
    ):
        table.add_column(column, justify="right")
    for scale, entry in results["scales"].items():
        base = entry["engines"]["duckdb"]
        for engine, r in entry["engines"].items():
            table.add_row(
                f"{scale}x ({entry['fct_order_item_rows']:,} lines)",
                engine,
                f"{r['startup_s']:.2f}",
                f"{r['queries_s']:.3f}",
                f"{r['queries_s'] / base['queries_s']:.1f}",
                f"{r['with_startup_s']:.2f}",
                f"{r['with_startup_s'] / base['with_startup_s']:.1f}",
            )
    console.print(table)


if __name__ == "__main__":
    main()
