"""Micro-batches into a large silver table: the merge-on-read tail against the whole-file
merge, in one run, on the same changes.

A silver table of ``--rows`` rows (10,000,000 by default; the table of ``bench/apply.py``,
built once and cached under ``<data-dir>/bench/microbatch-<rows>/``) takes ``--rate``
changes per second (1,000) for ``--seconds`` (600), in two key distributions:

- ``shop``: 70 % updates of recent keys (the key ``newest - g``, ``g`` geometric with a
  mean of 1 % of the table: a shop's recent orders change, old ones rarely), 20 %
  inserts of new keys, 10 % deletes of recent keys;
- ``uniform``: the same mix, updates and deletes of keys drawn uniformly.

Every run starts from a fresh copy of the table and an empty bronze table. A driver
process appends a bronze batch every ``--interval`` seconds (``rate * interval`` changes,
the same changes for both peers: the generator is seeded by distribution and batch);
the main process is the lander's loop: apply what bronze holds, wait for the next
interval. The peers:

- ``tail`` (ours): ``silver.apply`` appends the batch's last change per key to the tail;
  the loop folds the tail into the base when ``lakehouse ingest --follow`` would (past
  the settings' thresholds, ``silver.tail_due``, in a background thread,
  ``silver.Folder``), and once at the end (timed and counted);
- ``merge`` (the old apply): ``silver.apply_merge``, one MERGE per batch into the base,
  which rewrites every file holding a changed key. It runs for the same time; what it
  did not apply by then is its backlog, its freshness counted up to the end (a lower
  bound, marked ``>=``).

Figures, per distribution and peer:

- batch commit time p50/p95: seconds of each apply that applied something;
- freshness p50/p95: for each change, from its bronze append's commit to the end of
  the apply that made it readable in silver's current state (``silver.read_current``);
- bytes written per changed byte: the sizes of the data files added to the silver
  Delta tables (base and tail, from their ``_delta_log`` add actions: appends, merges
  and the folds, the final fold included; not the compaction) divided by the changed
  bytes, the Arrow size (``Table.nbytes``) of every change's row in silver's columns.

Then, for ``tail``, after its micro-batches (``seconds / interval``, 1,200 by default),
the fold and a maintenance (delta-rs ``optimize.compact``, ``create_checkpoint``,
``vacuum`` with no retention, ``cleanup_metadata``): the time to read the current state
against the same rows freshly written in one file (best of three reads each, in turn), and the
table's size on disk (base and tail directories, logs included) against its live size
(the data files of the current version). Goals: freshness p95 <= 5 s, bytes per changed
byte <= 20, read <= 1.2x, disk <= 1.5x.

Usage: ``python -m bench.microbatch [--rows N] [--seconds S] [--rate R]``. Results:
``bench/results/microbatch.json`` and a table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from bench import record
from bench.apply import CHUNK, SNAPSHOT_POS, _contract, _rows
from lakehouse.cdc.decode import bronze_schema
from lakehouse.contracts import Contract
from lakehouse.lake import bronze, delta, silver
from lakehouse.settings import Settings

DISTRIBUTIONS = ("shop", "uniform")
PEERS = ("tail", "merge")
DRIVER = "bench.driver"


# -- the table ---------------------------------------------------------------------------


def build(home: Path, rows: int) -> Contract:
    """The silver table of ``rows`` snapshot rows (as ``bench/apply.py`` makes it), once."""
    contract = _contract(home)
    done = home / "built"
    if done.exists():
        return contract
    shutil.rmtree(home / "silver", ignore_errors=True)
    schema = bronze_schema(contract).append(bronze.INGESTED_AT)
    target = silver.silver_schema(contract, schema)
    rnd = np.random.default_rng(42)

    def snapshot() -> Iterator[pa.RecordBatch]:
        for lo in range(0, rows, CHUNK):
            ids = np.arange(lo, min(rows, lo + CHUNK), dtype=np.int64)
            pos = np.full(len(ids), SNAPSHOT_POS, dtype=np.int64)
            batch = _rows(schema, ids, np.full(len(ids), "r"), ids, pos, pos, rnd)
            yield pa.Table.from_batches([batch]).select(target.names).to_batches()[0]

    write_deltalake(
        str(home / "silver" / "item"),
        pa.RecordBatchReader.from_batches(target, snapshot()),
        commit_properties=delta.commit_properties(silver.APP_ID, rows - 1),
    )
    done.touch()
    return contract


# -- the driver: bronze batches at the rate ----------------------------------------------


def _changes(dist: str, rows: int, n: int, batch: int, newest: int) -> tuple[np.ndarray, ...]:
    """Keys and operations of batch ``batch``: the same for every peer."""
    rnd = np.random.default_rng([DISTRIBUTIONS.index(dist), batch])
    kind = rnd.choice(np.array(["u", "c", "d"]), n, p=[0.7, 0.2, 0.1])
    if dist == "shop":
        back = rnd.geometric(1 / max(2.0, rows / 100), n)
        ids = np.maximum(0, newest - back)
    else:
        ids = rnd.integers(0, newest, n)
    inserted = kind == "c"
    ids[inserted] = newest + np.arange(int(inserted.sum()))
    return ids, kind, rnd.integers(0, 2**31, 1)


def drive(
    bronze_uri: str,
    contract: Contract,
    dist: str,
    rows: int,
    per_batch: int,
    interval: float,
    batches: int,
    out: Any,
) -> None:
    """Append ``batches`` bronze batches, one every ``interval`` seconds; report each
    one's last offset, commit time and changed bytes on ``out``."""
    schema = bronze_schema(contract).append(bronze.INGESTED_AT)
    target = silver.silver_schema(contract, schema)
    newest, offset = rows, rows
    start = time.time()
    for b in range(batches):
        ids, kind, seed = _changes(dist, rows, per_batch, b, newest)
        newest += int((kind == "c").sum())
        k = np.arange(offset, offset + per_batch, dtype=np.int64)
        event = 2 * SNAPSHOT_POS + 8 * k
        commit = 2 * SNAPSHOT_POS + 8 * (k // 10 * 10 + 10)  # transactions of ten changes
        rnd = np.random.default_rng(seed)
        rows_b = pa.Table.from_batches([_rows(schema, ids, kind, k, commit, event, rnd)])
        offset += per_batch
        delta.append(bronze_uri, rows_b, app_id=DRIVER, version=offset - 1, storage_options={})
        out.put((b, offset - 1, time.time(), rows_b.select(target.names).nbytes))
        time.sleep(max(0.0, start + (b + 1) * interval - time.time()))
    out.put(None)


# -- the lander's loop -------------------------------------------------------------------


def _added_bytes(uri: str, after: int) -> int:
    """Bytes of the data files added by the commits after version ``after``."""
    log = Path(uri) / "_delta_log"
    total = 0
    if not log.exists():
        return 0
    for path in log.glob("*.json"):
        if int(path.stem) <= after:
            continue
        for line in path.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                total += int(action["add"]["size"])
    return total


def _version(uri: str) -> int:
    table = delta.open_table(uri, {})
    return -1 if table is None else table.version()


def run(
    home: Path, contract: Contract, dist: str, peer: str, args: argparse.Namespace
) -> dict[str, Any]:
    work = home / f"run-{dist}-{peer}"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(home / "silver", work / "silver")
    bronze_uri, silver_uri = str(work / "bronze" / "item"), str(work / "silver" / "item")
    schema = bronze_schema(contract).append(bronze.INGESTED_AT)
    delta.ensure_table(bronze_uri, schema, {})
    settings = Settings()
    per_batch = max(1, round(args.rate * args.interval))
    batches = max(1, round(args.seconds / args.interval))
    before = {silver_uri: _version(silver_uri), silver.tail_uri(silver_uri): -1}

    queue: Any = mp.get_context("spawn").Queue()
    driver = mp.get_context("spawn").Process(
        target=drive,
        args=(bronze_uri, contract, dist, args.rows, per_batch, args.interval, batches, queue),
    )
    landed: list[tuple[int, int, float, int]] = []
    applies: list[tuple[float, float, int]] = []  # (started, finished, applied offset)
    folder = silver.Folder()
    apply = silver.apply if peer == "tail" else silver.apply_merge
    driver.start()
    running, stopped = True, None  # the driver appends; when it stopped
    while True:
        t0 = time.time()
        while True:
            try:
                item = queue.get_nowait()
            except Exception:
                break
            if item is None:
                running, stopped = False, time.time()
            else:
                landed.append(item)
        result = apply(contract, bronze_uri, silver_uri, {})
        t1 = time.time()
        if result.changes:
            applies.append((t0, t1, result.offset))
        upkeep = peer == "tail" and silver.tail_due(
            silver_uri,
            {},
            rows=settings.silver_fold_rows,
            ratio=settings.silver_fold_ratio,
            files=settings.silver_fold_files,
        )
        if upkeep:  # as `ingest --follow`: in the background
            folder.start(contract, silver_uri, {}, upkeep)
        caught_up = bool(landed) and applies and applies[-1][2] >= landed[-1][1]
        # the same time for every peer: until the driver stopped, then one more interval
        if stopped is not None and (caught_up or time.time() > stopped + args.interval):
            break
        time.sleep(max(0.0, t0 + args.interval - time.time()))
    end = time.time()
    while running:  # batches the driver appended after the loop stopped
        item = queue.get()
        if item is None:
            running = False
        else:
            landed.append(item)
    driver.join()
    folder.wait()
    final_fold = 0.0
    if peer == "tail":
        t = time.time()
        silver.fold(contract, silver_uri, {})
        final_fold = time.time() - t

    fresh: list[float] = []
    unseen = 0
    for _, last, committed, _ in landed:
        seen = next((done for _, done, applied in applies if applied >= last), None)
        if seen is None:
            unseen += 1
            seen = end
        fresh.append(seen - committed)
    written = sum(_added_bytes(uri, v) for uri, v in before.items())
    changed = sum(b for *_, b in landed)
    commits = [done - begun for begun, done, _ in applies]
    out: dict[str, Any] = {
        "distribution": dist,
        "peer": peer,
        "batches_landed": len(landed),
        "changes_landed": len(landed) * per_batch,
        "applies": len(applies),
        "batches_not_applied": unseen,
        "commit_p50_s": _pct(commits, 50),
        "commit_p95_s": _pct(commits, 95),
        "freshness_p50_s": _pct(fresh, 50),
        "freshness_p95_s": _pct(fresh, 95),
        "freshness_lower_bound": unseen > 0,
        "folds": len(folder.done) + (peer == "tail"),
        "tail_compactions": folder.compactions,
        "final_fold_s": final_fold,
        "bytes_written": written,
        "changed_bytes": changed,
        "bytes_per_changed_byte": written / changed if changed else None,
    }
    if peer == "tail":
        out.update(maintained(contract, work, silver_uri))
    shutil.rmtree(work, ignore_errors=True)
    return out


def _pct(values: list[float], q: int) -> float | None:
    return float(np.percentile(values, q)) if values else None


# -- after the micro-batches: maintenance, then read and size ----------------------------


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _read_seconds(uris: list[str], contract: Contract) -> list[float]:
    """The best of three reads of each table's current state, the tables in turn."""
    best = [float("inf")] * len(uris)
    for _ in range(3):
        for i, uri in enumerate(uris):
            t = time.perf_counter()
            silver.read_current(uri, contract.primary_key, {})
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def maintained(contract: Contract, work: Path, silver_uri: str) -> dict[str, Any]:
    """Compact, checkpoint and vacuum base and tail; then read time and size on disk
    against the same rows freshly written in one file."""
    for uri in (silver_uri, silver.tail_uri(silver_uri)):
        table = DeltaTable(uri)
        table.optimize.compact(target_size=1 << 30, writer_properties=delta.writer_properties())
        table.create_checkpoint()
        table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
        table.cleanup_metadata()
    current = silver.read_current(silver_uri, contract.primary_key, {})
    assert current is not None
    one = work / "fresh" / "item"
    write_deltalake(str(one), current, target_file_size=1 << 34)
    read_s, fresh_s = _read_seconds([silver_uri, str(one)], contract)
    live = sum(
        delta.stats_sum(delta.file_stats(DeltaTable(u)), "size_bytes")
        for u in (silver_uri, silver.tail_uri(silver_uri))
    )
    disk = _du(Path(silver_uri)) + _du(Path(silver.tail_uri(silver_uri)))
    return {
        "rows_after": current.num_rows,
        "files_after_maintenance": len(DeltaTable(silver_uri).file_uris()),
        "read_s": read_s,
        "read_fresh_one_file_s": fresh_s,
        "read_ratio": read_s / fresh_s,
        "disk_bytes": disk,
        "live_bytes": live,
        "disk_ratio": disk / live,
    }


# -- the report --------------------------------------------------------------------------


def _s(value: float | None, lower: bool = False) -> str:
    return "-" if value is None else f"{'>=' if lower else ''}{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data-dir", default=".lakehouse")
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows in silver")
    parser.add_argument("--rate", type=float, default=1000, help="changes per second")
    parser.add_argument("--seconds", type=float, default=600, help="seconds of changes")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between batches")
    parser.add_argument(
        "--distributions", default=",".join(DISTRIBUTIONS), help="shop, uniform or both"
    )
    parser.add_argument("--peers", default=",".join(PEERS), help="tail, merge or both")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    home = Settings(data_dir=Path(args.data_dir)).root / "bench" / f"microbatch-{args.rows}"
    home.mkdir(parents=True, exist_ok=True)
    with console.status(f"building silver of {args.rows:,} rows"):
        t = time.perf_counter()
        contract = build(home, args.rows)
    console.print(f"silver ready in {time.perf_counter() - t:.1f} s at {home}")
    results = []
    for dist in args.distributions.split(","):
        for peer in args.peers.split(","):
            with console.status(f"{dist}: {peer} for {args.seconds:g} s"):
                results.append(run(home, contract, dist, peer, args))
            console.print(results[-1])

    title = (
        f"{args.rate:,.0f} changes/s for {args.seconds:g} s into {args.rows:,} rows, "
        f"a batch every {args.interval:g} s"
    )
    table = Table(title=title)
    columns = (
        "keys", "peer", "applied", "commit p50/p95 s", "freshness p50/p95 s",
        "bytes/changed byte", "folds",
    )  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("keys", "peer") else "right")
    for r in results:
        lower = r["freshness_lower_bound"]
        table.add_row(
            r["distribution"],
            r["peer"],
            f"{r['batches_landed'] - r['batches_not_applied']}/{r['batches_landed']}",
            f"{_s(r['commit_p50_s'])} / {_s(r['commit_p95_s'])}",
            f"{_s(r['freshness_p50_s'], lower)} / {_s(r['freshness_p95_s'], lower)}",
            _s(r["bytes_per_changed_byte"]),
            str(r["folds"]),
        )
    console.print(table)
    for r in results:
        if r["peer"] == "tail":
            console.print(
                f"{r['distribution']}: after the micro-batches and maintenance, reading takes "
                f"[bold]{r['read_ratio']:.2f}x[/] a fresh one-file table "
                f"({r['read_s']:.2f} s / {r['read_fresh_one_file_s']:.2f} s); on disk "
                f"[bold]{r['disk_ratio']:.2f}x[/] the live size"
            )
    record.write(
        "microbatch",
        parameters={
            "rows": args.rows,
            "rate": args.rate,
            "seconds": args.seconds,
            "interval": args.interval,
            "fold_settings": {
                k: getattr(Settings(), k)
                for k in ("silver_fold_rows", "silver_fold_ratio", "silver_fold_files")
            },
        },
        peers={f"{r['distribution']} {r['peer']}": r for r in results},
        libraries=("deltalake", "duckdb", "pyarrow"),
    )


if __name__ == "__main__":
    main()
