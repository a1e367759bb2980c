"""PostgreSQL's unchanged TOASTed values: an update that leaves a large text alone does
not log it, and (for a table with the default replica identity) Debezium sends a
placeholder; silver must keep the real value. Real PostgreSQL and Debezium, a table of
the test's own."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from deltalake import DeltaTable

from lakehouse.cdc.lander import ingest
from lakehouse.oltp.client import connect
from lakehouse.settings import Settings
from tests.cdc.test_live_capture import Capture
from tests.support.oltp import oltp_cluster

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("debezium")]
CONTRACT = """\
table: doc
schema: public
primary_key: [doc_id]
columns:
  - {name: doc_id, type: bigint, nullable: false}
  - {name: title, type: string}
  - {name: body, type: string}
"""


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    base = tmp_path_factory.mktemp("toast")
    contracts = base / "contracts"
    contracts.mkdir()
    (contracts / "doc.yml").write_text(CONTRACT)
    (base / "data").mkdir()
    with oltp_cluster(base / "data", contracts_dir=contracts) as settings:
        yield settings


def test_unchanged_toasted_values_keep_their_value(db: Settings) -> None:
    bodies = {i: secrets.token_hex(20_000) for i in (1, 2, 3)}  # 40 kB: stored out of line
    with connect(db) as conn:
        conn.execute("create table doc (doc_id bigint primary key, title text, body text)")
        # with REPLICA IDENTITY FULL Debezium fills such a value from the old row; a
        # table with the default identity is where the placeholder shows up
        conn.execute("insert into doc values (1, 'one', %s)", [bodies[1]])
        conn.commit()
    running = Capture(db)
    running.wait_quiet()  # the snapshot: doc 1 with its body
    ingest(db)
    seen = len(running.batches)
    with connect(db) as conn:
        conn.execute("update doc set title = 'one, again' where doc_id = 1")  # body untouched
        conn.execute("insert into doc values (2, 'two', %s)", [bodies[2]])
        conn.execute("update doc set title = 'two, again' where doc_id = 2")  # same batch
        conn.execute("insert into doc values (3, 'three', %s)", [bodies[3]])
        conn.commit()
    running.wait_quiet(seen)
    running.close()
    log = (db.changes_path / "oltp.public.doc").glob("*.jsonl")
    # Debezium did send its placeholder
    assert any(b"__debezium_unavailable_value" in p.read_bytes() for p in log)
    ingest(db)
    silver = {
        r["doc_id"]: r
        for r in DeltaTable(db.table_uri("silver", "doc")).to_pyarrow_table().to_pylist()
    }
    assert {i: r["body"] for i, r in silver.items()} == bodies
    assert silver[1]["title"] == "one, again" and silver[2]["title"] == "two, again"
