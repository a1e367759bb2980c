"""Look for the source's personal values in every file of a data directory.

The values come from the generator itself: every version of every row it ever made,
before the snapshot, updated away or erased included (``recording_personal_values``),
not only the final state the ground truth keeps. Every file is read:

* Parquet files (Delta data files and checkpoints, whatever their name) are decoded with
  pyarrow, every string column at any depth: ``string``, ``large_string``,
  ``string_view``, dictionaries of them, and binary ones read as UTF-8, since compressed
  or dictionary-encoded pages do not show their values as bytes;
* DuckDB files are opened read-only and every text column of every table is read;
* every file, those included, is also searched as bytes (JSON logs, SQLite, HTML).

Values are matched as whole tokens (an e-mail, a phone number, a name as a word), which
is fast on hundreds of megabytes and never matches inside a longer word. What is not
searched: the source's own stores, ``oltp/`` (the operational database) and
``ground_truth/`` (the generator's copy of the source's final state, which the
reconciliation reads in place of the source).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lakehouse.contracts import Contract
from lakehouse.generate import GenerateParams

SOURCE_STORES = ("oltp", "ground_truth")
# an e-mail, an international phone number, a word (names): what the values look like
# An e-mail is only tried where a run of its characters starts (the look-behind): tried
# at every position of a long run with no "@" (a hash, a binary page), Python's
# backtracking matcher is quadratic in the run's length, and a warehouse file took
# minutes. An e-mail inside a run is found from the run's start too, so the tokens are
# the same (on the demo's published warehouse: 95,806 alike), but for an e-mail glued to
# the end of a phone number.
_TOKEN = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\+\d+(?: \d+)+|[^\W\d_]+")
# _TOKEN in RE2 (linear time: no look-behind needed, nor available)
_TOKEN_SQL = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\+\d+(?: \d+)+|\pL+"
_TOKEN_BYTES = re.compile(rb"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\+\d+(?: \d+)+|[A-Za-z]+")
_DUCKDB_MAGIC = b"DUCK"
_PARQUET_MAGIC = b"PAR1"


@dataclass
class ScanReport:
    values: int = 0  # personal values looked for
    files: int = 0  # files read as bytes
    parquet_files: int = 0
    duckdb_files: int = 0
    strings: int = 0  # string values decoded from Parquet and DuckDB
    found: dict[str, set[str]] = field(default_factory=dict)  # file -> values in it

    def add(self, path: Path, values: Iterable[str]) -> None:
        hits = set(values)
        if hits:
            self.found.setdefault(str(path), set()).update(hits)


def searchable(value: str) -> bool:
    """A value the token matcher finds: it is one whole token of itself."""
    return value in _TOKEN.findall(value)


MIN_WORD = 4


def scan(root: Path, values: set[str], *, skip: tuple[str, ...] = SOURCE_STORES) -> ScanReport:
    """Every file under ``root`` (but the ``skip`` directories) searched for ``values``."""
    unsearchable = sorted(v for v in values if not searchable(v))
    assert not unsearchable, f"the scanner cannot find these values: {unsearchable[:5]}"
    encoded = {v.encode() for v in values}
    long_values = {v for v in encoded if not v.isalpha()}  # e-mails, phone numbers
    # in code and prose (a docs site's script, a log) a word of three letters turns up by
    # chance ("Lea" in dbt's docs app): there, names count from four letters; decoded
    # cells of the lake and the warehouses are still matched on every value
    words = {v for v in encoded if len(v) >= MIN_WORD}
    report = ScanReport(values=len(values))
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).parts
        if not path.is_file() or path.is_symlink() or relative[0] in skip:
            continue
        data = path.read_bytes()
        report.files += 1
        decodable = data[:4] == _PARQUET_MAGIC or data[8:12] == _DUCKDB_MAGIC
        # in compressed pages a short word turns up by chance: those files are decoded
        looked_for = long_values if decodable else words
        report.add(path, (t.decode() for t in set(_TOKEN_BYTES.findall(data)) & looked_for))
        if data[:4] == _PARQUET_MAGIC and data[-4:] == _PARQUET_MAGIC:
            report.parquet_files += 1
            count, strings = _parquet_strings(path)
            report.strings += count
            report.add(path, _matches(strings, values))
        elif data[8:12] == _DUCKDB_MAGIC:
            report.duckdb_files += 1
            count, tokens = _duckdb_tokens(path)
            report.strings += count
            report.add(path, tokens & values)
    return report


def _matches(strings: Iterable[str], values: set[str]) -> set[str]:
    tokens: set[str] = set()
    for text in strings:
        tokens.update(_TOKEN.findall(text))
    return tokens & values


def _parquet_strings(path: Path) -> tuple[int, set[str]]:
    """How many strings the file holds, and the distinct ones: a lake file repeats most
    of its strings (a status, a category, a hash), and only distinct ones need cutting
    into tokens in Python."""
    table = pq.read_table(path)
    count, out = 0, set()
    for column in table.columns:
        for array in _string_leaves(column.combine_chunks()):
            count += len(array) - array.null_count
            out.update(v for v in pc.unique(array).to_pylist() if v is not None)
    return count, out


def _string_leaves(array: pa.Array) -> Iterator[pa.Array]:
    """Every string column inside ``array``, nested ones included, as plain strings."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        yield from _string_leaves(array.dictionary_decode())
    elif pa.types.is_struct(kind):
        for i in range(kind.num_fields):
            yield from _string_leaves(array.field(i))
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_list_view(kind):
        yield from _string_leaves(array.flatten())
    elif pa.types.is_map(kind):
        yield from _string_leaves(array.keys)
        yield from _string_leaves(array.items)
    elif pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
        yield array.cast(pa.string())
    elif pa.types.is_string(kind):
        yield array
    elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or _is_binary_view(kind):
        texts = [None if b is None else b.decode("utf-8", "replace") for b in array.to_pylist()]
        yield pa.array(texts, pa.string())


