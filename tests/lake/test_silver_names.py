"""Column names reach delta-rs merge expressions quoted. The contract's names are checked
by the loader, but a column added in the source names itself: mixed case, a space, a
double quote; each lands in silver, through the merge, as a column of that exact name."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakehouse.cdc.lander import ingest
from lakehouse.lake.silver import quote
from lakehouse.settings import Settings
from tests.support.debezium import Source, item_row, write_item_contract, write_topic

pytestmark = pytest.mark.integration
TOPIC = "oltp.public.item"
ODD = ["Mixed Case", 'x" or 1=1 --']


def _row(item_id: int, label: object, **kw: int) -> dict:
    return {**item_row(item_id, **kw), **{name: f"{name} {label}" for name in ODD}}


def test_columns_added_with_odd_names_merge_into_silver(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, contracts_dir=write_item_contract(tmp_path / "contracts"))
    src = Source()
    src.snapshot([_row(i, i) for i in range(3)])
    write_topic(s.changes_path, TOPIC, src.records)
    ingest(s)  # silver is created: an append
    src.transaction([("u", _row(1, "new", qty=5))])
    src.transaction([("c", _row(9, 9))])
    write_topic(s.changes_path, TOPIC, src.records)

    report = ingest(s)  # now a merge, with every column name in its expressions

    assert report.rejected == 0
    silver = DeltaTable(s.table_uri("silver", "item")).to_pyarrow_table().sort_by("item_id")
    got = {r["item_id"]: (r["qty"], *(r[n] for n in ODD)) for r in silver.to_pylist()}
    truth = {k[0]: (row["qty"], *(row[n] for n in ODD)) for k, row in src.state.items()}
    assert got == truth and got[1] == (5, "Mixed Case new", 'x" or 1=1 -- new')


def test_a_quoted_name_is_one_identifier_to_delta_rs(tmp_path: Path) -> None:
    """delta-rs's predicate parser reads ``"..."`` with ``""`` inside as one column name:
    a name built to close the quote and add a condition names no column and is refused."""
    uri = str(tmp_path / "t")
    write_deltalake(uri, pa.table({"id": [1, 2], "x": ["a", "b"]}))
    source = pa.table({"id": [2], "x": ["B"]})

    def merge(column: str) -> dict[str, int]:
        return (
            DeltaTable(uri)
            .merge(
                source,
                predicate=f"t.{column} = s.{quote('id')}",
                source_alias="s",
                target_alias="t",
            )
            .when_matched_update(updates={quote("x"): f"s.{quote('x')}"})
            .execute()
        )

    assert merge(quote("id"))["num_target_rows_updated"] == 1  # the control
    with pytest.raises(Exception, match="No field named"):
        merge(quote('id" = s."id" OR "x'))
    assert DeltaTable(uri).to_pyarrow_table().sort_by("id").column("x").to_pylist() == ["a", "B"]
