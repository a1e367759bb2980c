"""Bronze: the append-only change log, one Delta table per source table.

Each distinct change event is stored once. Debezium delivers at least once, so a batch
is de-duplicated on the event identity ``(primary key, _event_pos, _op)``, within itself
and against what bronze already holds at or after the batch's lowest event position
(file statistics prune the rest of the table). ``_commit_pos`` is not part of it: the
first transaction PostgreSQL streams after a connector start carries no previous commit
LSN, so the same event can come once with its own LSN there and, redelivered, with the
previous commit's; the event's own position is the same both times.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from lakehouse.contracts import Contract
from lakehouse.lake import delta

INGESTED_AT = pa.field("_ingested_at", pa.timestamp("us", tz="UTC"))


def identity(contract: Contract) -> list[str]:
    return [*contract.primary_key, "_event_pos", "_op"]


def drop_duplicates(rows: pa.Table, keys: list[str]) -> pa.Table:
    """Keep the first occurrence (lowest ``_offset``) of every identity."""
    if rows.num_rows == 0:
        return rows
    first = rows.group_by(keys, use_threads=False).aggregate([("_offset", "min")])
    keep = pc.is_in(rows.column("_offset"), first.column("_offset_min"))
    return rows.filter(keep)


def drop_landed(table: DeltaTable | None, rows: pa.Table, keys: list[str]) -> pa.Table:
    """Remove rows whose identity is already in bronze (a redelivery)."""
    if table is None or rows.num_rows == 0:
        return rows
    since = pc.min(rows.column("_event_pos")).as_py()
    landed = table.to_pyarrow_dataset(  # files from the log's statistics, not their footers
        file_pruning_predicate=f"_event_pos >= {since}"
    ).to_table(columns=keys, filter=ds.field("_event_pos") >= since)
    if landed.num_rows == 0:
        return rows
    fresh = rows.join(landed, keys=keys, join_type="left anti", use_threads=False)
    return fresh.sort_by("_offset")


def append(
    uri: str,
    contract: Contract,
    topic: str,
    rows: pa.Table,
    last_offset: int,
    storage_options: dict[str, str],
) -> tuple[int, int]:
    """Land a decoded batch; returns (rows written, duplicates dropped).

    The topic offset ``last_offset`` is committed with the rows (app transaction
    ``app_id=topic``), even when every row was a duplicate, so a replay skips the batch.
    The commit is made against the snapshot the batch was filtered on: if another lander
    landed in between, it fails and the batch is planned again (``delta.commit_once``).
    """
    keys = identity(contract)
    schema = rows.schema.append(INGESTED_AT)

    def attempt() -> tuple[int, int]:
        table = delta.ensure_table(uri, schema, storage_options)
        committed = delta.committed_version(table, topic)
        if committed >= last_offset:  # another lander landed this batch: nothing to do
            return 0, 0
        fresh = rows.filter(pc.greater(rows.column("_offset"), committed))
        before = fresh.num_rows
        fresh = drop_landed(table, drop_duplicates(fresh, keys), keys)
        now = pa.array([datetime.now(UTC)] * fresh.num_rows, INGESTED_AT.type)
        fresh = fresh.append_column(INGESTED_AT, now)
        delta.append(
            table, fresh, app_id=topic, version=last_offset, storage_options=storage_options
        )
        return fresh.num_rows, before - fresh.num_rows

    return delta.commit_once(attempt, f"landing {topic} in bronze")
