"""The dead-letter table: every event that could not be landed, with its reason, its
raw record and its position, so nothing is lost and it can be replayed once fixed."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.lake import delta


def write(
    uri: str, topic: str, rejects: pa.Table, last_offset: int, storage_options: dict[str, str]
) -> int:
    """Append the rejects of a batch not yet recorded (app transaction ``app_id=topic``),
    committed against the snapshot they were filtered on (see ``lakehouse.lake.delta``)."""
    if rejects.num_rows == 0:
        return 0

    def attempt() -> int:
        table = delta.ensure_table(uri, rejects.schema, storage_options)
        fresh = rejects.filter(
            pc.greater(rejects.column("offset"), delta.committed_version(table, topic))
        )
        if fresh.num_rows == 0:
            return 0
        delta.append(
            table, fresh, app_id=topic, version=last_offset, storage_options=storage_options
        )
        return fresh.num_rows

    return delta.commit_once(attempt, f"dead-lettering {topic}")


def count(uri: str, storage_options: dict[str, str]) -> pa.Table:
    """Dead letters per topic and reason."""
    table = delta.open_table(uri, storage_options)
    if table is None:
        return pa.table({"topic": pa.array([], pa.string()), "reason": [], "count": []})
    rows = table.to_pyarrow_dataset().to_table(columns=["topic", "reason"])
    return (
        rows.group_by(["topic", "reason"])
        .aggregate([([], "count_all")])
        .rename_columns(["topic", "reason", "count"])
    )
