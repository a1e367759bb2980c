"""Compare the lake with the generator's ground truth.

The truth holds the source's raw values; the lake holds PII columns as keyed hashes. The
expected tokens are computed here with the standard library, independently of the
lander's masking code."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.contracts import Contract, load_contracts
from lakehouse.lake.silver import read_current
from lakehouse.settings import Settings


def pii_key(settings: Settings) -> bytes:
    if settings.pii_key is not None:
        return settings.pii_key.get_secret_value().encode()
    return (settings.root / "secrets" / "pii.key").read_text().strip().encode()


def expected_token(key: bytes, value: str) -> str:
    return "pii:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


def masked_truth(settings: Settings, contract: Contract) -> pa.Table:
    truth = pq.read_table(settings.ground_truth_path / f"{contract.table}.parquet")
    key = pii_key(settings)
    for column in contract.columns:
        if column.pii:
            i = truth.column_names.index(column.name)
            values = [
                None if v is None else expected_token(key, v) for v in truth.column(i).to_pylist()
            ]
            truth = truth.set_column(i, truth.schema.field(i), pa.array(values, pa.string()))
    return truth


def assert_silver_equals(settings: Settings, expected: Callable[[Contract], pa.Table]) -> None:
    """Every silver table, sorted by key, equals ``expected(contract)``."""
    for table, contract in load_contracts(settings.contracts_dir).items():
        want = expected(contract)
        silver = read_current(
            settings.table_uri("silver", table), contract.primary_key, settings.lake_storage_options
        )
        assert silver is not None, table
        silver = silver.select(contract.column_names).sort_by(
            [(k, "ascending") for k in contract.primary_key]
        )
        assert silver.num_rows == want.num_rows, table
        assert silver.cast(want.schema).equals(want), f"silver {table} differs"


def assert_silver_equals_truth(settings: Settings) -> None:
    assert_silver_equals(settings, lambda contract: masked_truth(settings, contract))
