"""Ingest + apply throughput against two peers, in one run, on the same change events.

- ours:    ``lakehouse ingest`` (decode, dead letters, bronze, silver) over all topics.
- naive:   what a first CDC script does: per batch of Debezium records (2,048, the
           engine's batch size) decode each record with orjson, keep the last change
           per key, and ``DeltaTable.merge`` it into the current-state table.
- ceiling: decode the same bytes with orjson and write the rows once as Parquet with
           pyarrow: no ordering, no dedup, no merge, no commit protocol.

Each contender runs in its own process (peak RSS is its own), started cold, after the
change files were read once so that each finds them in the page cache. The naive merge runs
over every event by default; ``--naive-events N`` stops it after N events per topic
for a quick look (merges get slower as tables grow, so that flatters it).

Usage: ``python -m bench.ingest [--data-dir D]`` (generates the default demo data first
when D holds none). Results: ``bench/results/ingest.json`` and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from bench import peer, record
from lakehouse.cdc.file_source import FileSource
from lakehouse.contracts import load_contracts
from lakehouse.settings import Settings

NAIVE_BATCH = 2048


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _topics(settings: Settings) -> list[tuple[str, object]]:
    contracts = load_contracts(settings.contracts_dir)
    by_topic = {settings.topic(c.table, c.schema): c for c in contracts.values()}
    return [(t, by_topic[t]) for t in FileSource(settings.changes_path).topics() if t in by_topic]


def run_ours(changes: Path, work: Path) -> dict[str, float]:
    from lakehouse.cdc.lander import ingest

    settings = Settings(data_dir=work, changes_dir=changes)
    started = time.perf_counter()
    report = ingest(settings)
    seconds = time.perf_counter() - started
    return {"events": report.events, "seconds": seconds}


def run_ceiling(changes: Path, work: Path) -> dict[str, float]:
    settings = Settings(data_dir=work, changes_dir=changes)
    source = FileSource(changes)
    events = 0
    started = time.perf_counter()
    for topic, contract in _topics(settings):
        rows = []
        for batch in source.read(topic, 0, 1 << 30):
            for line in batch.lines:
                value = orjson.loads(line)["value"]
                if value is None:
                    continue
                image = value["after"] if value["op"] != "d" else value["before"]
                rows.append({**image, "_op": value["op"], "_lsn": value["source"]["lsn"]})
            events += len(batch.lines)
        if rows:
            pq.write_table(pa.Table.from_pylist(rows), work / f"{contract.table}.parquet")
    return {"events": events, "seconds": time.perf_counter() - started}


def run_naive(changes: Path, work: Path, limit: int) -> dict[str, float]:
    from deltalake import DeltaTable, write_deltalake

    settings = Settings(data_dir=work, changes_dir=changes)
    source = FileSource(changes)
    events = 0
    started = time.perf_counter()
    for topic, contract in _topics(settings):
        uri = str(work / "naive" / contract.table)
        keys = list(contract.primary_key)
        for batch in source.read(topic, 0, NAIVE_BATCH):
            if limit and batch.first_offset >= limit:
                break
            latest: dict[tuple, dict] = {}
            for line in batch.lines:
                value = orjson.loads(line)["value"]
                if value is None:
                    continue
                image = value["after"] if value["op"] != "d" else value["before"]
                row = {**image, "_op": value["op"]}
                latest[tuple(row[k] for k in keys)] = row
            events += len(batch.lines)
            if not latest:
                continue
            schema = pa.schema([*contract.wire_schema, pa.field("_op", pa.string())])
            table = pa.Table.from_pylist(list(latest.values()), schema=schema)
            if not (Path(uri) / "_delta_log").exists():
                write_deltalake(uri, table.filter(pa.compute.not_equal(table["_op"], "d")))
                continue
            on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
            cols = {c: f"s.{c}" for c in table.column_names}
            (
                DeltaTable(uri)
                .merge(table, predicate=on, source_alias="s", target_alias="t")
                .when_matched_delete(predicate="s._op = 'd'")
                .when_matched_update(updates=cols, predicate="s._op <> 'd'")
                .when_not_matched_insert(updates=cols, predicate="s._op <> 'd'")
                .execute()
            )
    return {"events": events, "seconds": time.perf_counter() - started}


def _child(args: argparse.Namespace) -> None:
    work = Path(args.work)
    changes = Path(args.changes)
    if args.contender == "ours":
        result = run_ours(changes, work)
    elif args.contender == "ceiling":
        result = run_ceiling(changes, work)
    else:
        result = run_naive(changes, work, args.naive_events)
    result["peak_rss_mb"] = _peak_rss_mb()
    sys.stdout.write(json.dumps(result) + "\n")


def _spawn(contender: str, changes: Path, naive_events: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix=f"bench-{contender}-"))
    peer.warm_page_cache(changes)  # every contender reads its input from memory alike
    load = os.getloadavg()[0]  # the machine is shared: what else ran beside this peer
    try:
        result: dict[str, float] = peer.in_own_process(
            *("bench.ingest", "--child", contender, "--changes", str(changes)),
            *("--work", str(work), "--naive-events", str(naive_events)),
        )
        result["load_1min_at_start"] = load
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=".lakehouse")
    parser.add_argument(
        "--naive-events",
        type=int,
        default=0,
        help="events per topic the naive merge processes (default 0: all of them)",
    )
    parser.add_argument("--child", dest="contender", help=argparse.SUPPRESS)
    parser.add_argument("--changes", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        _child(args)
        return

    from rich.console import Console
    from rich.table import Table

    from lakehouse.generate import GenerateParams, generate

    settings = Settings(data_dir=Path(args.data_dir))
    generate(settings, GenerateParams())
    changes = settings.changes_path
    results = {c: _spawn(c, changes, args.naive_events) for c in ("ours", "naive", "ceiling")}
    for r in results.values():
        r["events_per_s"] = r["events"] / r["seconds"]
    ours = results["ours"]["events_per_s"]
    summary = {
        "ours_vs_naive": ours / results["naive"]["events_per_s"],
        "ours_vs_ceiling": ours / results["ceiling"]["events_per_s"],
    }
    record.write(
        "ingest",
        {"targets": {"ours_vs_naive": ">= 5", "ours_vs_ceiling": ">= 0.33"}},
        parameters={
            "data": "the default demo (lakehouse generate, default parameters)",
            "events": results["ours"]["events"],
            "naive_batch": NAIVE_BATCH,
            "naive_events_per_topic": args.naive_events or "all",
        },
        peers=results,
        ratios=summary,
        libraries=("deltalake", "pyarrow", "orjson"),
    )
    table = Table(title="ingest + apply, events per second (one run)")
    for col in ("contender", "events", "seconds", "events/s", "peak RSS MB"):
        table.add_column(col, justify="right")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['events']:,}",
            f"{r['seconds']:.1f}",
            f"{r['events_per_s']:,.0f}",
            f"{r['peak_rss_mb']:,.0f}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"ours / naive merge = {summary['ours_vs_naive']:.1f}x (target >= 5x); "
        f"ours / ceiling = {summary['ours_vs_ceiling']:.2f} (target >= 0.33)"
    )


if __name__ == "__main__":
    main()
