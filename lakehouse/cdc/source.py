"""What the lander reads change events from: recorded files or Kafka topics.

Both sources share one layout (see docs/change-events.md): a topic per source table, a
record per offset, offsets increasing by one inside a batch. The lander's Delta app
transactions, not the source, say which offsets have landed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from lakehouse.cdc.file_source import RawBatch


class ChangeSource(Protocol):
    """Topics of Debezium change records, read from an offset on."""

    def topics(self) -> list[str]:
        """Names of the topics that hold change records, sorted."""
        ...

    def end_offset(self, topic: str) -> int:
        """Offset one past the last record of ``topic`` at the time of the call."""
        ...

    def read(self, topic: str, start: int, batch_size: int) -> Iterator[RawBatch]:
        """Records of ``topic`` from offset ``start`` up to the end at the time of the
        call, in batches of at most ``batch_size`` with contiguous offsets."""
        ...

    def committed(self, topic: str, last_offset: int) -> None:
        """Called after the Delta commit that holds ``last_offset`` of ``topic``."""
        ...
