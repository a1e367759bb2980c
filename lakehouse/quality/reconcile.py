"""Reconcile silver with the source: per table, the row count and a checksum of the rows.

The source is what the data directory was fed from:

* **live**: the PostgreSQL database a Debezium capture reads (``capture/offsets.dat``);
  every contract table is read in one read-only snapshot
  (:mod:`lakehouse.oltp.snapshot`), in the contract's lake types. The caller has the
  database up (the gate starts a stopped cluster for its audit); when it is not, every
  table's checks fail with the one line that says where it could not connect. While the
  shop goes on, the keys with a change committed since the snapshot (from bronze's
  ``_source_ts``, with a margin) are left out on both sides, and silver is read again
  until it has caught up with the snapshot for every other key (or a time-out);
* **files**: recorded change files and the generator's ground truth, the source's final
  state (``ground_truth/<table>.parquet``).

Anything else (e.g. changes read from Kafka, fed by a database elsewhere) has no source
to reconcile with. On both sides PII columns hold the lander's keyed tokens, so the raw
values never leave this module's memory.

The checksum is order independent: DuckDB hashes every row over the contract's columns,
in identical Arrow types on both sides, and sums the hashes (modulo 2**64). Equal rows
give equal checksums; a changed, missing or extra row changes it but for a chance of
2**-64. The hash is DuckDB's: compare checksums of one run, not across DuckDB versions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lakehouse.cdc.pii import Masker, load_key
from lakehouse.contracts import Contract, load_source_contracts
from lakehouse.exceptions import LakehouseError, OltpError
from lakehouse.lake import delta
from lakehouse.lake.silver import read_current
from lakehouse.oltp.snapshot import source_snapshot
from lakehouse.quality import CheckResult

if TYPE_CHECKING:
    import duckdb

    from lakehouse.settings import Settings

log = logging.getLogger(__name__)

SourceKind = Literal["live", "files"]
# a change committed this long before the live snapshot may still be invisible to it (its
# commit being recorded as the snapshot was taken): such keys are left out too
IN_FLIGHT_MARGIN = timedelta(seconds=2)
RETRY_S = 2.0


@dataclass(frozen=True)
class TableReconciliation:
    """The figures of one table, for the checks and for a history of reconciliations.

    Key counts are those of the primary keys: present on one side only, or on both with
    rows that differ. ``problem`` says why the source could not be read (then the source
    figures are None)."""

    table: str  # the lake name
    source_rows: int | None
    silver_rows: int
    source_checksum: str | None
    silver_checksum: str
    only_in_source: int = 0
    only_in_silver: int = 0
    changed: int = 0
    problem: str | None = None
    in_flight: int = 0  # keys left out: changed in the source around or after its snapshot

    @property
    def rows_match(self) -> bool:
        return self.problem is None and self.source_rows == self.silver_rows

    @property
    def checksums_match(self) -> bool:
        return self.problem is None and self.source_checksum == self.silver_checksum


def source_kind(settings: Settings) -> SourceKind | None:
    """What fed the data directory: recorded files with their ground truth, a live
    capture of PostgreSQL, or neither (nothing to reconcile with)."""
    if (settings.changes_path / "manifest.json").exists() and settings.ground_truth_path.is_dir():
        return "files"
    if (settings.root / "capture" / "offsets.dat").exists():
        return "live"
    return None


def reconcile(settings: Settings) -> list[CheckResult]:
    """Two error-level checks per table: ``reconcile:<table>:row_count`` and
    ``reconcile:<table>:checksum``; none when there is no source to compare with."""
    checks: list[CheckResult] = []
    for figures in reconcile_tables(settings):
        checks += _checks(figures)
    return checks


def reconcile_tables(settings: Settings) -> list[TableReconciliation]:
    """The figures of every contract table, source against silver."""
    kind = source_kind(settings)
    if kind is None:
        log.info("no source to reconcile with")
        return []
    import duckdb

    contracts = load_source_contracts(settings)
    masker = Masker(load_key(settings))
    with duckdb.connect() as con:
        if kind == "files":
            return [
                _compare(con, contracts[name], source, _silver_table(settings, contracts[name]))
                for name, source in _truth_tables(settings, contracts, masker)
            ]
        return _reconcile_live(settings, con, contracts, masker)


def _reconcile_live(
    settings: Settings,
    con: duckdb.DuckDBPyConnection,
    contracts: dict[str, Contract],
    masker: Masker,
) -> list[TableReconciliation]:
    """Silver against one snapshot of a database that goes on changing while the lander
    runs. A key with a change committed from ``IN_FLIGHT_MARGIN`` before the snapshot on
    (in bronze: silver may already hold it, the snapshot does not) is left out on both
    sides; every other key must match. A key silver has not caught up with yet differs
    until the lander lands its change: silver is read again until it matches or
    ``reconcile_live_wait_seconds`` have passed."""
    taken_at, problems = _digest_live_sources(settings, con, contracts, masker)
    deadline = time.monotonic() + settings.reconcile_live_wait_seconds
    while True:
        out = []
        for i, (name, contract) in enumerate(contracts.items()):
            if name in problems:
                silver = _silver_table(settings, contract)
                out.append(_compare(con, contract, problems[name], silver))
                continue
            assert taken_at is not None
            since = taken_at - IN_FLIGHT_MARGIN
            out.append(
                _compare_digested(
                    con,
                    contract,
                    f"source_{i}",
                    _silver_table(settings, contract),
                    _changed_since(settings, contract, since),
                )
            )
        settled = all(r.problem is not None or (r.rows_match and r.checksums_match) for r in out)
        if settled or time.monotonic() >= deadline:
            return out
        time.sleep(RETRY_S)


# -- the checks ---------------------------------------------------------------------------


def _checks(r: TableReconciliation) -> list[CheckResult]:
    if r.problem is not None:
        detail = f"silver.{r.table} not reconciled: {r.problem}"
        return [
            _check(r.table, "row_count", False, str(r.silver_rows), None, detail),
            _check(r.table, "checksum", False, r.silver_checksum, None, detail),
        ]
    if r.rows_match:
        rows = f"silver.{r.table} has {r.silver_rows:,} rows, as the source"
    else:
        rows = f"silver.{r.table} has {r.silver_rows:,} rows, the source {r.source_rows:,}"
    if r.in_flight:  # a live source: keys it changed since its snapshot are not compared
        rows += f" (leaving out {_rows(r.in_flight)} changed since the snapshot)"
    if r.checksums_match:
        same = f"silver.{r.table} has the same rows as the source"
    else:
        same = f"silver.{r.table} and the source differ: {_differences(r)}"
    return [
        _check(r.table, "row_count", r.rows_match, str(r.silver_rows), str(r.source_rows), rows),
        _check(r.table, "checksum", r.checksums_match, r.silver_checksum, r.source_checksum, same),
    ]


def _check(
    table: str,
    measure: str,
    passed: bool,
    observed: str,
    expected: str | None,
    detail: str,
) -> CheckResult:
    return CheckResult(
        check=f"reconcile:{table}:{measure}",
        kind="reconciliation",
        layer="silver",
        table=table,
        severity="error",
        passed=passed,
        observed=observed,
        expected=expected,
        detail=detail,
    )


def _differences(r: TableReconciliation) -> str:
    parts = []
    if r.only_in_source:
        parts.append(f"{_rows(r.only_in_source)} only in the source")
    if r.only_in_silver:
        parts.append(f"{_rows(r.only_in_silver)} only in silver")
    if r.changed:
        parts.append(f"{_rows(r.changed)} with other values")
    # equal keys and values but different checksums: duplicate keys on one side
    return ", ".join(parts) + " (by primary key)" if parts else "checksums differ"


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")


# -- comparing two tables -----------------------------------------------------------------


def _lake_schema(contract: Contract) -> pa.Schema:
    """The contract's columns as silver holds them: PII columns are token strings."""
    return pa.schema(
        [pa.field(c.name, pa.string() if c.pii else c.arrow_type) for c in contract.columns]
    )


