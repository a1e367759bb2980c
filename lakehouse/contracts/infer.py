"""Draft data contracts from a live PostgreSQL database (``lakehouse contracts infer``,
and ``lakehouse capture`` for every captured table without a contract).

Reads the catalog: columns and their types, NOT NULL, the primary key, and single-column
CHECK constraints of the forms ``col IN (...)``, ``col >= n`` and ``col <= n``. Guesses
the PII class from column names. The draft is a starting point, marked ``reviewed: false``
(every text column is masked until it is reviewed): review it (above all the PII
classes); a reviewed copy in ``contracts_dir`` wins over the capture's draft.

A column whose type has no contract type (``time``, ``bytea``, arrays, composites, ...)
is left out of the contract; the lander still carries its values as Debezium's JSON has
them (numbers and strings; arrays and composite values are dropped), and the rest of the
row lands. An unconstrained ``numeric`` (or one wider than the lake's 38 digits) is a
``string`` of its exact digits.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lakehouse.contracts import Contract, load_contract
from lakehouse.exceptions import ContractError

if TYPE_CHECKING:
    import psycopg

_SIMPLE = {
    "smallint": "smallint",
    "integer": "int",
    "bigint": "bigint",
    "double precision": "double",
    "real": "double",
    "boolean": "boolean",
    "text": "string",
    "character varying": "string",
    "character": "string",
    "json": "json",
    "jsonb": "json",
    "uuid": "uuid",
    "date": "date",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "enum": "string",  # a user-defined enum (resolved in the catalog query)
    "inet": "string",
    "cidr": "string",
    "macaddr": "string",
    "macaddr8": "string",
    "xml": "string",
    "interval": "string",  # ISO 8601, e.g. P0Y0M1DT2H3M4.5S (interval.handling.mode=string)
}
# The lake's decimals are decimal128(38, s): a wider or unconstrained numeric is kept as
# its exact digits in a string (Debezium sends it so with decimal.handling.mode=string).
_MAX_DECIMAL_DIGITS = 38
# Types information_schema calls USER-DEFINED that are enums: their values are strings.
_COLUMNS = """
select c.column_name,
       case when c.data_type = 'USER-DEFINED' and exists (
                select 1 from pg_type t join pg_namespace n on n.oid = t.typnamespace
                where t.typname = c.udt_name and n.nspname = c.udt_schema and t.typtype = 'e')
            then 'enum' else c.data_type end,
       c.numeric_precision, c.numeric_scale, c.is_nullable, c.datetime_precision
from information_schema.columns c
where c.table_schema = %s and c.table_name = %s
order by c.ordinal_position
"""
_PII = [
    (re.compile(r"(^|_)(first|last|full|given|family|middle)?_?name$"), "name"),
    (re.compile(r"e?mail"), "email"),
    (re.compile(r"phone|mobile|fax"), "phone"),
    (re.compile(r"address|street|zip|postcode|postal"), "address"),
    (re.compile(r"birth|ssn|passport|iban"), "identifier"),
]
# Columns named like these are names of things, not of people.
_NOT_PERSONAL = re.compile(r"^(name|product_name|table_name|file_name|brand_name)$")
_ACCEPTED = re.compile(r"^CHECK \(\((\w+) = ANY \(ARRAY\[(.*)\]\)\)\)$")
_BOUND = re.compile(r"\((\w+) (>=|<=) \(?(-?[\d.]+)\)?(?:::[\w ]+)?\)")


@dataclass
class Draft:
    table: str
    path: Path
    skipped: list[str]


def _type(
    data_type: str, precision: int | None, scale: int | None, time_precision: int | None
) -> str | None:
    if data_type == "timestamp without time zone" and (time_precision or 0) <= 3:
        return "timestamp_ms"  # timestamp(0..3): Debezium sends milliseconds (adaptive)
    if data_type == "numeric":
        scale = scale or 0
        if (
            not precision
            or precision > _MAX_DECIMAL_DIGITS
            or not 0 <= scale <= _MAX_DECIMAL_DIGITS
        ):
            return "string"  # unconstrained or too wide for the lake's decimals: exact text
        return f"decimal({precision},{scale})"
    return _SIMPLE.get(data_type)


def guess_pii(column: str, table: str) -> str | None:
    """The PII class a column's name suggests, or None."""
    if _NOT_PERSONAL.match(column) and table not in ("client", "customer", "person", "user"):
        return None
    for pattern, klass in _PII:
        if pattern.search(column):
            return klass
    return None


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def infer(
    conn: psycopg.Connection,
    schema: str = "public",
    tables: list[str] | None = None,
    exclude: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """One contract (as a dict, the YAML's shape) per table of ``schema`` with a key
    (but the ``exclude`` ones, when no ``tables`` are named)."""
    names = tables or [
        r[0]
        for r in conn.execute(
            "select table_name from information_schema.tables "
            "where table_schema = %s and table_type = 'BASE TABLE' "
            "and table_name <> 'schema_migrations' order by 1",
            [schema],
        )
        if r[0] not in exclude
    ]
    contracts = []
    for table in names:
        columns = conn.execute(_COLUMNS, [schema, table]).fetchall()
        if not columns:
            raise ContractError(f"no table {schema}.{table} in the database")
        key = [
            r[0]
            for r in conn.execute(
                "select a.attname from pg_index i "
                "join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
                "where i.indrelid = %s::regclass and i.indisprimary "
                "order by array_position(i.indkey, a.attnum)",
                [_regclass(schema, table)],
            )
        ]
        checks = [
            r[0]
            for r in conn.execute(
                "select pg_get_constraintdef(c.oid) from pg_constraint c "
                "where c.conrelid = %s::regclass and c.contype = 'c'",
                [_regclass(schema, table)],
            )
        ]
        contracts.append(_contract(schema, table, columns, key, checks))
    return contracts


def _regclass(schema: str, table: str) -> str:
    """``"schema"."table"``, quoted for a ``::regclass`` cast."""
    return ".".join('"' + name.replace('"', '""') + '"' for name in (schema, table))


def _contract(
    schema: str, table: str, columns: list[tuple[Any, ...]], key: list[str], checks: list[str]
) -> dict[str, Any]:
    accepted: dict[str, list[str]] = {}
    bounds: dict[str, dict[str, int | float]] = {}
    for check in checks:
        m = _ACCEPTED.match(check)
        if m:
            accepted[m.group(1)] = re.findall(r"'((?:[^']|'')*)'", m.group(2))
            continue
        for name, op, value in _BOUND.findall(check):
            bounds.setdefault(name, {})["min" if op == ">=" else "max"] = _number(value)
    out_columns: list[dict[str, Any]] = []
    skipped = []
    for name, data_type, precision, scale, nullable, time_precision in columns:
        ctype = _type(data_type, precision, scale, time_precision)
        if ctype is None:
            skipped.append(f"{name} ({data_type})")
            continue
        column: dict[str, Any] = {"name": name, "type": ctype}
        if nullable == "NO":
            column["nullable"] = False
        pii = guess_pii(name, table)
        if pii:
            column["pii"] = pii
        if name in accepted:
            column["accepted_values"] = accepted[name]
        column.update(bounds.get(name, {}))
        out_columns.append(column)
    return {
        "table": table,
        "schema": schema,
        "primary_key": key,
        "columns": out_columns,
        "_skipped": skipped,
    }


def render(contract: dict[str, Any], source: str, *, by_capture: bool = False) -> str:
    """The contract as YAML, one column per line, as the project's contracts are written."""
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    by = "lakehouse capture" if by_capture else "lakehouse contracts infer"
    lines = [f"# Drafted by `{by}` from {source} on {when}."]
    if by_capture:
        lines += [
            "# Unreviewed: until `lakehouse contracts approve` (or you delete the line",
            "# `reviewed: false`), the lander masks every text column of the table. To",
            "# change it (the PII classes above all), edit it, or copy it into",
            "# contracts_dir: a contract there wins over this draft.",
        ]
    else:
        lines += [
            "# Review it, the PII classes above all, then delete the line `reviewed: false`:",
            "# until then the lander masks every text column of the table.",
        ]
    if not contract["primary_key"]:
        lines.append("# No primary key: CDC needs one (add it to the table, then infer again).")
    for skipped in contract["_skipped"]:
        lines.append(
            f"# No contract type for {skipped}: the lander keeps its values as Debezium "
            "sends them (arrays and composite values: dropped)."
        )
    lines += [
        f"table: {_scalar(contract['table'])}",
        f"schema: {_scalar(contract['schema'])}",
        "reviewed: false",
        f"primary_key: [{', '.join(_scalar(k) for k in contract['primary_key'])}]",
        "columns:",
    ]
    for column in contract["columns"]:
        flow = yaml.safe_dump(column, default_flow_style=True, sort_keys=False, width=1000)
        lines.append(f"  - {flow.strip()}")
    return "\n".join(lines) + "\n"


def _scalar(name: str) -> str:
    """A name as a YAML scalar: bare when YAML reads it back as that string (``client``),
    quoted otherwise (``"yes"``, ``"123"``, ``"a: b"``)."""
    try:
        plain = yaml.safe_load(f"[{name}]") == [name]
    except yaml.YAMLError:
        plain = False
    return name if plain else json.dumps(name, ensure_ascii=False)


def draft_captured(conn: psycopg.Connection, schema: str, table: str, out: Path) -> Contract:
    """Draft the contract of a captured table into ``out`` (``<lake name>.yml``), written
    atomically so that a lander reading the directory never sees half a file.

    Raises ContractError when the table cannot have one: it does not exist (any more), it
    has no primary key, or a key column has a type with no contract type.
    """
    draft = infer(conn, schema, [table])[0]
    where = f"{schema}.{table}"
    if not draft["primary_key"]:
        raise ContractError(
            f"table {where} has no primary key: its changes are not landed (give it one; "
            "capture then drafts its contract)"
        )
    typed = {c["name"] for c in draft["columns"]}
    untyped = [k for k in draft["primary_key"] if k not in typed]
    if untyped:
        raise ContractError(
            f"table {where}: primary key column(s) {untyped} have a type with no contract "
            "type; write its contract into contracts_dir by hand"
        )
    dbname = conn.info.dbname
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f".{schema}.{table}.yml.partial"
    with partial.open("w") as f:
        f.write(render(draft, f"database {dbname}", by_capture=True))
        f.flush()
        os.fsync(f.fileno())
    try:
        contract = load_contract(partial)
    except ContractError:
        partial.unlink()
        raise
    path = out / f"{contract.lake_name}.yml"
    if path.exists():  # another table's: public.a__b and a.b have the same lake name
        partial.unlink()
        raise ContractError(
            f"table {where} cannot be landed: its lake name {contract.lake_name!r} is "
            f"taken by {path}"
        )
    os.replace(partial, path)
    directory = os.open(out, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return replace(contract, path=path)


def source_tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Every ordinary table of the database outside the system schemas, as (schema,
    table): what Debezium captures when no table list is given."""
    rows = conn.execute(
        "select n.nspname, c.relname from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema') "
        "and n.nspname not like 'pg\\_toast%' and n.nspname not like 'pg\\_temp\\_%' "
        "order by 1, 2"
    ).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def write_drafts(
    conn: psycopg.Connection,
    out: Path,
    source: str,
    *,
    schema: str = "public",
    tables: list[str] | None = None,
    overwrite: bool = False,
    exclude: tuple[str, ...] = (),
) -> list[Draft]:
    out.mkdir(parents=True, exist_ok=True)
    drafts = []
    for contract in infer(conn, schema, tables, exclude):
        path = out / f"{contract['table']}.yml"
        if path.exists() and not overwrite:
            raise ContractError(f"{path} exists; pass --overwrite or choose another --out")
        path.write_text(render(contract, source))
        drafts.append(Draft(contract["table"], path, contract["_skipped"]))
    return drafts
