"""What the lake and the warehouse hold: ``lakehouse status``.

Reads Delta logs and file statistics, not the data, so it answers quickly at any size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.contracts import load_source_contracts
from lakehouse.lake import dead_letter, delta
from lakehouse.settings import Settings


@dataclass
class TableStatus:
    table: str
    bronze_rows: int
    silver_rows: int
    consumed_offset: int  # last topic offset committed to bronze (-1: nothing yet)
    applied_offset: int  # last bronze offset applied to silver
    last_commit_pos: int | None
    last_source_commit: str | None  # ISO time of the newest source commit landed
    freshness_seconds: float | None  # now minus that commit time


@dataclass
class Status:
    profile: str
    data_dir: str
    lake: str
    warehouse: str
    tables: list[TableStatus] = field(default_factory=list)
    dead_letters: int = 0
    dead_letters_by_reason: list[dict[str, object]] = field(default_factory=list)
    marts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _stats(table: object) -> pa.Table | None:
    if table is None:
        return None
    return pa.table(table.get_add_actions(flatten=True))  # type: ignore[attr-defined]


def _sum(stats: pa.Table | None, column: str) -> int:
    if stats is None or stats.num_rows == 0:
        return 0
    return int(pc.sum(stats.column(column)).as_py() or 0)


def _max(stats: pa.Table | None, column: str) -> object:
    if stats is None or stats.num_rows == 0 or column not in stats.column_names:
        return None
    return pc.max(stats.column(column)).as_py()


def collect(settings: Settings) -> Status:
    contracts = load_source_contracts(settings)
    status = Status(
        settings.profile, str(settings.root), settings.lake_root, str(settings.warehouse)
    )
    now = datetime.now(UTC)
    opts = settings.lake_storage_options
    for contract in contracts.values():
        topic = settings.topic(contract.table, contract.schema)
        bronze = delta.open_table(settings.table_uri("bronze", contract.lake_name), opts)
        silver_table = delta.open_table(settings.table_uri("silver", contract.lake_name), opts)
        b_stats, s_stats = _stats(bronze), _stats(silver_table)
        last_ts = _max(b_stats, "max._source_ts")
        status.tables.append(
            TableStatus(
                table=contract.lake_name,
                bronze_rows=_sum(b_stats, "num_records"),
                silver_rows=_sum(s_stats, "num_records"),
                consumed_offset=delta.committed_version(bronze, topic),
                applied_offset=delta.committed_version(silver_table, "bronze"),
                last_commit_pos=_max(b_stats, "max._commit_pos"),  # type: ignore[arg-type]
                last_source_commit=last_ts.isoformat() if isinstance(last_ts, datetime) else None,
                freshness_seconds=(now - last_ts).total_seconds()
                if isinstance(last_ts, datetime)
                else None,
            )
        )
    counts = dead_letter.count(settings.table_uri("dead_letter", "events"), opts)
    status.dead_letters = int(pc.sum(counts.column("count")).as_py() or 0) if counts.num_rows else 0
    status.dead_letters_by_reason = counts.to_pylist()
    status.marts = _marts(settings)
    return status


def _marts(settings: Settings) -> dict[str, int]:
    """Row counts of the dbt marts in the warehouse (read-only; empty when not built)."""
    if not settings.warehouse.exists():
        return {}
    import duckdb

    try:
        con = duckdb.connect(str(settings.warehouse), read_only=True)
    except duckdb.ConnectionException:
        # this process already holds the warehouse open for writing (dbt ran in it)
        con = duckdb.connect(str(settings.warehouse))
    try:
        names = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' and regexp_matches(table_name, "
            "'^(dim|fct|agg|mart)_') order by 1, 2"
        ).fetchall()
        counts: dict[str, int] = {}
        for schema, name in names:
            row = con.execute(f'select count(*) from "{schema}"."{name}"').fetchone()
            counts[f"{schema}.{name}"] = int(row[0]) if row else 0
        return counts
    finally:
        con.close()
