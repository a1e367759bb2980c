"""What the lake and the warehouse hold: ``lakehouse status``.

Reads Delta logs and file statistics, not the data, so it answers quickly at any size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import pyarrow.compute as pc

from lakehouse.contracts import load_source_contracts
from lakehouse.exceptions import ServiceError
from lakehouse.lake import dead_letter, delta, quality_tables, silver
from lakehouse.settings import Settings
from lakehouse.transform.docs import docs_sites
from lakehouse.warehouse import connect


@dataclass
class TableStatus:
    table: str
    bronze_rows: int
    silver_rows: int  # in silver's base; the tail's changes count after its next fold
    consumed_offset: int  # last topic offset committed to bronze (-1: nothing yet)
    applied_offset: int  # last bronze offset applied to silver (its base or its tail)
    last_commit_pos: int | None
    last_source_commit: str | None  # ISO time of the newest source commit landed
    freshness_seconds: float | None  # now minus that commit time
    silver_tail_rows: int = 0  # changes in silver's tail, not folded into the base yet


@dataclass
class Status:
    profile: str
    data_dir: str
    lake: str
    warehouse: str  # where the published marts are
    tables: list[TableStatus] = field(default_factory=list)
    dead_letters: int = 0
    dead_letters_by_reason: list[dict[str, object]] = field(default_factory=list)
    marts: dict[str, int] = field(default_factory=dict)  # the published marts
    publication: dict[str, object] = field(default_factory=dict)
    last_run: dict[str, object] = field(default_factory=dict)  # the latest gate run
    docs: dict[str, str] = field(default_factory=dict)  # site -> entry page

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def collect(settings: Settings) -> Status:
    contracts = load_source_contracts(settings)
    status = Status(
        settings.profile,
        str(settings.root),
        settings.lake_root,
        _published_location(settings),
    )
    now = datetime.now(UTC)
    opts = settings.lake_storage_options
    for contract in contracts.values():
        topic = settings.topic(contract.table, contract.schema)
        bronze = delta.open_table(settings.table_uri("bronze", contract.lake_name), opts)
        silver_uri = settings.table_uri("silver", contract.lake_name)
        silver_table = delta.open_table(silver_uri, opts)
        tail = delta.open_table(silver.tail_uri(silver_uri), opts)
        b_stats, s_stats = delta.file_stats(bronze), delta.file_stats(silver_table)
        last_ts = delta.stats_max(b_stats, "max._source_ts")
        status.tables.append(
            TableStatus(
                table=contract.lake_name,
                bronze_rows=delta.stats_sum(b_stats, "num_records"),
                silver_rows=delta.stats_sum(s_stats, "num_records"),
                consumed_offset=delta.committed_version(bronze, topic),
                applied_offset=max(
                    delta.committed_version(silver_table, silver.APP_ID),
                    delta.committed_version(tail, silver.APP_ID),
                ),
                last_commit_pos=delta.stats_max(b_stats, "max._commit_pos"),  # type: ignore[arg-type]
                last_source_commit=last_ts.isoformat() if isinstance(last_ts, datetime) else None,
                freshness_seconds=(now - last_ts).total_seconds()
                if isinstance(last_ts, datetime)
                else None,
                silver_tail_rows=delta.stats_sum(delta.file_stats(tail), "num_records"),
            )
        )
    counts = dead_letter.count(settings.table_uri("dead_letter", "events"), opts)
    status.dead_letters = int(pc.sum(counts.column("count")).as_py() or 0) if counts.num_rows else 0
    status.dead_letters_by_reason = counts.to_pylist()
    status.marts, status.publication = _marts(settings)
    status.last_run = _last_run(settings)
    status.docs = {name: str(p) for name, p in docs_sites(settings).items() if p.exists()}
    return status


def _published_location(settings: Settings) -> str:
    with connect(settings) as published:
        return published.location


def _marts(settings: Settings) -> tuple[dict[str, int], dict[str, object]]:
    """Row counts of the published marts and what publication they belong to (empty when
    nothing is published yet, or when the stack's Trino is not up to say)."""
    try:
        with connect(settings) as published:
            publication = published.publication()
    except ServiceError:
        return {}, {}
    if publication is None:
        return {}, {}
    return {f"marts.{mart}": n for mart, n in publication.rows.items()}, {
        "run_id": publication.run_id,
        "published_at": publication.published_at.isoformat(),
        "data_run_id": publication.data_run_id,
    }


def _last_run(settings: Settings) -> dict[str, object]:
    """The latest gate run (write-audit-publish), from the quality history."""
    table = delta.open_table(
        settings.table_uri(quality_tables.LAYER, quality_tables.RUNS), settings.lake_storage_options
    )
    if table is None:
        return {}
    runs = table.to_pyarrow_table(
        columns=["run_id", "finished_at", "outcome", "checks", "errors", "warnings"]
    )
    if runs.num_rows == 0:
        return {}
    latest = runs.sort_by([("finished_at", "descending")]).slice(0, 1).to_pylist()[0]
    latest["finished_at"] = latest["finished_at"].isoformat()
    return dict(latest)
