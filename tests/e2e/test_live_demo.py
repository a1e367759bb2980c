"""`lakehouse demo` on the live path, as a user runs it where PostgreSQL is installed.

The shop runs in the project's own PostgreSQL, Debezium captures it, the lander lands it
and dbt builds the marts. Afterwards every silver table equals its source table, bronze
holds each committed change once, the search index holds the published catalogue, the
cluster the demo started is stopped again, and a second run adds nothing (nothing is
embedded again either).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable

from lakehouse.contracts import load_contracts
from lakehouse.oltp.client import connect
from lakehouse.oltp.cluster import Cluster
from lakehouse.search.catalog import published_products
from lakehouse.search.index import indexed_payloads, open_store
from lakehouse.settings import Settings
from tests.cdc.test_live_capture import _source_table
from tests.support.oltp import oltp_settings
from tests.support.truth import assert_silver_equals

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("live_demo")]
LAKEHOUSE = str(Path(sys.executable).with_name("lakehouse"))
DAYS = 45


def _demo(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LAKEHOUSE_OLTP_PORT": str(settings.oltp_port)}
    return subprocess.run(
        [
            LAKEHOUSE,
            "demo",
            "--data-dir",
            str(settings.root),
            "--days",
            str(DAYS),
            "--no-dashboards",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env=env,
    )


def _bronze_rows(settings: Settings) -> dict[str, int]:
    return {
        table: DeltaTable(settings.table_uri("bronze", table)).to_pyarrow_dataset().count_rows()
        for table in load_contracts(settings.contracts_dir)
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    settings = oltp_settings(tmp_path_factory.mktemp("live_demo"))
    run = _demo(settings)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return settings, run.stdout + run.stderr


def test_the_demo_takes_the_live_path_and_stops_what_it_started(
    live: tuple[Settings, str],
) -> None:
    settings, out = live
    assert "source of the changes: live" in out
    assert not (settings.changes_path / "manifest.json").exists()  # nothing recorded
    assert Cluster(settings).pid() is None
    with duckdb.connect(str(settings.published_warehouse), read_only=True) as db:
        lines = db.execute("select count(*) from marts.fct_order_item").fetchone()
    assert lines is not None and lines[0] > 1000
    # the transform flow refreshed the index from what it published
    assert re.search(r"search index: \d+ products \(\d+ added", out), out[-3000:]
    with open_store(settings) as client:
        indexed = set(indexed_payloads(client))
    assert indexed == set(published_products(settings)["product_id"].to_pylist())


def test_silver_equals_the_source_and_bronze_holds_every_change_once(
    live: tuple[Settings, str],
) -> None:
    settings, _ = live
    cluster = Cluster(settings)
    cluster.up()
    try:
        assert_silver_equals(settings, lambda contract: _source_table(settings, contract))
        with connect(settings) as conn:
            newest = conn.execute("select max(updated_at) from orders").fetchone()
            # what the database wrote, counted by its statistics (kept across restarts)
            written = {
                row[0]: {"c": row[1], "u": row[2], "d": row[3]}
                for row in conn.execute(
                    "select relname, n_tup_ins, n_tup_upd, n_tup_del from pg_stat_user_tables"
                )
            }
    finally:
        cluster.down()
    assert newest is not None and newest[0].date().isoformat() < "2024-02-15"  # 45 days
    for table, contract in load_contracts(settings.contracts_dir).items():
        position = ["_commit_pos", "_event_pos", *contract.primary_key]
        bronze = DeltaTable(settings.table_uri("bronze", table)).to_pyarrow_table(
            columns=["_op", *position]
        )
        ops = Counter(bronze.column("_op").to_pylist())
        assert {op: ops[op] for op in "cud"} == written[table], table
        events = bronze.group_by(position).aggregate([([], "count_all")])
        assert events.num_rows == bronze.num_rows, f"bronze {table} holds an event twice"


def test_a_second_run_adds_nothing(live: tuple[Settings, str]) -> None:
    settings, _ = live
    before = _bronze_rows(settings)
    run = _demo(settings)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert _bronze_rows(settings) == before
    out = run.stdout + run.stderr
    assert re.search(r"search index: \d+ products \(0 added, 0 updated, 0 removed", out)
    assert "; 0 embedded)" in out
    report = json.loads(
        subprocess.run(
            [LAKEHOUSE, "status", "--json", "--data-dir", str(settings.root)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert report["dead_letters"] == 0