def _conform(contract: Contract, table: pa.Table) -> pa.Table:
    """The contract's columns, in its order and lake types (null where a column is
    missing), renamed ``c0, c1, ...`` for SQL."""
    schema = _lake_schema(contract)
    columns = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, names=[f"c{i}" for i in range(len(columns))])


def _compare(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    source: pa.Table | str,
    silver: pa.Table,
) -> TableReconciliation:
    if isinstance(source, str):  # the source could not be read
        silver_rows, silver_sum = _digest(con, "silver_rows", contract, _conform(contract, silver))
        return TableReconciliation(
            contract.lake_name, None, silver_rows, None, silver_sum, problem=source
        )
    _digest(con, "source_rows", contract, _conform(contract, source))
    return _compare_digested(con, contract, "source_rows", silver, None)


def _compare_digested(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    source_name: str,
    silver: pa.Table,
    left_out: pa.Table | None,
) -> TableReconciliation:
    """Silver against the source's digest ``source_name``, without the keys of
    ``left_out`` (on both sides)."""
    _digest(con, "silver_rows", contract, _conform(contract, silver))
    keys = _keys(contract)
    on = " and ".join(f"s.c{i} = l.c{i}" for i, _ in keys)
    source, lake, in_flight = source_name, "silver_rows", 0
    if left_out is not None and left_out.num_rows:
        renamed = left_out.select([k for _, k in keys]).rename_columns([f"c{i}" for i, _ in keys])
        con.register("_left_out", renamed)
        con.execute("create or replace temp table left_out as select distinct * from _left_out")
        con.unregister("_left_out")
        not_out = " and ".join(f"x.c{i} = o.c{i}" for i, _ in keys)
        for name in (source_name, "silver_rows"):
            con.execute(
                f"create or replace temp view {name}_kept as select * from {name} x "
                f"where not exists (select 1 from left_out o where {not_out})"
            )
        source, lake = f"{source_name}_kept", "silver_rows_kept"
        row = con.execute("select count(*) from left_out").fetchone()
        in_flight = int(row[0]) if row else 0
    source_rows, source_sum = _sum(con, source)
    silver_rows, silver_sum = _sum(con, lake)
    figures = TableReconciliation(
        contract.lake_name, source_rows, silver_rows, source_sum, silver_sum, in_flight=in_flight
    )
    if figures.rows_match and figures.checksums_match:
        return figures
    row = con.execute(
        "select count(*) filter (where l.h is null), count(*) filter (where s.h is null), "
        "count(*) filter (where s.h <> l.h) "
        f"from {source} s full join {lake} l on {on}"
    ).fetchone()
    assert row is not None
    return replace(
        figures, only_in_source=int(row[0]), only_in_silver=int(row[1]), changed=int(row[2])
    )


