"""Rows of an incremental snapshot (Debezium re-reading a table, as capture asks after a
column is added with a default) carry no ``lsn``; they sort at the watermark that closes
their window: after every change committed before it, before every one committed after,
whatever the batches the lander cuts."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakehouse.cdc.decode import _SOURCE
from lakehouse.cdc.lander import ingest
from lakehouse.cdc.positions import positions
from lakehouse.settings import Settings
from tests.support.debezium import Source, item_row, write_item_contract, write_topic

pytestmark = pytest.mark.integration
TOPIC = "oltp.public.item"


def test_an_incremental_snapshot_row_sorts_at_its_window_close() -> None:
    rows = [
        {"connector": "postgresql", "lsn": 900, "sequence": '["880","900"]'},  # before
        {"connector": "postgresql", "lsn": None, "sequence": '["950","960"]'},  # re-read
        {"connector": "postgresql", "lsn": 940, "sequence": '["970","940"]'},  # after
        {"connector": "postgresql", "lsn": None, "sequence": None},
    ]
    commit, event, problem = positions(pa.array(rows, _SOURCE))
    assert commit.to_pylist() == [880, 950, 970, None]
    assert event.to_pylist() == [900, 960, 940, None]
    assert problem.to_pylist() == [None, None, None, "no source.lsn"]


def _silver(settings: Settings) -> dict[int, dict]:
    rows = DeltaTable(settings.table_uri("silver", "item")).to_pyarrow_table().to_pylist()
    return {r["item_id"]: r for r in rows}


@pytest.mark.parametrize("rounds", [1, 4])
def test_re_read_rows_fill_an_added_column_and_never_undo_a_later_change(
    tmp_path: Path, rounds: int
) -> None:
    s = Settings(data_dir=tmp_path, contracts_dir=write_item_contract(tmp_path / "contracts"))
    src = Source()
    src.snapshot([item_row(i) for i in range(4)])
    src.transaction([("u", item_row(1, qty=9))])  # before the column
    # ALTER TABLE item ADD COLUMN tier integer DEFAULT 7: no event; then a change of row 3
    src.transaction([("u", {**item_row(3, qty=5), "tier": 7})])
    # the re-read, of the rows as they are then
    src.incremental_snapshot([{**src.state[(i, "a")], "tier": 7} for i in range(4)])
    src.transaction([("u", {**item_row(2, qty=4), "tier": 1})])  # after the re-read
    records = src.records
    cut = len(records) // rounds + 1
    for end in range(cut, len(records) + cut, cut):
        write_topic(s.changes_path, TOPIC, records[: min(end, len(records))])
        assert ingest(s).rejected == 0

    silver = _silver(s)
    assert {k: (r["qty"], r["tier"]) for k, r in silver.items()} == {
        0: (1, 7),
        1: (9, 7),
        2: (4, 1),
        3: (5, 7),
    }
    bronze = DeltaTable(s.table_uri("bronze", "item")).to_pyarrow_table()
    assert bronze.num_rows == len(records)  # the re-read rows are changes of their own


def test_a_re_read_row_older_than_silver_changes_nothing(tmp_path: Path) -> None:
    """Landed after a later change (a resent chunk, say), the re-read row is older than
    silver's row and is not applied."""
    s = Settings(data_dir=tmp_path, contracts_dir=write_item_contract(tmp_path / "contracts"))
    src = Source()
    src.snapshot([item_row(i) for i in range(2)])
    src.incremental_snapshot([{**src.state[(i, "a")], "tier": 7} for i in range(2)])
    re_read = src.records[2:]
    src.transaction([("u", {**item_row(1, qty=3), "tier": 2})])
    write_topic(s.changes_path, TOPIC, src.records[:2] + src.records[4:])
    ingest(s)
    write_topic(s.changes_path, TOPIC, src.records[:2] + src.records[4:] + re_read)
    assert ingest(s).rejected == 0
    silver = _silver(s)
    assert (silver[1]["qty"], silver[1]["tier"]) == (3, 2)
    assert silver[0]["tier"] == 7