def _is_binary_view(kind: pa.DataType) -> bool:
    return bool(pa.types.is_binary_view(kind))


def _duckdb_tokens(path: Path) -> tuple[int, set[str]]:
    """The values of every text column of every table in a DuckDB file, and the distinct
    tokens in them. DuckDB cuts the tokens out itself (RE2, the same pattern as
    :data:`_TOKEN`, ``\\pL`` for a letter): a warehouse holds millions of strings, which
    fetched into Python one by one took minutes."""
    import duckdb

    count, tokens = 0, set()
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.sql(
            "select table_catalog, table_schema, table_name, column_name "
            "from information_schema.columns where data_type in ('VARCHAR', 'BLOB', 'JSON') "
            "or data_type like '%VARCHAR%' or data_type like 'STRUCT%' or data_type like 'MAP%'"
        ).fetchall()
        for catalog, schema, table, column in columns:
            source = f'"{catalog}"."{schema}"."{table}"'
            text = f'cast("{column}" as varchar)'
            found = con.execute(
                f'select count(*) from {source} where "{column}" is not null'
            ).fetchone()
            count += int(found[0]) if found else 0
            rows = con.execute(
                f"select distinct unnest(regexp_extract_all({text}, ?)) from {source} "
                f'where "{column}" is not null',
                [_TOKEN_SQL],
            ).fetchall()
            tokens.update(str(r[0]) for r in rows)
    return count, tokens


@contextmanager
def recording_personal_values(contracts: dict[str, Contract]) -> Iterator[set[str]]:
    """Collect the values of every PII column of every row version the generator makes
    while the context is open (before the snapshot, updated away or erased included)."""
    from lakehouse.generate.debezium import Recorder, Transaction

    values: set[str] = set()
    pii = {
        c.table: [col.name for col in c.columns if col.pii]
        for c in contracts.values()
        if any(col.pii for col in c.columns)
    }

    def keep(table: str, row: dict[str, Any] | None) -> None:
        if row is not None:
            values.update(str(row[name]) for name in pii.get(table, ()) if row[name])

    commit, snapshot = Recorder.commit, Recorder.snapshot

    def recording_commit(self: Recorder, tx: Transaction) -> None:
        for change in tx.changes:
            keep(change.table, change.before)
            keep(change.table, change.after)
        commit(self, tx)

    def recording_snapshot(self: Recorder, tables: dict[str, list[Any]], ts_us: int) -> None:
        for table, rows in tables.items():
            for row in rows:
                keep(table, row)
        snapshot(self, tables, ts_us)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Recorder, "commit", recording_commit)
        patch.setattr(Recorder, "snapshot", recording_snapshot)
        yield values


def personal_values_of(params: GenerateParams, contracts_dir: Path, scratch: Path) -> set[str]:
    """Every personal value a generated shop ever held: the generator run again with the
    same parameters (it is deterministic) in ``scratch``, which is removed after."""
    from lakehouse.contracts import load_contracts
    from lakehouse.generate import generate
    from lakehouse.settings import load_settings

    settings = load_settings(data_dir=scratch, contracts_dir=contracts_dir)
    try:
        with recording_personal_values(load_contracts(contracts_dir)) as values:
            generate(settings, params)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return values


def params_of(manifest: dict[str, Any]) -> GenerateParams:
    """The generator's parameters as ``changes/manifest.json`` records them."""
    values = {k: v for k, v in manifest["params"].items() if k != "format"}
    values["start_date"] = date.fromisoformat(values["start_date"])
    return GenerateParams(**values)
