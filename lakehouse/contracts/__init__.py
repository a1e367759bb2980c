"""Data contracts: one YAML file per source table, the single source of truth.

A contract names the primary key, the columns with their types and constraints (foreign
keys included: ``references: <table>.<column>``), and the PII class of each column. The
generator, the lander and the dbt sources all read them.

Types and how Debezium's JSON converter (``decimal.handling.mode=string``,
``time.precision.mode=adaptive``) writes them:

=============  ===================================  ==========================
contract type  Debezium JSON value                  Arrow type in the lake
=============  ===================================  ==========================
smallint/int   number (parsed as int64)             int64
bigint         number                               int64
double         number                               float64
boolean        true/false                           bool
string/json    string                               string
uuid           string                               string
decimal(p,s)   string "12.34"                       decimal128(38, s)
date           days since 1970-01-01 (number)       date32
timestamp      microseconds since epoch (number)    timestamp[us]
timestamp_ms   milliseconds since epoch (number)    timestamp[ms]
timestamptz    ISO-8601 string with zone            timestamp[us, UTC]
=============  ===================================  ==========================

Integers are int64 and decimals have precision 38 in the lake whatever their declared
size, so that widening a column in the source (``int`` to ``bigint``, ``numeric(10,2)``
to ``numeric(14,2)``) never stops landing; the contract keeps the declared type for
checks and documentation.

The contracts of a source are the shipped ones (``contracts_dir``, reviewed) and those the
capture drafted for every other table it sees (``captured_contracts_dir``, marked
``reviewed: false`` until ``lakehouse contracts approve`` or the user deletes the line;
until then the lander masks every text column of the table):
``load_source_contracts`` reads both, and everything that lands, reports on or replays the
lake uses it. A table's name in the lake is ``Contract.lake_name``: its own in the
default schema, ``<schema>__<table>`` in another.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import yaml

from lakehouse.exceptions import ContractError

if TYPE_CHECKING:
    from lakehouse.settings import Settings

# Schemas whose tables keep their own name in the lake.
DEFAULT_SCHEMAS = ("public", "dbo")
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
_REFERENCE = re.compile(r"^[^.\s]+(\.[^.\s]+){1,2}$")
# Table, schema and column names reach SQL (DuckDB, Trino, PostgreSQL) and delta-rs merge
# predicates: lowercase letters, digits and underscores only, as engines fold case.
NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_NAME_RULE = "use lowercase letters, digits and underscores, starting with a letter or _"
_CONTRACT_KEYS = ("table", "schema", "primary_key", "columns", "description", "reviewed")
_COLUMN_KEYS = ("name", "type", "nullable", "pii", "accepted_values", "min", "max", "references")

_SIMPLE_TYPES: dict[str, tuple[pa.DataType, pa.DataType]] = {
    # contract type: (type of the value in Debezium JSON, type in the lake)
    "smallint": (pa.int64(), pa.int64()),
    "int": (pa.int64(), pa.int64()),
    "bigint": (pa.int64(), pa.int64()),
    "double": (pa.float64(), pa.float64()),
    "boolean": (pa.bool_(), pa.bool_()),
    "string": (pa.string(), pa.string()),
    "json": (pa.string(), pa.string()),
    "uuid": (pa.string(), pa.string()),
    "date": (pa.int32(), pa.date32()),
    "timestamp": (pa.int64(), pa.timestamp("us")),
    # PostgreSQL timestamp(0..3): Debezium's adaptive mode sends milliseconds for those
    "timestamp_ms": (pa.int64(), pa.timestamp("ms")),
    "timestamptz": (pa.string(), pa.timestamp("us", tz="UTC")),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = True
    pii: str | None = None
    accepted_values: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    # a foreign key, "<table>.<column>" (or "<schema>.<table>.<column>"); declared by hand,
    # `contracts infer` does not draft it, hence left out of equality
    references: str | None = field(default=None, compare=False)

    @property
    def wire_type(self) -> pa.DataType:
        """Arrow type of the value as Debezium's JSON carries it."""
        if _DECIMAL.match(self.type):
            return pa.string()
        return _SIMPLE_TYPES[self.type][0]

    @property
    def arrow_type(self) -> pa.DataType:
        """Arrow type of the column in bronze and silver."""
        m = _DECIMAL.match(self.type)
        if m:
            return pa.decimal128(38, int(m.group(2)))
        return _SIMPLE_TYPES[self.type][1]


