"""The lander: change events from a source into bronze, then silver, exactly once.

For every topic the lander resumes after the offset its bronze table committed, decodes
batches, writes rejects to the dead-letter table and the rest to bronze (each write
carrying the topic offset in the same Delta commit), then applies bronze to silver. What
it does is counted in the process's Prometheus metrics (``lakehouse.metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Literal

from lakehouse import metrics
from lakehouse.cdc.decode import decode
from lakehouse.cdc.file_source import FileSource
from lakehouse.cdc.kafka_source import KafkaSource
from lakehouse.cdc.pii import Masker, checked_key
from lakehouse.cdc.source import ChangeSource
from lakehouse.cdc.sources import ensure_source_tables, ensure_tables
from lakehouse.contracts import Contract, load_source_contracts
from lakehouse.lake import (
    bronze,
    dead_letter,
    delta,
    freshness,
    ml_tables,
    quality_tables,
    silver,
)
from lakehouse.lake.catalog import register_tables
from lakehouse.lease import hold
from lakehouse.lineage.lander import landing
from lakehouse.progress import Progress
from lakehouse.settings import Settings

DEAD_LETTER = ("dead_letter", "events")
Engine = Literal["delta-rs", "spark"]
FoldMode = Literal["all", "due", "background"]
FOLDER = silver.Folder()  # the background folds of `ingest --follow`


@dataclass
class TopicReport:
    topic: str
    table: str
    events: int = 0
    landed: int = 0
    duplicates: int = 0
    tombstones: int = 0
    rejected: int = 0
    last_offset: int = -1
    first_offset: int = 0  # the first offset this run read


@dataclass
class IngestReport:
    topics: list[TopicReport] = field(default_factory=list)
    applied: list[silver.ApplyResult] = field(default_factory=list)
    unknown_topics: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return sum(t.events for t in self.topics)

    @property
    def rejected(self) -> int:
        return sum(t.rejected for t in self.topics)


def ingest(
    settings: Settings,
    *,
    source: ChangeSource | None = None,
    progress: Progress | None = None,
    apply: bool = True,
    engine: Engine = "delta-rs",
    fold: FoldMode = "all",
) -> IngestReport:
    """Land every new change event of the source, then apply bronze to silver (with
    delta-rs in process, or with Spark on ``settings.spark_master``). One lander at a
    time per lake: it holds the lander lease (``lakehouse.lease``), the Spark apply too.

    ``fold``: ``all`` folds every silver tail into its base at the end, so that silver
    is a plain Delta table (a one-off ingest); ``due`` only the tails past the fold
    thresholds (``silver_fold_*`` settings); ``background`` those too, in background
    threads that outlive the call (``ingest --follow``: its next rounds do not wait)."""
    with hold(settings, "lander"), landing(settings) as run:
        return run.landed(_ingest(settings, source, progress, apply, engine, fold))


def _ingest(
    settings: Settings,
    source: ChangeSource | None,
    progress: Progress | None,
    apply: bool,
    engine: Engine,
    fold: FoldMode = "all",
) -> IngestReport:
    started = time.perf_counter()
    contracts = load_source_contracts(settings)
    if source is None:
        source = (
            KafkaSource(
                settings.kafka_bootstrap_servers, settings.kafka_group_id, settings.topic_prefix
            )
            if settings.kafka_bootstrap_servers
            else FileSource(settings.changes_path)
        )
    by_topic = _by_topic(settings, contracts.values())
    report = IngestReport()
    plan = []
    for topic in source.topics():
        contract = _contract_of(by_topic, topic)
        if contract is None:
            report.unknown_topics.append(topic)
            continue
        table = delta.open_table(
            settings.table_uri("bronze", contract.lake_name), settings.lake_storage_options
        )
        start = delta.committed_version(table, topic) + 1
        plan.append((topic, contract, start, source.end_offset(topic)))

    task = None
    if progress is not None:
        total = sum(max(0, end - start) for _, _, start, end in plan)
        task = progress.add_task("landing change events", total=total)
    masker = Masker(checked_key(settings))
    for topic, contract, start, end in plan:
        landed = _land_topic(settings, source, topic, contract, start, masker, progress, task)
        report.topics.append(landed)
        metrics.LANDER_OFFSET_LAG.labels(contract.lake_name).set(
            max(0, end - (landed.last_offset + 1))
        )

    if apply:
        _create_missing_tables(settings, contracts.values())
        report.applied = apply_silver(
            settings, contracts.values(), progress=progress, engine=engine
        )
        folded = fold_silver(settings, contracts.values(), mode=fold)
        report.applied = [
            replace(a, rows=folded[a.table].rows) if a.table in folded else a
            for a in report.applied
        ]
    if settings.profile == "stack":  # Trino queries what the lander wrote, new tables too
        register_tables(settings)
    report.seconds = time.perf_counter() - started
    metrics.LANDER_ROUND_SECONDS.observe(report.seconds)
    return report


def landed_through(settings: Settings, topics: Iterable[str]) -> dict[str, int]:
    """The last offset of each of ``topics`` that has landed in bronze (-1: none yet), by
    the app transactions of the bronze tables; a topic of no contract is left out."""
    by_topic = _by_topic(settings, load_source_contracts(settings).values())
    landed = {}
    for topic in topics:
        contract = _contract_of(by_topic, topic)
        if contract is None:
            continue
        table = delta.open_table(
            settings.table_uri("bronze", contract.lake_name), settings.lake_storage_options
        )
        landed[topic] = delta.committed_version(table, topic)
    return landed


def _by_topic(settings: Settings, contracts: Iterable[Contract]) -> dict[str, Contract]:
    return {settings.topic(c.table, c.schema): c for c in contracts}


def _contract_of(by_topic: dict[str, Contract], topic: str) -> Contract | None:
    return by_topic.get(topic) or by_topic.get(_without_database(topic))


def _without_database(topic: str) -> str:
    """SQL Server topics name the database too: ``<prefix>.<database>.<schema>.<table>``."""
    parts = topic.split(".")
    return ".".join([parts[0], *parts[2:]]) if len(parts) == 4 else topic


def _land_topic(
    settings: Settings,
    source: ChangeSource,
    topic: str,
    contract: Contract,
    start: int,
    masker: Masker,
    progress: Progress | None,
    task: int | None,
) -> TopicReport:
    result = TopicReport(topic, contract.lake_name, last_offset=start - 1, first_offset=start)
    bronze_uri = settings.table_uri("bronze", contract.lake_name)
    dlq_uri = settings.table_uri(*DEAD_LETTER)
    for batch in source.read(topic, start, settings.ingest_batch_events):
        clock = time.perf_counter()
        decoded = decode(contract, batch, masker)
        rejected = dead_letter.write(
            dlq_uri, topic, decoded.rejects, batch.last_offset, settings.lake_storage_options
        )
        result.rejected += rejected
        landed, duplicates = bronze.append(
            bronze_uri,
            contract,
            topic,
            decoded.rows,
            batch.last_offset,
            settings.lake_storage_options,
        )
        source.committed(topic, batch.last_offset)
        result.events += batch.count
        result.landed += landed
        result.duplicates += duplicates
        result.tombstones += decoded.tombstones
        result.last_offset = batch.last_offset
        _count(contract.lake_name, batch.count, landed, duplicates, rejected)
        metrics.LANDER_BATCH_SECONDS.labels(contract.lake_name).observe(time.perf_counter() - clock)
        if progress is not None and task is not None:
            progress.advance(task, batch.count)
    if isinstance(source, FileSource):  # landed and old enough: the lake is the record
        source.forget(topic, result.last_offset, settings.changes_retention_hours * 3600)
    return result


def _count(table: str, events: int, landed: int, duplicates: int, rejected: int) -> None:
    metrics.LANDER_EVENTS.labels(table).inc(events)
    metrics.LANDER_LANDED.labels(table).inc(landed)
    metrics.LANDER_DUPLICATES.labels(table).inc(duplicates)
    metrics.LANDER_DEAD_LETTERS.labels(table).inc(rejected)


def _create_missing_tables(settings: Settings, contracts: Iterable[Contract]) -> None:
    """An empty bronze and silver table for every contract whose source has not produced
    a change yet, so that readers (dbt sources, Trino) find every table."""
    for contract in contracts:
        ensure_tables(settings, contract)  # created once: another lander may be first
    ensure_source_tables(settings)  # the file and REST sources' tables: dbt sources too
    quality_tables.ensure_tables(settings)  # the gate's history: a dbt source too
    freshness.ensure_tables(settings)  # the SLO's samples: a dbt source too
    ml_tables.ensure_tables(settings)  # the model jobs' outputs: dbt sources too


def apply_silver(
    settings: Settings,
    contracts: object,
    *,
    progress: Progress | None = None,
    engine: Engine = "delta-rs",
) -> list[silver.ApplyResult]:
    """Apply every bronze table's new changes to its silver table."""
    items: list[Contract] = list(contracts)  # type: ignore[call-overload]
    apply = silver.apply
    if engine == "spark":  # the same apply, run by Spark (the session stays up for reuse)
        from lakehouse.lake import spark_silver  # pyspark: seconds to load, optional
        from lakehouse.lake.spark_session import spark_session

        apply = partial(spark_silver.apply, spark_session(settings))
    task = progress.add_task("applying to silver", total=len(items)) if progress else None
    results = []
    for contract in items:
        clock = time.perf_counter()
        results.append(
            apply(
                contract,
                settings.table_uri("bronze", contract.lake_name),
                settings.table_uri("silver", contract.lake_name),
                settings.lake_storage_options,
            )
        )
        metrics.SILVER_APPLY_SECONDS.labels(contract.lake_name).observe(time.perf_counter() - clock)
        if progress is not None and task is not None:
            progress.advance(task)
    return results


def fold_silver(
    settings: Settings, contracts: Iterable[Contract], *, mode: FoldMode = "all"
) -> dict[str, silver.FoldResult]:
    """Fold the silver tails into their bases: ``all``, or only those past a threshold
    (``silver_fold_rows`` rows and ``silver_fold_ratio`` of the base's; a tail of
    ``silver_fold_files`` files is compacted instead), now (``due``) or in a background
    thread (``background``, see ``silver.Folder``). Safe beside a running lander: see
    ``silver.fold``. The folds done now, by contract table name."""
    done = {}
    opts = settings.lake_storage_options
    for contract in contracts:
        uri = settings.table_uri("silver", contract.lake_name)
        upkeep: silver.Upkeep | None = "fold"
        if mode != "all":
            upkeep = silver.tail_due(
                uri,
                opts,
                rows=settings.silver_fold_rows,
                ratio=settings.silver_fold_ratio,
                files=settings.silver_fold_files,
            )
        if upkeep is None:
            continue
        if mode == "background":
            FOLDER.start(contract, uri, opts, upkeep)
        elif upkeep == "compact":
            silver.compact_tail(uri, opts)
        else:
            done[contract.table] = silver.fold(contract, uri, opts)
    return done
