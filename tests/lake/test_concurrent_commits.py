"""Optimistic concurrency: a write commits against the snapshot its batch was planned on,
so a writer that committed in between makes it fail and plan again, and a replay is then
a no-op. Real delta-rs commits; the other writer's commit is slipped in between planning
and committing."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from lakehouse.cdc.lander import ingest
from lakehouse.contracts import Contract, load_contracts
from lakehouse.generate import GenerateParams, generate
from lakehouse.lake import bronze, delta, silver
from lakehouse.settings import load_settings
from tests.support.debezium import write_item_contract
from tests.support.truth import assert_silver_equals_truth

pytestmark = pytest.mark.integration
TOPIC = "oltp.public.item"


def _batch(first_offset: int, n: int) -> pa.Table:
    offsets = list(range(first_offset, first_offset + n))
    return pa.table(
        {
            "item_id": offsets,
            "shop": ["a"] * n,
            "_event_pos": [1000 + o for o in offsets],
            "_op": ["c"] * n,
            "_offset": offsets,
        }
    )


@pytest.fixture
def contract(tmp_path: Path) -> Contract:
    return load_contracts(write_item_contract(tmp_path / "contracts"))["item"]


def test_a_commit_on_a_stale_snapshot_fails(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    delta.append(uri, _batch(0, 3), app_id=TOPIC, version=2, storage_options={})
    ours, theirs = DeltaTable(uri), DeltaTable(uri)  # both planned on version 0
    delta.append(theirs, _batch(3, 3), app_id=TOPIC, version=5, storage_options={})
    with pytest.raises(CommitFailedError, match=r"[Cc]oncurrent"):
        delta.append(ours, _batch(3, 3), app_id=TOPIC, version=5, storage_options={})
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 6
    # positive control: committed through the URI (a fresh snapshot, as before) the same
    # replay is stacked on top, and the batch is there twice
    delta.append(uri, _batch(3, 3), app_id=TOPIC, version=5, storage_options={})
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 9


def _race_bronze(
    monkeypatch: pytest.MonkeyPatch, uri: str, *, through_uri: bool = False
) -> list[int]:
    """The first commit of bronze.append is preceded by another lander's commit of the
    same batch (planned later, committed first)."""
    real = delta.append
    commits: list[int] = []

    def racing(table: DeltaTable | str, rows: pa.Table, **kw: object) -> None:
        commits.append(rows.num_rows)
        if len(commits) == 1:
            real(uri, rows, **kw)  # type: ignore[arg-type]
        real(uri if through_uri else table, rows, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(delta, "append", racing)
    return commits


def test_bronze_plans_again_when_another_lander_landed_the_batch(
    tmp_path: Path, contract: Contract, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "bronze")
    assert bronze.append(uri, contract, TOPIC, _batch(0, 5), 4, {}) == (5, 0)
    commits = _race_bronze(monkeypatch, uri)
    # ours failed on the stale snapshot; planned again, the batch was landed: nothing to do
    assert bronze.append(uri, contract, TOPIC, _batch(5, 5), 9, {}) == (0, 0)
    assert commits == [5]
    table = DeltaTable(uri)
    assert sorted(table.to_pyarrow_table().column("item_id").to_pylist()) == list(range(10))
    assert table.transaction_version(TOPIC) == 9


def test_bronze_race_through_the_uri_duplicates(
    tmp_path: Path, contract: Contract, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positive control of the test above: committing on a fresh snapshot lets the race
    through, so the test above would see it."""
    uri = str(tmp_path / "bronze")
    bronze.append(uri, contract, TOPIC, _batch(0, 5), 4, {})
    _race_bronze(monkeypatch, uri, through_uri=True)
    bronze.append(uri, contract, TOPIC, _batch(5, 5), 9, {})
    assert DeltaTable(uri).to_pyarrow_table().num_rows == 15


def test_silver_plans_again_when_another_apply_committed_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(data_dir=tmp_path)
    generate(settings, GenerateParams(clients=40, products=15, days=30, snapshot_day=5))
    ingest(settings, apply=False)  # bronze landed, silver not there yet
    orders = load_contracts(settings.contracts_dir)["orders"]
    bronze_uri = settings.table_uri("bronze", "orders")
    silver_uri = settings.table_uri("silver", "orders")
    opts = settings.lake_storage_options
    real = silver.read_pending
    raced: list[bool] = []

    def racing(*args: object, **kwargs: object) -> object:
        pending = real(*args, **kwargs)  # type: ignore[arg-type]
        if isinstance(pending, silver.Pending) and pending.silver is not None and not raced:
            raced.append(True)  # planned on the empty silver; another apply commits first
            silver.apply(orders, bronze_uri, silver_uri, opts)
        return pending

    monkeypatch.setattr(silver, "read_pending", racing)
    result = silver.apply(orders, bronze_uri, silver_uri, opts)
    monkeypatch.undo()
    assert raced and result.changes == 0  # planned again: nothing left to apply
    writes = [
        c
        for c in DeltaTable(silver_uri).history()
        if c["operation"] == "WRITE" and c["operationMetrics"].get("num_added_rows")
    ]
    assert len(writes) == 1  # the other apply's, not twice
    ingest(settings)  # the other tables
    assert_silver_equals_truth(settings)
