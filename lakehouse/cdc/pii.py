"""Mask personal data before anything reaches the lake.

Every contract column with a ``pii`` class (name, email, phone, address, ...) is replaced
at landing by a keyed hash, ``pii:`` + the first 32 hex digits of HMAC-SHA256(key,
value). The same value always gives the same token, so joins and distinct counts still
work; without the key nobody can test a guess. Dead-letter rows keep the raw record with
the same columns masked; a line of a table with PII columns that is not even JSON is not
copied at all (it stays in the change log at its topic offset).

The key comes from the ``pii_key`` setting; without one, a random key is created once in
``<data_dir>/secrets/pii.key`` (mode 0600). Losing it only means new tokens differ.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.contracts import Contract

if TYPE_CHECKING:
    from lakehouse.settings import Settings

PREFIX = "pii:"


def load_key(settings: Settings) -> bytes:
    if settings.pii_key is not None:
        return settings.pii_key.get_secret_value().encode()
    return settings.generated_secret("pii.key").encode()


class Masker:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def token(self, value: Any) -> str:
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:32]

    def mask_column(self, values: pa.Array) -> pa.Array:
        """Tokens for a string column: each distinct value is hashed once."""
        distinct = pc.unique(values).drop_null()
        tokens = pa.array([self.token(v) for v in distinct.to_pylist()], pa.string())
        return pc.take(tokens, pc.index_in(values, value_set=distinct))

    def mask_table(self, contract: Contract, table: pa.Table) -> pa.Table:
        for column in contract.columns:
            if column.pii and column.name in table.column_names and table.num_rows:
                i = table.column_names.index(column.name)
                masked = self.mask_column(table.column(i).combine_chunks().cast(pa.string()))
                table = table.set_column(i, column.name, masked)
        return table

    def mask_guessed(self, contract: Contract, table: pa.Table) -> pa.Table:
        """Columns the contract does not know (added in the source since) are masked
        when their name looks personal (email, phone, name, address, ...)."""
        from lakehouse.contracts.infer import guess_pii

        known = set(contract.column_names)
        for i, name in enumerate(table.column_names):
            if name in known or name.startswith("_") or not guess_pii(name, contract.table):
                continue
            column = table.column(i).combine_chunks()
            if pa.types.is_string(column.type) and table.num_rows:
                table = table.set_column(i, name, self.mask_column(column))
        return table

    def mask_raw(self, contract: Contract, line: bytes) -> str | None:
        """The raw record, with its PII fields masked when it has any. None when the
        table has PII columns and the line is not a JSON record: then nothing can tell
        which part of it is personal."""
        pii = {c.name for c in contract.columns if c.pii}
        if not pii:
            return line.decode("utf-8", "replace")
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(record, dict):
            return None
        images = [record.get("key")]
        value = record.get("value")
        if isinstance(value, dict):
            images += [value.get("before"), value.get("after")]
        masked = False
        for image in images:
            if isinstance(image, dict):
                for name in pii & image.keys():
                    if image[name] is not None:
                        image[name] = self.token(image[name])
                        masked = True
        return orjson.dumps(record).decode() if masked else line.decode("utf-8", "replace")