@dataclass(frozen=True)
class Contract:
    table: str
    schema: str
    primary_key: tuple[str, ...]
    columns: tuple[Column, ...]
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    # False for a draft (``reviewed: false``, as capture writes them): the lander then
    # masks every text column; ``lakehouse contracts approve`` or deleting the line ends it
    reviewed: bool = field(default=True, compare=False)

    @property
    def lake_name(self) -> str:
        """The table's name in the lake: its own for a table of the default schema
        (``public`` in PostgreSQL, ``dbo`` in SQL Server), ``<schema>__<table>`` otherwise
        (``load_source_contracts`` refuses two contracts with the same lake name)."""
        if self.schema in DEFAULT_SCHEMAS:
            return self.table
        return f"{self.schema}__{self.table}"

    @cached_property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        """Schema of the table's rows in the lake (data columns only)."""
        return pa.schema(
            [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns]
        )

    @cached_property
    def wire_schema(self) -> pa.StructType:
        """Struct type of a row image (``before``/``after``) as Debezium writes it."""
        return pa.struct([pa.field(c.name, c.wire_type) for c in self.columns])

    @cached_property
    def key_schema(self) -> pa.StructType:
        return pa.struct([pa.field(k, self.column(k).wire_type) for k in self.primary_key])


def _name(value: Any, what: str, where: Path) -> str:
    """A table, schema or column name, refused unless it is safe in any SQL dialect."""
    if not isinstance(value, str) or not NAME.match(value):
        raise ContractError(f"{where}: {what} {value!r} is not a valid name: {_NAME_RULE}")
    return value


def _unknown_keys(raw: dict[str, Any], known: tuple[str, ...], what: str, where: Path) -> None:
    unknown = [str(k) for k in raw if k not in known]
    if unknown:
        raise ContractError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))} in {what}; "
            f"the keys are {', '.join(known)}"
        )


def _parse_column(raw: Any, where: Path) -> Column:
    if not isinstance(raw, dict) or "name" not in raw or "type" not in raw:
        raise ContractError(f"{where}: every column needs a 'name' and a 'type'")
    _name(raw["name"], "column", where)
    _unknown_keys(raw, _COLUMN_KEYS, f"column {raw['name']!r}", where)
    nullable = raw.get("nullable", True)
    if not isinstance(nullable, bool):
        raise ContractError(
            f"{where}: column {raw['name']!r} has nullable {nullable!r}; write true or false"
        )
    ctype = str(raw["type"]).strip().lower()
    if ctype not in _SIMPLE_TYPES and not _DECIMAL.match(ctype):
        raise ContractError(
            f"{where}: column {raw['name']!r} has unknown type {ctype!r}; use one of "
            f"{', '.join(sorted(_SIMPLE_TYPES))} or decimal(p,s)"
        )
    accepted = raw.get("accepted_values")
    references = raw.get("references")
    if references is not None and not _REFERENCE.match(str(references)):
        raise ContractError(
            f"{where}: column {raw['name']!r} references {references!r}; write "
            "'<table>.<column>' (or '<schema>.<table>.<column>')"
        )
    return Column(
        name=str(raw["name"]),
        type=ctype,
        nullable=nullable,
        pii=raw.get("pii"),
        accepted_values=tuple(accepted) if accepted else None,
        min=raw.get("min"),
        max=raw.get("max"),
        references=None if references is None else str(references),
    )


