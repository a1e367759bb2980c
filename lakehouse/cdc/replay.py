"""List and replay dead letters (``lakehouse dlq list|replay``).

A replay re-reads each dead letter's original record from the source at its topic offset
(or, once the change log's retention deleted it, the dead letter's masked copy: its
tokens stay as they are, masking is idempotent; its other masked strings land as tokens),
decodes it with the contracts as they are now, and lands what decodes:

* bronze gets the rows (deduplicated like any landing), committed under the app id
  ``dlq-replay`` so the topics' own positions do not move;
* silver is recomputed for the keys concerned from their whole bronze history, so a
  replayed change wins only if it is really the key's last one;
* the dead-letter table drops what landed and keeps what still fails, with its new
  reason, in one Delta merge.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from lakehouse.cdc.decode import decode
from lakehouse.cdc.file_source import FileSource, RawBatch
from lakehouse.cdc.pii import Masker, checked_key
from lakehouse.cdc.sources import SOURCE_TOPIC_PREFIX
from lakehouse.contracts import Contract, load_source_contracts
from lakehouse.lake import bronze, delta, silver
from lakehouse.lease import hold
from lakehouse.settings import Settings

DEAD_LETTER = ("dead_letter", "events")
REPLAY_APP_ID = "dlq-replay"


@dataclass
class ReplayReport:
    replayed: Counter[str] = field(default_factory=Counter)
    still_failing: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


def dead_letters(settings: Settings, topic: str | None = None) -> pa.Table:
    table = delta.open_table(settings.table_uri(*DEAD_LETTER), settings.lake_storage_options)
    if table is None:
        return pa.table({"topic": pa.array([], pa.string()), "offset": pa.array([], pa.int64())})
    rows = table.to_pyarrow_dataset().to_table(
        filter=None if topic is None else ds.field("topic") == topic
    )
    return rows.sort_by([("topic", "ascending"), ("offset", "ascending")])


def _contract_for(
    topic: str, settings: Settings, contracts: dict[str, Contract]
) -> Contract | None:
    parts = topic.split(".")
    for contract in contracts.values():
        if topic == settings.topic(contract.table, contract.schema):
            return contract
        if len(parts) == 4 and parts[2:] == [contract.schema, contract.table]:
            return contract
    return None


def replay(settings: Settings, topic: str | None = None) -> ReplayReport:
    """Land the dead letters that pass their contract now; it writes bronze and silver
    as the lander does, so it holds the lander's lease."""
    with hold(settings, "lander"):
        return _replay(settings, topic)


def _replay(settings: Settings, topic: str | None) -> ReplayReport:
    started = time.perf_counter()
    report = ReplayReport()
    letters = dead_letters(settings, topic)
    if letters.num_rows == 0:
        return report
    contracts = load_source_contracts(settings)
    source = FileSource(settings.changes_path)
    masker = Masker(checked_key(settings))
    outcome: list[dict[str, object]] = []  # per dead letter: replayed, or its new reason
    for name in pc.unique(letters.column("topic")).to_pylist():
        mine = letters.filter(pc.equal(letters.column("topic"), name))
        offsets = mine.column("offset")
        kept_copies = mine.column("raw").to_pylist() if "raw" in mine.column_names else []
        contract = _contract_for(name, settings, contracts)
        if contract is None:
            reason = (  # a file or REST source's rows are read again at the source
                "a source beside CDC: fix the row at the source (a new file, the API's row); "
                "its next run lands it"
                if name.startswith(SOURCE_TOPIC_PREFIX)
                else "no data contract"
            )
            for offset in offsets.to_pylist():
                outcome.append({"topic": name, "offset": offset, "reason": reason})
            continue
        landed: list[pa.Table] = []
        for i, offset in enumerate(offsets.to_pylist()):
            batch = next(source.read(name, offset, 1), None)
            if batch is not None and batch.first_offset == offset:
                data = batch.data
            else:  # the change log's retention deleted it: the masked copy, if a record
                kept = kept_copies[i] if i < len(kept_copies) else None
                if kept is None or not kept.startswith("{"):
                    outcome.append({"topic": name, "offset": offset, "reason": "gone from source"})
                    continue
                data = kept.encode() + b"\n"  # its tokens stay as they are (not re-masked)
            decoded = decode(contract, RawBatch(name, offset, data, 1), masker)
            if decoded.rejects.num_rows:
                reason = decoded.rejects.column("reason")[0].as_py()
                outcome.append({"topic": name, "offset": offset, "reason": reason})
            else:
                landed.append(decoded.rows)
                outcome.append({"topic": name, "offset": offset, "reason": None})
        if landed:
            _land(settings, contract, pa.concat_tables(landed))
    _settle_dead_letters(settings, outcome)
    for row in outcome:
        target = report.replayed if row["reason"] is None else report.still_failing
        target[str(row["topic"])] += 1
    report.seconds = time.perf_counter() - started
    return report


def _land(settings: Settings, contract: Contract, rows: pa.Table) -> None:
    bronze_uri = settings.table_uri("bronze", contract.lake_name)
    silver_uri = settings.table_uri("silver", contract.lake_name)
    opts = settings.lake_storage_options
    table = delta.open_table(bronze_uri, opts)
    changed_keys = rows.select(list(contract.primary_key))
    identity = bronze.identity(contract)
    rows = bronze.drop_landed(table, bronze.drop_duplicates(rows, identity), identity)
    if rows.num_rows:
        now = pa.array([datetime.now(UTC)] * rows.num_rows, bronze.INGESTED_AT.type)
        rows = rows.append_column(bronze.INGESTED_AT, now)
        version = delta.committed_version(table, REPLAY_APP_ID) + 1
        delta.append(  # against the snapshot planned on: under the lease, nobody else commits
            table if table is not None else bronze_uri,
            rows,
            app_id=REPLAY_APP_ID,
            version=version,
            storage_options=opts,
        )
    silver.reapply_keys(contract, bronze_uri, silver_uri, changed_keys, opts)


def _settle_dead_letters(settings: Settings, outcome: list[dict[str, object]]) -> None:
    """Drop the dead letters that landed, re-reason the others: one atomic merge."""
    uri = settings.table_uri(*DEAD_LETTER)
    table = DeltaTable(uri, storage_options=settings.lake_storage_options or None)
    source = pa.Table.from_pylist(
        [{**row, "failed_at": datetime.now(UTC)} for row in outcome],
        schema=pa.schema(
            [
                pa.field("topic", pa.string()),
                pa.field("offset", pa.int64()),
                pa.field("reason", pa.string()),
                pa.field("failed_at", pa.timestamp("us", tz="UTC")),
            ]
        ),
    )
    (
        table.merge(
            source,
            predicate="t.topic = s.topic AND t.offset = s.offset",
            source_alias="s",
            target_alias="t",
        )
        .when_matched_delete(predicate="s.reason IS NULL")
        .when_matched_update(
            updates={"reason": "s.reason", "failed_at": "s.failed_at"},
            predicate="s.reason IS NOT NULL",
        )
        .execute()
    )
