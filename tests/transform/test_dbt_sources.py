"""dbt's lake sources (``_oltp__sources.yml``) are the data contracts' columns, in the
lake's types: one copy of every column, kept by ``python -m lakehouse.transform.sources``.
Checked against the contracts and the lake's own schemas, not against the renderer alone,
and shown to fail on a contract that has moved on."""

from __future__ import annotations

from dataclasses import replace

import yaml

from lakehouse.cdc.decode import META_FIELDS
from lakehouse.contracts import Column, load_contracts
from lakehouse.lake.silver import SILVER_META
from lakehouse.settings import DEFAULT_CONTRACTS_DIR
from lakehouse.transform.sources import (
    SIDE_CONTRACTS_DIR,
    SIDE_SOURCES_FILE,
    SOURCES_FILE,
    render,
    render_side,
)

REGENERATE = "run `.venv/bin/python -m lakehouse.transform.sources`"


def _columns(text: str) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(source, table) -> [(column, data_type)] of a sources file."""
    return {
        (source["name"], table["name"]): [(c["name"], c["data_type"]) for c in table["columns"]]
        for source in yaml.safe_load(text)["sources"]
        for table in source["tables"]
    }


def test_the_sources_file_is_what_the_contracts_make() -> None:
    rendered = render(load_contracts(DEFAULT_CONTRACTS_DIR))
    assert SOURCES_FILE.read_text() == rendered, f"_oltp__sources.yml is stale: {REGENERATE}"


def test_every_contract_column_is_a_source_column_in_the_lake_type() -> None:
    contracts = load_contracts(DEFAULT_CONTRACTS_DIR)
    sources = _columns(SOURCES_FILE.read_text())
    assert set(sources) == {(layer, t) for layer in ("silver", "bronze") for t in contracts}
    meta = {f.name for f in META_FIELDS} | {"_ingested_at"}
    for name, contract in contracts.items():
        for layer in ("silver", "bronze"):
            columns = dict(sources[layer, name])
            data = [c for c in columns if c not in meta]
            assert data == contract.column_names, (layer, name)
            for column in contract.columns:
                declared = column.type
                lake = columns[column.name]
                if declared.startswith("decimal"):  # 38 digits in the lake, the declared scale
                    assert lake == f"decimal(38,{declared.split(',')[1]}", (name, column.name)
                elif declared in ("smallint", "int", "bigint"):
                    assert lake == "bigint", (name, column.name)
        assert [c for c in dict(sources["silver", name]) if c in meta] == SILVER_META


def test_a_contract_that_moved_on_shows_as_drift() -> None:
    contracts = load_contracts(DEFAULT_CONTRACTS_DIR)
    product = contracts["product"]
    wider = Column(name="weight_kg", type="decimal(8,3)")
    contracts["product"] = replace(product, columns=(*product.columns, wider))
    drifted = _columns(render(contracts))
    committed = _columns(SOURCES_FILE.read_text())
    assert ("weight_kg", "decimal(38,3)") in drifted["silver", "product"]
    assert drifted != committed


def test_the_side_sources_file_is_what_their_contracts_make() -> None:
    """The sources beside CDC (files, REST APIs) have their silver tables in
    ``_sources__sources.yml``, their contracts' columns in the lake's types."""
    contracts = load_contracts(SIDE_CONTRACTS_DIR)
    assert SIDE_SOURCES_FILE.read_text() == render_side(contracts), (
        f"_sources__sources.yml is stale: {REGENERATE}"
    )
    sources = _columns(SIDE_SOURCES_FILE.read_text())
    assert set(sources) == {("sources", t) for t in contracts}
    for name, contract in contracts.items():
        data = [c for c, _ in sources["sources", name] if not c.startswith("_")]
        assert data == contract.column_names
