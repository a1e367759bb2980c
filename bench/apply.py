"""Silver apply throughput: delta-rs against Spark (delta-spark), in one run, same input.

A silver table of ``--rows`` rows (10,000,000 by default) and its bronze change log: the
snapshot that made it, then a batch of ``--changes`` new changes (a tenth of the rows by
default: 60 % updates of random keys, a twentieth of them with an unchanged-TOAST
placeholder, 10 % deletes, 30 % inserts). Built once with Arrow and delta-rs and cached
under ``<data-dir>/bench/apply-<rows>-<changes>/``. Each engine then applies the batch to
its own copy of the silver table, in its own process started cold, after the bronze
change log was read once (each finds it in the page cache alike):

- delta-rs: ``lakehouse.lake.silver.apply``;
- Spark: ``lakehouse.lake.spark_silver.apply`` on ``settings.spark_master`` (local[2]),
  timed with and without starting the session (JVM, jars, Delta).

Both results must hold the same rows (count and a checksum). Usage:
``python -m bench.apply [--rows N] [--changes M] [--data-dir D]``. Results:
``bench/results/apply.json`` and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from bench import peer, record
from lakehouse.cdc.decode import bronze_schema
from lakehouse.contracts import Contract, load_contracts
from lakehouse.lake import bronze, delta
from lakehouse.lake.silver import APP_ID, UNAVAILABLE, silver_schema
from lakehouse.lake.spark_session import DELTA_VERSION
from lakehouse.settings import Settings

TOPIC = "bench.public.item"
CHUNK = 1_000_000
CONTRACT = """\
table: item
schema: public
primary_key: [item_id]
columns:
  - {name: item_id, type: bigint, nullable: false}
  - {name: name, type: string}
  - {name: qty, type: int, nullable: false}
  - {name: price, type: "decimal(10,2)", nullable: false}
  - {name: updated_at, type: timestamptz, nullable: false}
