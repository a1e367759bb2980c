"""Bronze exactly once, by event identity: every change event of the source is in bronze
once, nothing else is, compared event by event (not by totals that could cancel).

The identity of an event is ``(table, source position, primary key, op)``, read here from
the recorded Debezium records with the standard library (PostgreSQL records: the position
is ``source.lsn``), independently of the lander's decoder (the sources only hand over the
lines). Tombstones (no value) are
not events. The generator's recordings have no dead letters: every event must land.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from deltalake import DeltaTable

from lakehouse.cdc.file_source import FileSource
from lakehouse.cdc.source import ChangeSource
from lakehouse.contracts import load_contracts
from lakehouse.settings import Settings

Identity = tuple[object, ...]


def source_identities(settings: Settings, changes: Path | ChangeSource) -> Counter[Identity]:
    """Every distinct event of the recorded topics under ``changes`` (a directory of the
    change-event log, or a source such as Kafka's); a redelivered event counts once: the
    source database holds it once."""
    contracts = load_contracts(settings.contracts_dir)
    source = FileSource(changes) if isinstance(changes, Path) else changes
    seen: set[Identity] = set()
    for topic in source.topics():
        for batch in source.read(topic, 0, 10_000):
            for line in batch.lines:
                record = json.loads(line)
                value = record.get("value")
                if value is None:  # a tombstone
                    continue
                event = value["source"]
                assert event["connector"] == "postgresql", event["connector"]
                contract = contracts.get(event["table"])
                if contract is None:  # a table without a contract: the lander skips it
                    continue
                key = tuple(record["key"][k] for k in contract.primary_key)
                seen.add((contract.lake_name, int(event["lsn"]), key, value["op"]))
    return Counter(seen)


def streamed_changes(identities: Counter[Identity]) -> Counter[tuple[str, str]]:
    """The events per (table, op) that streaming captured (not the initial snapshot)."""
    return Counter((table, op) for table, _, _, op in identities.elements() if op != "r")


def bronze_identities(settings: Settings) -> Counter[Identity]:
    """Every row of every bronze table, as its event identity (a duplicate counts twice)."""
    found: Counter[Identity] = Counter()
    for table, contract in load_contracts(settings.contracts_dir).items():
        uri = settings.table_uri("bronze", table)
        columns = ["_event_pos", "_op", *contract.primary_key]
        rows = DeltaTable(uri).to_pyarrow_table(columns=columns).to_pylist()
        for row in rows:
            key = tuple(row[k] for k in contract.primary_key)
            found[(table, row["_event_pos"], key, row["_op"])] += 1
    return found


def exactly_once_faults(expected: Counter[Identity], landed: Counter[Identity]) -> list[str]:
    """What breaks exactly-once: events landed twice, missing, or never in the source."""
    faults = [f"landed {n} times: {ident}" for ident, n in landed.items() if n > 1]
    faults += [f"missing: {ident}" for ident in expected.keys() - landed.keys()]
    faults += [f"not in the source: {ident}" for ident in landed.keys() - expected.keys()]
    return faults


def assert_bronze_exactly_once(
    settings: Settings, changes: Path | ChangeSource
) -> Counter[Identity]:
    """Bronze holds every event of ``changes`` once and nothing else; the events."""
    expected = source_identities(settings, changes)
    faults = exactly_once_faults(expected, bronze_identities(settings))
    assert not faults, f"{len(faults)} faults, first: {faults[:5]}"
    return expected
