"""dbt's sources of the lake (``_oltp__sources.yml``), made from the data contracts.

Every silver and bronze table is a contract's columns, in the lake's types, then the
lake's own columns; the contracts are the one copy of them. This module renders the
file; a test fails when the committed file differs from what it renders. After changing
a contract, regenerate it:

    .venv/bin/python -m lakehouse.transform.sources

Only the shipped contracts count (the drafts of a live capture are the user's own). The
sources beside CDC (files, REST APIs: ``lakehouse/contracts/sources``) get their own
file, ``_sources__sources.yml``, with their silver tables as the dbt source ``sources``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from lakehouse.cdc.decode import bronze_schema
from lakehouse.contracts import Contract, load_contracts
from lakehouse.lake.bronze import INGESTED_AT
from lakehouse.lake.silver import silver_schema
from lakehouse.settings import DBT_PROJECT_DIR, DEFAULT_CONTRACTS_DIR, PACKAGE_DIR

SOURCES_FILE = DBT_PROJECT_DIR / "models" / "staging" / "oltp" / "_oltp__sources.yml"
# the sources beside CDC: their contracts, and dbt's sources of their silver tables
SIDE_CONTRACTS_DIR = PACKAGE_DIR / "contracts" / "sources"
SIDE_SOURCES_FILE = DBT_PROJECT_DIR / "models" / "staging" / "sources" / "_sources__sources.yml"
# reference data: days without a change are normal, so silver's freshness SLA skips them
REFERENCE_TABLES = frozenset({"client", "product", "promotion", "transporter"})
_REFERENCE_REASON = "reference data: days without a change are normal"

_HEADER = """\
# Generated from the data contracts (lakehouse/contracts/oltp) by
# `python -m lakehouse.transform.sources`: change a contract, then run it; do not edit.
# Column types are the lake's (integers bigint, decimals of 38 digits).
version: 2

sources:
  - name: silver
    description: >-
      Current state of the OLTP tables: one row per primary key, deletes applied (Delta
      tables under <lake>/silver).
    schema: silver
    config:
      loaded_at_field: _source_ts
      # SLAs in minutes from the settings (run_dbt passes them as --vars)
      freshness:
        warn_after:
          count: "{{ var('freshness_warn_after_minutes') }}"
          period: minute
        error_after:
          count: "{{ var('freshness_error_after_minutes') }}"
          period: minute
    tables:
"""
_BRONZE = """\
  - name: bronze
    description: >-
      Append-only change log of the OLTP tables: one row per distinct change event (Delta
      tables under <lake>/bronze).
    schema: bronze
    config:
      loaded_at_field: _source_ts  # no freshness: silver's covers the same events
    tables:
"""


_SIDE_HEADER = """\
# Generated from the data contracts of the sources beside CDC (lakehouse/contracts/sources)
# by `python -m lakehouse.transform.sources`: change a contract, then run it; do not edit.
version: 2

sources:
  - name: sources
    description: >-
      Current state of the file and REST sources landed beside CDC (lakehouse/contracts/
      sources.yml): one row per primary key, the newest file or page wins (Delta tables
      under <lake>/silver).
    schema: silver
    config:
      loaded_at_field: _source_ts
      freshness: null  # files arrive when a supplier sends them: no schedule to hold
    tables:
"""


def sql_type(arrow: pa.DataType) -> str:
    """The SQL name of a lake column's Arrow type, as DuckDB and Trino read it."""
    if pa.types.is_decimal(arrow):
        return f"decimal({arrow.precision},{arrow.scale})"
    if pa.types.is_timestamp(arrow):
        precision = {"s": 0, "ms": 3, "us": 6, "ns": 9}[arrow.unit]
        zone = " with time zone" if arrow.tz else ""
        return f"timestamp({precision}){zone}"
    names = {
        pa.int64(): "bigint",
        pa.int32(): "integer",
        pa.float64(): "double",
        pa.bool_(): "boolean",
        pa.string(): "varchar",
        pa.date32(): "date",
    }
    if arrow not in names:
        raise ValueError(f"no SQL name for the lake type {arrow}")
    return names[arrow]


def lake_schemas(contract: Contract) -> dict[str, pa.Schema]:
    """The silver and bronze schemas of a contract's table, as the lander writes them."""
    bronze = bronze_schema(contract)
    return {
        "silver": silver_schema(contract, bronze),
        "bronze": bronze.append(INGESTED_AT),
    }


def render(contracts: Mapping[str, Contract]) -> str:
    """The text of ``_oltp__sources.yml`` for these contracts."""
    tables = sorted(contracts.values(), key=lambda c: c.lake_name)
    text = _HEADER
    for contract in tables:
        text += _table("silver", contract)
    text += _BRONZE
    for contract in tables:
        text += _table("bronze", contract)
    return text


def render_side(contracts: Mapping[str, Contract]) -> str:
    """The text of ``_sources__sources.yml``: the silver tables of the sources beside CDC."""
    text = _SIDE_HEADER
    for contract in sorted(contracts.values(), key=lambda c: c.lake_name):
        text += _table("silver", contract, reference=False)
    return text


def _table(layer: str, contract: Contract, *, reference: bool = True) -> str:
    name = contract.lake_name
    key = ", ".join(contract.primary_key)
    grain = (
        f"current state, one row per {key}"
        if layer == "silver"
        else f"change log, one row per change event of one {key}"
    )
    about = f"{contract.description}; {grain}" if contract.description else grain.capitalize()
    lines = [
        f"      - name: {name}",
        f'        description: "{about}."',
        "        config:",
    ]
    if reference and layer == "silver" and name in REFERENCE_TABLES:
        lines.append(f"          freshness: null  # {_REFERENCE_REASON}")
    lines += [
        "          meta:",
        "            plugin: delta",
        "            materialization: table",
        "            delta_table_path: \"{{ env_var('LAKEHOUSE_LAKE_URI', '../.lakehouse/lake') }}"
        f'/{layer}/{name}"',
        "        columns:",
    ]
    for field in lake_schemas(contract)[layer]:
        lines += [
            f"          - name: {field.name}",
            f"            description: \"{{{{ doc('{field.name}') }}}}\"",
            f"            data_type: {sql_type(field.type)}",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write _oltp__sources.yml from the contracts.")
    parser.add_argument("--contracts", type=Path, default=DEFAULT_CONTRACTS_DIR)
    parser.add_argument("--output", type=Path, default=SOURCES_FILE)
    args = parser.parse_args(argv)
    args.output.write_text(render(load_contracts(args.contracts)))
    print(f"wrote {args.output}")
    SIDE_SOURCES_FILE.parent.mkdir(parents=True, exist_ok=True)
    SIDE_SOURCES_FILE.write_text(render_side(load_contracts(SIDE_CONTRACTS_DIR)))
    print(f"wrote {SIDE_SOURCES_FILE}")


if __name__ == "__main__":
    main()