"""
SNAPSHOT_POS = 1_000  # every snapshot row's source position
START = np.datetime64("2024-01-01T00:00:00", "us")


def _contract(home: Path) -> Contract:
    (home / "contracts").mkdir(parents=True, exist_ok=True)
    (home / "contracts" / "item.yml").write_text(CONTRACT)
    return load_contracts(home / "contracts")["item"]


def _rows(
    schema: pa.Schema,
    ids: np.ndarray,
    op: np.ndarray,
    offset: np.ndarray,
    commit: np.ndarray,
    event: np.ndarray,
    rnd: np.random.Generator,
) -> pa.RecordBatch:
    """Bronze rows: data columns (nulls but the key for a delete) and change metadata."""
    n = len(ids)
    deleted = pa.array(op == "d")
    ts = pa.array(START + rnd.integers(0, 10**13, n).astype("timedelta64[us]"))
    name = pc.binary_join_element_wise("item ", pc.cast(pa.array(offset), pa.string()), "")
    placeholder = pa.array((op == "u") & (rnd.random(n) < 0.05))
    columns = {
        "item_id": pa.array(ids),
        "name": pc.if_else(placeholder, UNAVAILABLE, name),
        "qty": pa.array(rnd.integers(1, 100, n, dtype=np.int32)),
        "price": pa.array(rnd.integers(0, 10**6, n) / 100).cast(pa.decimal128(10, 2)),
        "updated_at": ts.cast(pa.timestamp("us", tz="UTC")),
        "_op": pa.array(op),
        "_commit_pos": pa.array(commit).cast(pa.decimal128(38, 0)),
        "_event_pos": pa.array(event).cast(pa.decimal128(38, 0)),
        "_tx_id": pa.array(commit // 80),
        "_source_ts": ts.cast(pa.timestamp("us", tz="UTC")),
        "_is_snapshot": pa.array(op == "r"),
        "_offset": pa.array(offset),
        "_ingested_at": ts.cast(pa.timestamp("us", tz="UTC")),
    }
    data = {"name", "qty", "price", "updated_at"}
    arrays = [
        pc.if_else(deleted, pa.nulls(n, columns[f.name].type), columns[f.name])
        if f.name in data
        else columns[f.name]
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, names=schema.names).cast(schema)


def build(home: Path, rows: int, changes: int) -> Contract:
    """Bronze (snapshot + change batch) and silver (the snapshot applied), once."""
    contract = _contract(home)
    done = home / "built"
    if done.exists():
        return contract
    for layer in ("bronze", "silver"):
        shutil.rmtree(home / layer, ignore_errors=True)
    schema = bronze_schema(contract).append(bronze.INGESTED_AT)
    rnd = np.random.default_rng(42)

    def snapshot() -> Iterator[pa.RecordBatch]:
        for lo in range(0, rows, CHUNK):
            ids = np.arange(lo, min(rows, lo + CHUNK), dtype=np.int64)
            pos = np.full(len(ids), SNAPSHOT_POS, dtype=np.int64)
            yield _rows(schema, ids, np.full(len(ids), "r"), ids, pos, pos, rnd)

    write_deltalake(
        str(home / "bronze"),
        pa.RecordBatchReader.from_batches(schema, snapshot()),
        commit_properties=delta.commit_properties(TOPIC, rows - 1),
    )
    silver = silver_schema(contract, schema)
    snap = DeltaTable(str(home / "bronze")).to_pyarrow_dataset()
    write_deltalake(
        str(home / "silver"),
        snap.scanner(columns=silver.names).to_reader(),
        commit_properties=delta.commit_properties(APP_ID, rows - 1),
    )

    kind = rnd.choice(np.array(["u", "d", "c"]), changes, p=[0.6, 0.1, 0.3])
    ids = rnd.integers(0, rows, changes)
    inserted = kind == "c"
    ids[inserted] = rows + np.arange(int(inserted.sum()))
    k = np.arange(changes, dtype=np.int64)
    event = 2 * SNAPSHOT_POS + 8 * k
    commit = 2 * SNAPSHOT_POS + 8 * (k // 10 * 10 + 10)  # transactions of ten changes
    batch = _rows(schema, ids, kind, rows + k, commit, event, rnd)
    delta.append(
        str(home / "bronze"),
        pa.Table.from_batches([batch]),
        app_id=TOPIC,
        version=rows + changes - 1,
        storage_options={},
    )
    done.touch()
    return contract


def _checksum(uri: str) -> dict[str, int]:
    table = DeltaTable(uri).to_pyarrow_dataset().to_table(columns=["item_id", "qty", "name"])
    return {
        "rows": table.num_rows,
        "sum_item_id": int(pc.sum(table["item_id"]).as_py() or 0),
        "sum_qty": int(pc.sum(table["qty"]).as_py() or 0),
        "placeholders": int(pc.sum(pc.equal(table["name"], UNAVAILABLE)).as_py() or 0),
    }


def _child(engine: str, home: Path, work: Path, driver_memory: str) -> dict[str, float]:
    """Apply the cached batch to ``work/silver`` with ``engine``; seconds as measured."""
    started = time.perf_counter()
    contract = _contract(home)
    bronze_uri, silver_uri = str(home / "bronze"), str(work / "silver")
    if engine == "delta-rs":
        from lakehouse.lake import silver

        ready = time.perf_counter()
        result = silver.apply(contract, bronze_uri, silver_uri, {})
    else:
        from lakehouse.lake import spark_silver
        from lakehouse.lake.spark_session import spark_session

        spark = spark_session(Settings(data_dir=work), driver_memory=driver_memory)
        ready = time.perf_counter()
        result = spark_silver.apply(spark, contract, bronze_uri, silver_uri, {})
    done = time.perf_counter()
    return {
        "changes": result.changes,
        "upserted": result.upserted,
        "deleted": result.deleted,
        "rows": result.rows,
        "startup_seconds": ready - started,
        "apply_seconds": done - ready,
        "total_seconds": done - started,
    }


def _spawn(engine: str, home: Path, driver_memory: str) -> dict[str, Any]:
    work = home / f"run-{engine}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    shutil.copytree(home / "silver", work / "silver")
    peer.warm_page_cache(home / "bronze", work / "silver")
    load = os.getloadavg()[0]  # the machine is shared: what else ran beside this peer
    try:
        result = peer.in_own_process(
            *("bench.apply", "--child", engine, "--home", str(home), "--work", str(work)),
            *("--driver-memory", driver_memory),
        )
        result["checksum"] = _checksum(str(work / "silver"))
        result["load_1min_at_start"] = load
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", default=".lakehouse")
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows in silver")
    parser.add_argument("--changes", type=int, help="changes applied (default rows / 10)")
    parser.add_argument("--driver-memory", default="4g", help="Spark driver heap")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = _child(args.child, Path(args.home), Path(args.work), args.driver_memory)
        sys.stdout.write(json.dumps(result) + "\n")
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    changes = args.changes or max(1, args.rows // 10)
    home = Settings(data_dir=Path(args.data_dir)).root / "bench" / f"apply-{args.rows}-{changes}"
    home.mkdir(parents=True, exist_ok=True)
    with console.status(f"building silver of {args.rows:,} rows and {changes:,} changes"):
        started = time.perf_counter()
        build(home, args.rows, changes)
    console.print(f"input ready in {time.perf_counter() - started:.1f} s at {home}")
    results = {}
    for engine in ("delta-rs", "spark"):
        with console.status(f"applying with {engine}"):
            results[engine] = _spawn(engine, home, args.driver_memory)
    same = results["delta-rs"]["checksum"] == results["spark"]["checksum"]

    table = Table(title=f"apply {changes:,} changes to a silver table of {args.rows:,} rows")
    for column in ("engine", "start-up s", "apply s", "changes/s", "with start-up s", "changes/s"):
        table.add_column(column, justify="left" if column == "engine" else "right")
    for engine, r in results.items():
        apply_s, total_s = r["apply_seconds"], r["total_seconds"]
        r["changes_per_s"] = changes / apply_s
        r["changes_per_s_with_startup"] = changes / total_s
        table.add_row(
            engine,
            f"{r['startup_seconds']:.1f}",
            f"{apply_s:.1f}",
            f"{changes / apply_s:,.0f}",
            f"{total_s:.1f}",
            f"{changes / total_s:,.0f}",
        )
    ours, spark = results["delta-rs"], results["spark"]
    ratio = ours["changes_per_s"] / spark["changes_per_s"]
    ratio_startup = ours["changes_per_s_with_startup"] / spark["changes_per_s_with_startup"]
    console.print(table)
    console.print(
        f"delta-rs / Spark: [bold]{ratio:.2f}x[/] (apply only), "
        f"[bold]{ratio_startup:.2f}x[/] with start-up; same silver rows: {same}"
    )
    record.write(
        "apply",
        {"same_silver": same},
        parameters={
            "rows": args.rows,
            "changes": changes,
            "mix": "60% updates (a twentieth with TOAST placeholders), 10% deletes, 30% inserts",
            "spark_master": Settings().spark_master,
            "driver_memory": args.driver_memory,
        },
        peers=results,
        ratios={
            "delta_rs_vs_spark": ratio,
            "delta_rs_vs_spark_with_startup": ratio_startup,
        },
        libraries=("deltalake", "pyarrow", "pyspark"),
        other_versions={"delta-spark": DELTA_VERSION},  # its jars, fetched by spark_session
    )
    if not same:
        raise SystemExit("the two engines' silver tables differ")


if __name__ == "__main__":
    main()
