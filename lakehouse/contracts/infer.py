"""Draft data contracts from a live PostgreSQL database (``lakehouse contracts infer``).

Reads the catalog: columns and their types, NOT NULL, the primary key, and single-column
CHECK constraints of the forms ``col IN (...)``, ``col >= n`` and ``col <= n``. Guesses
the PII class from column names. The draft is a starting point: review it (above all the
PII classes) before the lander uses it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

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
}
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


def _type(data_type: str, precision: int | None, scale: int | None) -> str | None:
    if data_type == "numeric":
        return f"decimal({precision},{scale or 0})" if precision else None
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
    conn: psycopg.Connection, schema: str = "public", tables: list[str] | None = None
) -> list[dict[str, Any]]:
    """One contract (as a dict, the YAML's shape) per table of ``schema`` with a key."""
    names = tables or [
        r[0]
        for r in conn.execute(
            "select table_name from information_schema.tables "
            "where table_schema = %s and table_type = 'BASE TABLE' "
            "and table_name <> 'schema_migrations' order by 1",
            [schema],
        )
    ]
    contracts = []
    for table in names:
        columns = conn.execute(
            "select column_name, data_type, numeric_precision, numeric_scale, is_nullable "
            "from information_schema.columns where table_schema = %s and table_name = %s "
            "order by ordinal_position",
            [schema, table],
        ).fetchall()
        if not columns:
            raise ContractError(f"no table {schema}.{table} in the database")
        key = [
            r[0]
            for r in conn.execute(
                "select a.attname from pg_index i "
                "join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) "
                "where i.indrelid = %s::regclass and i.indisprimary "
                "order by array_position(i.indkey, a.attnum)",
                [f'"{schema}"."{table}"'],
            )
        ]
        checks = [
            r[0]
            for r in conn.execute(
                "select pg_get_constraintdef(c.oid) from pg_constraint c "
                "where c.conrelid = %s::regclass and c.contype = 'c'",
                [f'"{schema}"."{table}"'],
            )
        ]
        contracts.append(_contract(schema, table, columns, key, checks))
    return contracts


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
    for name, data_type, precision, scale, nullable in columns:
        ctype = _type(data_type, precision, scale)
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


def render(contract: dict[str, Any], source: str) -> str:
    """The contract as YAML, one column per line, as the project's contracts are written."""
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        f"# Drafted by `lakehouse contracts infer` from {source} on {when}.",
        "# Review it, the PII classes above all, before the lander uses it.",
    ]
    if not contract["primary_key"]:
        lines.append("# No primary key: CDC needs one (add it to the table, then infer again).")
    for skipped in contract["_skipped"]:
        lines.append(f"# Not captured (no contract type for it): {skipped}")
    lines += [
        f"table: {contract['table']}",
        f"schema: {contract['schema']}",
        f"primary_key: [{', '.join(contract['primary_key'])}]",
        "columns:",
    ]
    for column in contract["columns"]:
        flow = yaml.safe_dump(column, default_flow_style=True, sort_keys=False, width=1000)
        lines.append(f"  - {flow.strip()}")
    return "\n".join(lines) + "\n"


def write_drafts(
    conn: psycopg.Connection,
    out: Path,
    source: str,
    *,
    schema: str = "public",
    tables: list[str] | None = None,
    overwrite: bool = False,
) -> list[Draft]:
    out.mkdir(parents=True, exist_ok=True)
    drafts = []
    for contract in infer(conn, schema, tables):
        path = out / f"{contract['table']}.yml"
        if path.exists() and not overwrite:
            raise ContractError(f"{path} exists; pass --overwrite or choose another --out")
        path.write_text(render(contract, source))
        drafts.append(Draft(contract["table"], path, contract["_skipped"]))
    return drafts
