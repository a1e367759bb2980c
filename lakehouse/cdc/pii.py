"""Mask personal data before anything reaches the lake.

Every contract column with a ``pii`` class (name, email, phone, address, ...) is replaced
at landing by a keyed hash, ``pii:`` + the first 32 hex digits of HMAC-SHA256(key,
value). The same value always gives the same token, so joins and distinct counts still
work; without the key nobody can test a guess. A contract nobody reviewed (one capture
drafted, ``reviewed: false``) has every text column masked: guessing PII from column
names is a draft, never a decision.

Dead-letter rows keep the raw record with every string masked that is not a reviewed,
non-PII column of the contract or part of Debezium's envelope (columns added in the
source included); a line that is not even a JSON record keeps only its length and its
token (the change log has it at its topic offset for as long as it is kept).

The key comes from the ``pii_key`` setting; without one, a random key is created once in
``<data_dir>/secrets/pii.key`` (mode 0600). The lake records the key's fingerprint (a
keyed hash of a fixed label, never the key): a lander with another key refuses to run,
since its tokens would silently stop joining with the lake's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.contracts import Contract
from lakehouse.contracts.infer import guess_pii
from lakehouse.exceptions import ConfigError
from lakehouse.lake import delta

if TYPE_CHECKING:
    from lakehouse.settings import Settings

PREFIX = "pii:"
# A value that already is a token (a replay of a dead letter's masked copy) stays as it is.
_TOKEN = re.compile(r"pii:[0-9a-f]{32}")
# Where the lake records the fingerprint of the key its tokens were made with.
KEY_TABLE = ("_meta", "pii_key")
_FINGERPRINT_LABEL = b"lakehouse pii key fingerprint v1"
# Envelope fields of a Debezium record that hold no row values: kept in dead letters.
_ENVELOPE = frozenset({"op", "ts_ms", "ts_us", "ts_ns", "source", "transaction"})


def load_key(settings: Settings) -> bytes:
    if settings.pii_key is not None:
        return settings.pii_key.get_secret_value().encode()
    return settings.generated_secret("pii.key").encode()


def fingerprint(key: bytes) -> str:
    """A keyed hash of a fixed label: tells two keys apart, gives nothing of the key."""
    return hmac.new(key, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def checked_key(settings: Settings) -> bytes:
    """The PII key, once the lake says its tokens were made with it (a new lake records
    its fingerprint). Raises ConfigError for another key."""
    from deltalake import write_deltalake
    from deltalake.exceptions import DeltaError

    key = load_key(settings)
    mine = fingerprint(key)
    uri = settings.table_uri(*KEY_TABLE)
    options = settings.lake_storage_options
    recorded = recorded_fingerprint(settings)
    if recorded is None:
        row = pa.table(
            {
                "fingerprint": pa.array([mine], pa.string()),
                "recorded_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
            }
        )
        try:  # "error": of two landers starting on a new lake, one records, both compare
            write_deltalake(uri, row, mode="error", storage_options=options or None)
        except (DeltaError, OSError):
            recorded = recorded_fingerprint(settings)
            if recorded is None:
                raise
    if recorded is not None and recorded != mine:
        where = (
            "the pii_key setting"
            if settings.pii_key is not None
            else str(settings.root / "secrets" / "pii.key")
        )
        raise ConfigError(
            f"the PII key ({where}, fingerprint {mine}) is not the one the lake at "
            f"{settings.lake_root} was masked with (fingerprint {recorded}): its tokens would "
            "stop joining; use the original key, or land into a new lake (lake_uri)"
        )
    return key


def recorded_fingerprint(settings: Settings) -> str | None:

    table = delta.open_table(settings.table_uri(*KEY_TABLE), settings.lake_storage_options)
    if table is None:
        return None
    rows = table.to_pyarrow_table(columns=["fingerprint"]).column(0).to_pylist()
    return str(rows[0]) if rows else None


class Masker:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def token(self, value: Any) -> str:
        if isinstance(value, str) and _TOKEN.fullmatch(value):
            return value
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        digest = hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()
        return PREFIX + digest[:32]

    def mask_column(self, values: pa.Array) -> pa.Array:
        """Tokens for a string column: each distinct value is hashed once."""
        distinct = pc.unique(values).drop_null()
        tokens = pa.array([self.token(v) for v in distinct.to_pylist()], pa.string())
        return pc.take(tokens, pc.index_in(values, value_set=distinct))

    def mask_table(self, contract: Contract, table: pa.Table) -> pa.Table:
        """The contract's PII columns masked; every text column while it is unreviewed."""
        for column in contract.columns:
            if column.name not in table.column_names or not table.num_rows:
                continue
            i = table.column_names.index(column.name)
            kind = table.schema.field(i).type
            unreviewed_text = not contract.reviewed and _is_text(kind)
            if column.pii or unreviewed_text:
                masked = self.mask_column(table.column(i).combine_chunks().cast(pa.string()))
                table = table.set_column(i, column.name, masked)
        return table

    def mask_guessed(self, contract: Contract, table: pa.Table) -> pa.Table:
        """Columns the contract does not know (added in the source since) are masked
        when their name looks personal (email, phone, name, address, ...), or all of
        them when the contract is unreviewed."""

        known = set(contract.column_names)
        for i, name in enumerate(table.column_names):
            if name in known or name.startswith("_"):
                continue
            if contract.reviewed and not guess_pii(name, contract.table):
                continue
            column = table.column(i).combine_chunks()
            if _is_text(column.type) and table.num_rows:
                table = table.set_column(i, name, self.mask_column(column.cast(pa.string())))
        return table

    def mask_raw(self, contract: Contract, line: bytes) -> str:
        """The raw record for a dead letter, with every value that may be personal
        masked: the contract's PII columns, every other string of a row image except the
        reviewed contract's non-PII columns (so columns added in the source are masked),
        and anything outside Debezium's envelope. A line that is not a JSON record keeps
        only its length and token: nothing can tell which part of it is personal."""
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            token = self.token(line.decode("utf-8", "replace"))
            return f"<not a JSON record: {len(line)} bytes, {token}>"
        keep = {c.name for c in contract.columns if not c.pii} if contract.reviewed else set()
        masked: dict[str, Any] = {}
        for name, part in record.items():
            if name == "key":
                masked[name] = self._mask_image(part, keep)
            elif name == "value" and isinstance(part, dict):
                masked[name] = {
                    field: (
                        self._mask_image(inner, keep)
                        if field in ("before", "after")
                        else inner
                        if field in _ENVELOPE
                        else self._mask_any(inner)
                    )
                    for field, inner in part.items()
                }
            else:
                masked[name] = self._mask_any(part)
        return orjson.dumps(masked).decode()

    def _mask_image(self, image: Any, keep: set[str]) -> Any:
        """A row image: the kept columns as they are (unless nested), the rest masked."""
        if not isinstance(image, dict):
            return self._mask_any(image)
        return {
            name: value
            if name in keep and not isinstance(value, dict | list)
            else self._mask_column_value(value)
            for name, value in image.items()
        }

    def _mask_column_value(self, value: Any) -> Any:
        """A value of a column that may be personal: numbers too (a phone number can be
        one), booleans and nulls carry nothing."""
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, dict | list):
            return self._mask_any(value)
        return self.token(value)

    def _mask_any(self, value: Any) -> Any:
        """Every string and number of a JSON value, at any depth."""
        if isinstance(value, dict):
            return {k: self._mask_any(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._mask_any(v) for v in value]
        return self._mask_column_value(value)


def _is_text(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )
