"""Reconcile silver with the source: per table, the row count and a checksum of the rows.

The source is what the data directory was fed from:

* **live**: the PostgreSQL database a Debezium capture reads (``capture/offsets.dat``);
  every contract table is read in one read-only snapshot
  (:mod:`lakehouse.oltp.snapshot`), in the contract's lake types. The caller has the
  database up (the gate starts a stopped cluster for its audit); when it is not, every
  table's checks fail with the one line that says where it could not connect;
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
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.cdc.pii import Masker, load_key
from lakehouse.contracts import Contract, load_source_contracts
from lakehouse.exceptions import LakehouseError, OltpError
from lakehouse.lake.silver import read_current
from lakehouse.oltp.snapshot import source_snapshot
from lakehouse.quality import CheckResult

if TYPE_CHECKING:
    import duckdb

    from lakehouse.settings import Settings

log = logging.getLogger(__name__)

SourceKind = Literal["live", "files"]


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
    sources = (
        _live_tables(settings, contracts, masker)
        if kind == "live"
        else _truth_tables(settings, contracts, masker)
    )
    out: list[TableReconciliation] = []
    with duckdb.connect() as con:
        for name, source in sources:
            contract = contracts[name]
            silver = _silver_table(settings, contract)
            out.append(_compare(con, contract, source, silver))
    return out


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
    lake = _conform(contract, silver)
    silver_rows, silver_sum = _digest(con, "silver_rows", contract, lake)
    if isinstance(source, str):  # the source could not be read
        return TableReconciliation(
            contract.lake_name, None, silver_rows, None, silver_sum, problem=source
        )
    source_rows, source_sum = _digest(con, "source_rows", contract, _conform(contract, source))
    figures = TableReconciliation(
        contract.lake_name, source_rows, silver_rows, source_sum, silver_sum
    )
    if figures.rows_match and figures.checksums_match:
        return figures
    keys = " and ".join(f"s.c{i} = l.c{i}" for i, _ in _keys(contract))
    row = con.execute(
        "select count(*) filter (where l.h is null), count(*) filter (where s.h is null), "
        "count(*) filter (where s.h <> l.h) "
        f"from source_rows s full join silver_rows l on {keys}"
    ).fetchone()
    assert row is not None
    return TableReconciliation(
        contract.lake_name,
        source_rows,
        silver_rows,
        source_sum,
        silver_sum,
        only_in_source=int(row[0]),
        only_in_silver=int(row[1]),
        changed=int(row[2]),
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


def _live_tables(
    settings: Settings, contracts: dict[str, Contract], masker: Masker
) -> Iterator[tuple[str, pa.Table | str]]:
    """Every contract table as of one read-only snapshot of the database, in lake types.
    The caller (the gate) has the database up; when it is not, every table says so."""
    with ExitStack() as stack:
        try:
            source = stack.enter_context(source_snapshot(settings))
        except LakehouseError as exc:
            for name in contracts:
                yield name, str(exc)
            return
        for name, contract in contracts.items():
            try:
                table = source.read(contract)
            except OltpError as exc:
                yield name, str(exc)
                continue
            yield name, masker.mask_table(contract, table)
