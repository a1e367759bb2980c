"""Table maintenance: a silver-shaped table after many small merges, before and after
`lakehouse maintain`, against the same rows freshly written as one file.

A table of ``--rows`` rows takes ``--batches`` small merges as a shop's stream does: new
keys, and updates skewed to recent keys (every ``--uniform-every``-th batch also updates
old keys, which rewrites the base file); ``--mode append``: small appends, as bronze
takes them. Then one maintenance run (its policy from the
settings, the retention ``--retention-hours``: 0 stands for "the retention has passed").
Reported: data files, bytes on disk against live bytes, versions, and the time to open
and read the whole table (median of ``--reads``, each on a fresh ``DeltaTable``), before,
after, and for the one-file copy. Recorded in ``bench/results/maintain.json`` (``bench/record.py``).

    .venv/bin/python -m bench.maintain
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import deltalake
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from rich.console import Console
from rich.table import Table

from bench import record
from lakehouse.pipeline.maintain import maintain
from lakehouse.settings import load_settings

BENCH = Path(__file__).resolve().parent


def _rows(ids: np.ndarray, version: int, rng: np.random.Generator) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "order_id": pa.array(ids, pa.int64()),
            "client_id": pa.array(rng.integers(1, 5_000, n), pa.int64()),
            "status": pa.array(rng.choice(["placed", "paid", "shipped", "delivered"], n)),
            "amount": pa.array(np.round(rng.uniform(1, 500, n), 2)),
            "note": pa.array([f"order note {i % 997}" for i in ids]),
            "_event_pos": pa.array(np.full(n, version), pa.int64()),
        }
    )


def _stream(uri: str, rows: int, batches: int, uniform_every: int, seed: int, mode: str) -> None:
    rng = np.random.default_rng(seed)
    write_deltalake(uri, _rows(np.arange(rows), 0, rng))
    next_id = rows
    for b in range(1, batches + 1):
        new = np.arange(next_id, next_id + 10)
        next_id += 10
        if mode == "append":  # bronze's way: every batch a small file of its own
            write_deltalake(uri, _rows(new, b, rng), mode="append")
            continue
        recent = rng.integers(max(0, next_id - 500), next_id - 10, 5)
        keys = [new, recent]
        if b % uniform_every == 0:
            keys.append(rng.integers(0, rows, 2))
        source = _rows(np.unique(np.concatenate(keys)), b, rng)
        (
            DeltaTable(uri)
            .merge(source, "t.order_id = s.order_id", source_alias="s", target_alias="t")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )


def _state(uri: str, reads: int) -> dict[str, Any]:
    path = Path(uri)
    data = sum(p.stat().st_size for p in path.glob("*.parquet"))
    log = sum(p.stat().st_size for p in (path / "_delta_log").iterdir())
    table = DeltaTable(uri)
    live = sum(pa.table(table.get_add_actions(flatten=True)).column("size_bytes").to_pylist())
    times = []
    for _ in range(reads):
        began = time.perf_counter()
        rows = DeltaTable(uri).to_pyarrow_table().num_rows
        times.append(time.perf_counter() - began)
    return {
        "version": table.version(),
        "live_files": len(table.file_uris()),
        "files_on_disk": len(list(path.glob("*.parquet"))),
        "log_files": len(list((path / "_delta_log").iterdir())),
        "live_bytes": live,
        "data_bytes_on_disk": data,
        "log_bytes": log,
        "disk_over_live": round((data + log) / live, 3),
        "rows": rows,
        "read_ms_median": round(statistics.median(times) * 1000, 2),
    }


def run(
    data_dir: Path,
    rows: int,
    batches: int,
    uniform_every: int,
    retention: int,
    reads: int,
    mode: str = "merge",
) -> dict[str, Any]:
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = load_settings(data_dir=data_dir, maintenance_min_retention_hours=0)
    uri = settings.table_uri("silver", "orders")
    began = time.perf_counter()
    _stream(uri, rows, batches, uniform_every, seed=7, mode=mode)
    stream_s = time.perf_counter() - began
    before = _state(uri, reads)
    report = maintain(settings, retention_hours=retention)
    after = _state(uri, reads)
    fresh_uri = str(data_dir / "one_file")
    write_deltalake(fresh_uri, DeltaTable(uri).to_pyarrow_table())
    fresh = _state(fresh_uri, reads)
    steps = [
        {"action": r.action, "reason": r.reason, "seconds": round(r.seconds, 2)}
        for r in report.records
        if r.table_name == "orders"
    ]
    return {
        "benchmark": "maintain",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": {"deltalake": deltalake.__version__},
        "params": {
            "rows": rows,
            "batches": batches,
            "mode": mode,
            "uniform_every": uniform_every,
            "retention_hours": retention,
            "reads": reads,
        },
        "stream_seconds": round(stream_s, 1),
        "before": before,
        "after": after,
        "one_file": fresh,
        "steps": steps,
        "maintain_seconds": round(report.seconds, 2),
        "read_after_over_one_file": round(after["read_ms_median"] / fresh["read_ms_median"], 3),
        "read_before_over_one_file": round(before["read_ms_median"] / fresh["read_ms_median"], 3),
    }


def show(result: dict[str, Any]) -> None:
    params = result["params"]
    table = Table(title=f"{params['batches']:,} small {params['mode']}s, then maintain")
    for column in ("", "live files", "files on disk", "MB live", "MB on disk", "read ms"):
        table.add_column(column, justify="right")
    for name in ("before", "after", "one_file"):
        s = result[name]
        table.add_row(
            name,
            f"{s['live_files']:,}",
            f"{s['files_on_disk']:,}",
            f"{s['live_bytes'] / 2**20:,.1f}",
            f"{(s['data_bytes_on_disk'] + s['log_bytes']) / 2**20:,.1f}",
            f"{s['read_ms_median']:,.1f}",
        )
    Console().print(table)
    print(
        f"read after / one file = {result['read_after_over_one_file']} (target <= 1.2); "
        f"on disk / live after = {result['after']['disk_over_live']} (target <= 1.5)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/lakehouse-bench-maintain"))
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=1_000)
    parser.add_argument("--uniform-every", type=int, default=100)
    parser.add_argument("--retention-hours", type=int, default=0)
    parser.add_argument("--reads", type=int, default=7)
    parser.add_argument(
        "--mode",
        choices=["merge", "append"],
        default="merge",
        help="merge: silver's upserts; append: bronze's small appends",
    )
    args = parser.parse_args()
    result = run(
        args.data_dir,
        args.rows,
        args.batches,
        args.uniform_every,
        args.retention_hours,
        args.reads,
        args.mode,
    )
    record.write(
        "maintain",
        {k: v for k, v in result.items() if k not in ("params", "before", "after", "one_file")},
        parameters=result["params"],
        peers={k: result[k] for k in ("before", "after", "one_file")},
        ratios={
            "read_after_over_one_file": result["read_after_over_one_file"],
            "read_before_over_one_file": result["read_before_over_one_file"],
            "disk_over_live_after": result["after"]["disk_over_live"],
        },
        libraries=("deltalake", "pyarrow"),
        name="maintain" if args.mode == "merge" else f"maintain-{args.mode}",
    )
    show(result)


if __name__ == "__main__":
    main()
