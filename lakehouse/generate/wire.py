"""Values as Debezium's JSON carries them (and the demo business keeps them) <-> Python.

``decimal`` is a string, ``timestamp`` microseconds since the epoch, ``timestamptz`` an
ISO-8601 string in UTC, ``date`` days since the epoch (see lakehouse/contracts)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

_EPOCH = datetime(1970, 1, 1)
_EPOCH_DAY = date(1970, 1, 1)
_US = timedelta(microseconds=1)


def to_python(ctype: str, value: Any) -> Any:
    """A wire value of a contract type -> the Python value (Decimal, datetime, date)."""
    if value is None:
        return None
    if ctype.startswith("decimal"):
        return Decimal(value)
    if ctype == "timestamp":
        return _EPOCH + value * _US
    if ctype == "timestamptz":
        return datetime.fromisoformat(value)
    if ctype == "date":
        return _EPOCH_DAY + timedelta(days=value)
    return value


def to_wire(ctype: str, value: Any) -> Any:
    """A Python value (as a database driver returns it) -> its wire form."""
    if value is None:
        return None
    if ctype.startswith("decimal"):
        return str(value)
    if ctype == "timestamp":
        return (value - _EPOCH) // _US
    if ctype == "timestamptz":
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if ctype == "date":
        return (value - _EPOCH_DAY).days
    return value
