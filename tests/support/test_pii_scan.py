"""The PII scanner finds a personal value in every form a file can hold it, and only
whole values: each case is planted, then the same file without it is clean."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.pii_scan import scan, searchable

EMAIL = "lea.martin.17@example.com"
PHONE = "+33 6 12 34 56 78"
NAME = "Yasmine"
VALUES = {EMAIL, PHONE, NAME}


def _parquet(path: Path, array: pa.Array, compression: str = "zstd") -> None:
    pq.write_table(pa.table({"c": array}), path, compression=compression)


@pytest.mark.parametrize(
    "array",
    [
        pa.array([EMAIL, "x"], pa.string()),
        pa.array([EMAIL, "x"], pa.large_string()),
        pa.array([EMAIL, "x"], pa.string_view()),
        pa.array([EMAIL, EMAIL, "x"]).dictionary_encode(),
        pa.array([f'{{"after": {{"email": "{EMAIL}"}}}}'], pa.string()),  # inside a text
        pa.array([{"inner": EMAIL}]),
        pa.array([[EMAIL]], pa.list_(pa.string_view())),
        pa.array([EMAIL.encode()], pa.binary()),
    ],
    ids=["string", "large", "view", "dictionary", "in-json", "struct", "list", "binary"],
)
def test_parquet_values_are_found_in_every_string_type(tmp_path: Path, array: pa.Array) -> None:
    _parquet(tmp_path / "part-0.parquet", array)
    report = scan(tmp_path, VALUES)
    assert report.found == {str(tmp_path / "part-0.parquet"): {EMAIL}}
    assert report.parquet_files == 1 and report.strings >= 1


def test_values_hidden_from_a_byte_search_are_decoded(tmp_path: Path) -> None:
    """Prefix-compressed strings: the file's bytes never hold the whole value."""
    path = tmp_path / "part-0.parquet"
    neighbour = EMAIL.replace("17@", "16@")
    pq.write_table(
        pa.table({"c": pa.array([neighbour, EMAIL], pa.string_view())}),
        path,
        use_dictionary=False,
        column_encoding={"c": "DELTA_BYTE_ARRAY"},
        compression="none",
        write_statistics=False,
    )
    assert EMAIL.encode() not in path.read_bytes()
    assert scan(tmp_path, VALUES).found == {str(path): {EMAIL}}


def test_duckdb_files_text_and_clean_files(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("create schema marts")
        con.execute("create table marts.t as select ? as who, 1 as n", [PHONE])
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run.log").write_text(f"client {NAME} ordered\n")
    (tmp_path / "oltp").mkdir()  # the source's own store: not searched
    (tmp_path / "oltp" / "dump.sql").write_text(EMAIL)
    (tmp_path / "clean.json").write_text(
        '{"email": "pii:0123456789abcdef0123456789abcdef", "name": "Yasmines"}'
    )
    report = scan(tmp_path, VALUES)
    assert report.found == {
        str(tmp_path / "warehouse.duckdb"): {PHONE},
        str(tmp_path / "logs" / "run.log"): {NAME},
    }
    assert report.duckdb_files == 1 and report.files == 3 and report.values == 3


def test_every_value_must_be_searchable() -> None:
    assert all(searchable(v) for v in VALUES)
    assert not searchable("two words")
    with pytest.raises(AssertionError, match="cannot find"):
        scan(Path("/nonexistent"), {"two words"})