def load_contract(path: Path) -> Contract:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ContractError(f"cannot read contract {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ContractError(
            f"contract {path} is not valid YAML ({_yaml_problem(exc)}): fix it"
        ) from None
    if not isinstance(raw, dict) or "table" not in raw or "columns" not in raw:
        raise ContractError(f"{path}: a contract needs 'table', 'primary_key' and 'columns'")
    _unknown_keys(raw, _CONTRACT_KEYS, "the contract", path)
    table = _name(raw["table"], "table", path)
    schema = _name(raw.get("schema", "public"), "schema", path)
    if not isinstance(raw["columns"], list) or not raw["columns"]:
        raise ContractError(f"{path}: 'columns' must be a list of columns, one at least")
    columns = tuple(_parse_column(c, path) for c in raw["columns"])
    names = [c.name for c in columns]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ContractError(f"{path}: column(s) {twice} are declared twice")
    pk_raw = raw.get("primary_key")
    if isinstance(pk_raw, str):
        pk_raw = [pk_raw]
    if not pk_raw or not isinstance(pk_raw, list):
        raise ContractError(f"{path}: 'primary_key' is required (a list of column names)")
    pk = tuple(str(k) for k in pk_raw)
    missing = [k for k in pk if k not in names]
    if missing:
        raise ContractError(f"{path}: primary key column(s) {missing} are not among the columns")
    reviewed = raw.get("reviewed", True)
    if not isinstance(reviewed, bool):
        raise ContractError(f"{path}: 'reviewed' must be true or false, not {reviewed!r}")
    return Contract(
        table=table,
        schema=schema,
        primary_key=pk,
        columns=columns,
        description=str(raw.get("description", "")),
        path=path,
        reviewed=reviewed,
    )


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What the YAML parser found and where, on one line."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def load_contracts(directory: Path) -> dict[str, Contract]:
    """All contracts of a directory, keyed by table name."""
    if not directory.is_dir():
        raise ContractError(f"contracts directory {directory} does not exist")
    contracts = {c.table: c for c in _read_directory(directory)}
    if not contracts:
        raise ContractError(f"no contract (*.yml) found in {directory}")
    return contracts


def load_source_contracts(settings: Settings, *, allow_empty: bool = False) -> dict[str, Contract]:
    """The contracts of the source, keyed by lake name: the shipped ones
    (``contracts_dir``) and the ones the capture drafted (``captured_contracts_dir``). A
    shipped contract wins over a drafted one for the same table."""
    shipped_dir = settings.contracts_dir
    if not shipped_dir.is_dir():
        raise ContractError(f"contracts directory {shipped_dir} does not exist")
    shipped = _read_directory(shipped_dir)
    drafted: list[Contract] = []
    captured_dir = settings.captured_contracts_dir
    if captured_dir.is_dir() and captured_dir.resolve() != shipped_dir.resolve():
        have = {(c.schema, c.table) for c in shipped}
        drafted = [c for c in _read_directory(captured_dir) if (c.schema, c.table) not in have]
    contracts: dict[str, Contract] = {}
    for contract in [*shipped, *drafted]:
        other = contracts.get(contract.lake_name)
        if other is not None:
            raise ContractError(
                f"{other.path} ({other.schema}.{other.table}) and {contract.path} "
                f"({contract.schema}.{contract.table}) would both be the lake table "
                f"{contract.lake_name!r}: remove or rename one of them"
            )
        contracts[contract.lake_name] = contract
    if not contracts and not allow_empty:
        raise ContractError(
            f"no contract (*.yml) found in {shipped_dir} or {captured_dir}: "
            "run `lakehouse capture` (it drafts the contracts of the tables it captures)"
        )
    return contracts


def _read_directory(directory: Path) -> list[Contract]:
    return [load_contract(path) for path in sorted(directory.glob("*.yml"))]


_UNREVIEWED = re.compile(r"^reviewed:\s*false\s*(#.*)?$", re.MULTILINE)


def approve(settings: Settings, table: str) -> Contract:
    """Mark the drafted contract of ``table`` (its lake name, ``<schema>.<table>`` or
    its name) reviewed: from then on its PII classes decide what is masked."""
    contracts = load_source_contracts(settings)
    found = [
        c for c in contracts.values() if table in (c.lake_name, f"{c.schema}.{c.table}", c.table)
    ]
    if not found:
        raise ContractError(
            f"no contract for table {table!r}; known: {', '.join(sorted(contracts))}"
        )
    if len(found) > 1:
        names = ", ".join(f"{c.schema}.{c.table}" for c in found)
        raise ContractError(f"{table!r} names {names}: give the schema too")
    contract = found[0]
    if contract.reviewed:
        return contract
    assert contract.path is not None
    text, n = _UNREVIEWED.subn("reviewed: true", contract.path.read_text())
    if n != 1:
        raise ContractError(
            f"{contract.path}: cannot find its 'reviewed: false' line; edit the file instead"
        )
    partial = contract.path.with_name(f".{contract.path.name}.partial")
    partial.write_text(text)
    os.replace(partial, contract.path)
    return load_contract(contract.path)