def _keys(contract: Contract) -> list[tuple[int, str]]:
    return [(contract.column_names.index(k), k) for k in contract.primary_key]


def _digest(
    con: duckdb.DuckDBPyConnection, name: str, contract: Contract, rows: pa.Table
) -> tuple[int, str]:
    """Hash every row into table ``name`` (keys and hash); its row count and checksum."""
    columns = ", ".join(rows.column_names)
    keys = ", ".join(f"c{i}" for i, _ in _keys(contract))
    con.register("_rows", rows)
    con.execute(
        f"create or replace temp table {name} as select {keys}, hash({columns}) as h from _rows"
    )
    con.unregister("_rows")
    return _sum(con, name)


def _sum(con: duckdb.DuckDBPyConnection, name: str) -> tuple[int, str]:
    row = con.execute(f"select count(*), coalesce(sum(h), 0) from {name}").fetchone()
    assert row is not None
    return int(row[0]), f"{int(row[1]) % 2**64:016x}"


# -- silver -------------------------------------------------------------------------------


def _silver_table(settings: Settings, contract: Contract) -> pa.Table:
    """The contract's columns of the silver table's current state (none when it does not
    exist yet)."""
    table = read_current(
        settings.table_uri("silver", contract.lake_name),
        contract.primary_key,
        settings.lake_storage_options,
    )
    if table is None:
        return _lake_schema(contract).empty_table()
    return table.select([c for c in contract.column_names if c in table.column_names])


def _changed_since(settings: Settings, contract: Contract, since: datetime) -> pa.Table:
    """The keys of the bronze changes committed in the source at ``since`` or later (the
    change log is in commit order: the files' statistics skip the older ones)."""
    bronze = delta.open_table(
        settings.table_uri("bronze", contract.lake_name), settings.lake_storage_options
    )
    if bronze is None:
        return pa.table({k: pa.array([], pa.int64()) for k in contract.primary_key})
    return bronze.to_pyarrow_dataset().to_table(
        columns=list(contract.primary_key),
        filter=ds.field("_source_ts") >= pa.scalar(since, pa.timestamp("us", tz="UTC")),
    )


# -- the recorded files' ground truth -----------------------------------------------------


def _truth_tables(
    settings: Settings, contracts: dict[str, Contract], masker: Masker
) -> Iterator[tuple[str, pa.Table | str]]:
    for name, contract in contracts.items():
        path = settings.ground_truth_path / f"{contract.table}.parquet"
        if not path.exists():
            yield name, f"the ground truth has no {path.name}"
            continue
        truth = pq.read_table(path, columns=contract.column_names)
        yield name, masker.mask_table(contract, truth)


# -- the live PostgreSQL source -----------------------------------------------------------


def _digest_live_sources(
    settings: Settings,
    con: duckdb.DuckDBPyConnection,
    contracts: dict[str, Contract],
    masker: Masker,
) -> tuple[datetime | None, dict[str, str]]:
    """Every contract table as of one read-only snapshot of the database, in lake types,
    hashed into ``source_<i>`` (i: the contract's place); the snapshot's time, and the
    tables that could not be read with why. The caller (the gate) has the database up;
    when it is not, every table says so."""
    problems: dict[str, str] = {}
    with ExitStack() as stack:
        try:
            source = stack.enter_context(source_snapshot(settings))
        except LakehouseError as exc:
            return None, dict.fromkeys(contracts, str(exc))
        for i, (name, contract) in enumerate(contracts.items()):
            try:
                table = source.read(contract)
            except OltpError as exc:
                problems[name] = str(exc)
                continue
            _digest(
                con, f"source_{i}", contract, _conform(contract, masker.mask_table(contract, table))
            )
        return source.taken_at, problems
