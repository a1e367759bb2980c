"""The expectation suites of the quality gate, before anything runs them.

* ``bronze.<table>`` and ``silver.<table>`` are generated from the data contracts at each
  run, in memory (:func:`contract_suite`): columns exist with a compatible type, not-null
  (in bronze, not on the rows of deletes, which may carry only the key), accepted values
  (warn-level: see ``_NEW_VALUE``), min/max, PII columns hold tokens, bronze's ``_op``;
  silver adds the primary key, unique and not null, and foreign-key coverage (every
  non-null value of a ``references`` column exists in the referenced silver table).
* Business rules are written by hand as GX suite JSON under ``expectations/`` (see its
  README; :func:`rule_suites` checks them when loaded): the rules on a table's own rows
  and columns. A rule that needs another table (a sale against its order lines, a line
  against the catalogue) is a dbt test.

:mod:`lakehouse.quality.expectations` runs them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import great_expectations as gx
import pyarrow as pa
from great_expectations.expectations.expectation import Expectation
from great_expectations.expectations.metadata_types import FailureSeverity
from great_expectations.expectations.row_conditions import Column as RowColumn

from lakehouse.contracts import DEFAULT_SCHEMAS, Column, Contract
from lakehouse.exceptions import ContractError
from lakehouse.quality import Layer
from lakehouse.settings import PROJECT_DIR

LAYERS: tuple[Layer, ...] = ("bronze", "silver", "marts")
RULES_DIR = PROJECT_DIR / "expectations"
OPS = ["c", "u", "d", "r", "t"]  # create, update, delete, snapshot read, truncate
PII_TOKEN = r"^pii:[0-9a-f]{32}$"  # lakehouse.cdc.pii's keyed hash
ORPHAN = "__orphan"  # suffix of the derived column holding a foreign key's orphan values
_GX_SEVERITY: dict[str, FailureSeverity] = {
    "error": FailureSeverity.CRITICAL,
    "warn": FailureSeverity.WARNING,
}
# pandas types (as GX names them) that frames.py gives a column of each contract type
_INTEGER = ["Int64Dtype", "int64", "int32"]
_FLOAT = ["float64"]
_STRING = ["StringDtype", "str"]
_TYPE_LISTS: dict[str, list[str]] = {
    "smallint": _INTEGER,
    "int": _INTEGER,
    "bigint": _INTEGER,
    "double": _FLOAT,
    "boolean": ["BooleanDtype", "bool"],
    "string": _STRING,
    "json": _STRING,
    "uuid": _STRING,
    "date": ["datetime64[ms]", "datetime64[s]", "datetime64[us]", "datetime64[ns]"],
    "timestamp": ["datetime64[us]", "datetime64[ms]", "datetime64[ns]"],
    "timestamp_ms": ["datetime64[ms]", "datetime64[us]", "datetime64[ns]"],
    "timestamptz": ["datetime64[us]", "datetime64[ms]", "datetime64[ns]"],
}
_NEW_VALUE = (
    "a value outside the contract's list is the source's domain growing before its "
    "contract did (a new segment, a new payment method): update the contract; the dbt "
    "staging tests decide which columns block"
)


# -- suites generated from the contracts ------------------------------------------------------


def contract_suite(layer: Literal["bronze", "silver"], contract: Contract) -> gx.ExpectationSuite:
    """The generated suite ``<layer>.<lake name>`` of a contract."""
    expectations: list[Expectation] = []
    for column in contract.columns:
        expectations += _column_expectations(layer, contract, column)
    if layer == "bronze":
        expectations += [
            _error(gx.expectations.ExpectColumnToExist(column="_op")),
            _error(gx.expectations.ExpectColumnValuesToNotBeNull(column="_op")),
            _error(gx.expectations.ExpectColumnValuesToBeInSet(column="_op", value_set=OPS)),
        ]
    else:
        key = list(contract.primary_key)
        if len(key) == 1:
            unique: Expectation = gx.expectations.ExpectColumnValuesToBeUnique(column=key[0])
        else:
            unique = gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=key)
        expectations.append(_error(unique, rule="one row per primary key"))
        for column in contract.columns:
            if column.references:
                expectations.append(_foreign_key(contract, column))
    where = contract.path.name if contract.path else contract.lake_name
    return gx.ExpectationSuite(
        name=f"{layer}.{contract.lake_name}",
        expectations=expectations,
        meta={"layer": layer, "table": contract.lake_name, "generated_from": where},
        notes=f"Generated from the data contract {where} at each run: change the contract.",
    )


def _column_expectations(layer: str, contract: Contract, column: Column) -> list[Expectation]:
    name = column.name
    is_key = name in contract.primary_key
    out: list[Expectation] = [
        _error(gx.expectations.ExpectColumnToExist(column=name)),
        _error(
            gx.expectations.ExpectColumnValuesToBeInTypeList(
                column=name, type_list=_type_list(column)
            )
        ),
    ]
    if is_key or not column.nullable:
        if layer == "bronze" and not is_key:
            # a delete may carry only the key
            not_null = gx.expectations.ExpectColumnValuesToNotBeNull(
                column=name, row_condition=RowColumn("_op") != "d"
            )
        else:
            not_null = gx.expectations.ExpectColumnValuesToNotBeNull(column=name)
        out.append(_error(not_null))
    masked = _masked(contract, column)
    if column.accepted_values and not masked:
        in_set = gx.expectations.ExpectColumnValuesToBeInSet(
            column=name, value_set=list(column.accepted_values)
        )
        out.append(_warn(in_set, reason=_NEW_VALUE))
    if column.min is not None or column.max is not None:
        out.append(
            _error(
                gx.expectations.ExpectColumnValuesToBeBetween(
                    column=name, min_value=column.min, max_value=column.max
                )
            )
        )
    if masked:
        out.append(
            _error(
                gx.expectations.ExpectColumnValuesToMatchRegex(column=name, regex=PII_TOKEN),
                rule=f"PII ({column.pii or 'unreviewed contract'}) lands masked",
            )
        )
    return out


def _masked(contract: Contract, column: Column) -> bool:
    """The lander masks it: a PII column, or any text column of an unreviewed contract."""
    return bool(column.pii) or (not contract.reviewed and column.arrow_type == pa.string())


def _type_list(column: Column) -> list[str]:
    if column.pii:  # masked: a token string whatever the source type
        return _STRING
    if column.type.startswith("decimal"):
        return _FLOAT
    return _TYPE_LISTS[column.type]


def _foreign_key(contract: Contract, column: Column) -> Expectation:
    table, key = referenced(contract, column)
    return _error(
        # the frame holds each value of the column that the referenced table lacks (all
        # of them when that table is missing: its own suite then says so)
        gx.expectations.ExpectColumnValuesToBeNull(column=column.name + ORPHAN),
        rule=f"every {column.name} exists in {table}.{key}",
        references=f"{table}.{key}",
    )


def referenced(contract: Contract, column: Column) -> tuple[str, str]:
    """(lake name, column) that a foreign key column references."""
    if not column.references:
        raise ValueError(f"{contract.lake_name}.{column.name} is not a foreign key")
    parts = column.references.split(".")
    schema, table, key = parts if len(parts) == 3 else (contract.schema, *parts)
    return (table if schema in DEFAULT_SCHEMAS else f"{schema}__{table}"), key


def _error(expectation: Expectation, **meta: str) -> Expectation:
    expectation.meta = {"severity": "error", **meta}
    return expectation


def _warn(expectation: Expectation, **meta: str) -> Expectation:
    expectation.meta = {"severity": "warn", **meta}
    expectation.severity = FailureSeverity.WARNING
    return expectation


# -- hand-written suites ----------------------------------------------------------------------


def rule_suites(directory: Path = RULES_DIR) -> list[gx.ExpectationSuite]:
    """The hand-written suites (``<layer>/<table>[.rules].json``), checked: a malformed
    expectation is an error here, where GX would only log it and leave it out."""
    suites = []
    for path in sorted(directory.glob("*/*.json")):
        layer, stem = path.parent.name, path.name.removesuffix(".json")
        try:
            raw = json.loads(path.read_text())
            table = stem.removesuffix(".rules")
            wanted = {"layer": layer, "table": table}
            if (
                layer not in LAYERS
                or raw["name"] != f"{layer}.{stem}"
                or any(raw["meta"].get(k) != v for k, v in wanted.items())
            ):
                raise ValueError(
                    f"a suite of {layer}/{stem}.json is named {layer}.{stem}, its meta "
                    f"holds {wanted}, and the folder is one of {', '.join(LAYERS)}"
                )
            for spec in raw["expectations"]:
                severity = spec.setdefault("meta", {}).setdefault("severity", "error")
                if severity not in _GX_SEVERITY:
                    raise ValueError(f"severity {severity!r}: use 'error' or 'warn'")
                spec["severity"] = _GX_SEVERITY[severity].value
            suite = gx.ExpectationSuite(**raw)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ContractError(f"expectation suite {path}: {exc}") from None
        if len(suite.expectations) != len(raw["expectations"]):
            raise ContractError(f"expectation suite {path}: an expectation is malformed")
        suites.append(suite)
    return suites
