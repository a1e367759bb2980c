"""The port's interface: a :class:`Warehouse` is one area of the marts on one engine.

An area is where a set of marts lives: ``build`` (what dbt builds, audited by the gate,
which readers never use) or ``published`` (what the gate served, where every reader looks).
Each engine names the schema of each area once, in :attr:`Warehouse.schemas`.

Results come back as Arrow tables with the engine's types (decimals as ``decimal128``,
timestamps as ``timestamp``), whatever the engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Literal

import pyarrow as pa

from lakehouse.exceptions import MissingTableError, PipelineError
from lakehouse.settings import Settings

Area = Literal["build", "published"]
Engine = Literal["duckdb", "trino"]
# what an area holds: the marts (BI's), or the feature tables (the ML jobs')
Section = Literal["marts", "features"]
AREAS: tuple[Area, ...] = ("build", "published")
SECTIONS: tuple[Section, ...] = ("marts", "features")
PUBLICATION = "_publication"  # the published area's table of what it serves
BUILD_COMMAND = "lakehouse build"  # what makes a missing mart, in either area


@dataclass(frozen=True)
class Publication:
    """What one publication served: the marts' row counts, and the runs behind them."""

    run_id: str
    published_at: datetime
    data_run_id: str | None  # the run whose data marts are served (None: none yet)
    rows: dict[str, int]  # mart -> rows
    features: dict[str, int] = field(default_factory=dict)  # feature table -> rows


class Warehouse(ABC):
    """One area of the marts on one engine. Use it as a context manager: the connection is
    opened on the first query and closed at the end of the block (a DuckDB build file must
    be free again for dbt)."""

    engine: ClassVar[Engine]
    schemas: ClassVar[Mapping[Area, str]]  # the schema of each area's marts, on this engine
    feature_schemas: ClassVar[Mapping[Area, str]]  # and of its feature tables

    def __init__(
        self,
        settings: Settings,
        area: Area,
        region: str | None = None,
        section: Section = "marts",
    ) -> None:
        if area not in AREAS:
            raise ValueError(f"not an area of the marts: {area!r} (one of {', '.join(AREAS)})")
        if section not in SECTIONS:
            raise ValueError(f"not a section: {section!r} (one of {', '.join(SECTIONS)})")
        if region is not None and (area != "published" or section != "marts"):
            raise ValueError("only the published marts are served per region")
        self.settings, self.area, self.region, self.section = settings, area, region, section

    @property
    def schema_name(self) -> str:
        """The area's schema, unqualified (``main_marts``, ``marts``, ``features``, ...)."""
        return (self.schemas if self.section == "marts" else self.feature_schemas)[self.area]

    @property
    @abstractmethod
    def schema(self) -> str:
        """The area's schema, qualified and quoted for this engine's SQL."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the area lives, for people: a file, or Trino's catalog and schema."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """The result of ``sql`` (``?`` placeholders for ``params``) as an Arrow table."""

    @abstractmethod
    def close(self) -> None: ...

    @classmethod
    @abstractmethod
    def publish(
        cls,
        settings: Settings,
        run_id: str,
        *,
        refresh: Collection[str] | None,
        required: Sequence[str],
        data_run_id: str | None,
    ) -> Publication:
        """Copy the build area's marts into the published area: see
        :func:`lakehouse.warehouse.publish`."""

    @classmethod
    @abstractmethod
    def expose_lake(cls, settings: Settings) -> None:
        """Make the lake's Delta tables visible to the engine dbt reads them with."""

    def qualified(self, mart: str) -> str:
        """The mart's name, qualified and quoted, to write in SQL for this area."""
        return f"{self.schema}.{quoted(mart)}"

    def marts(self) -> list[str]:
        """The tables of the area, sorted (none when nothing is built or published)."""
        if not self._available():
            return []
        found = self.query(
            f"select table_name from {self._information_schema()}.tables "
            "where table_schema = ? and table_type = 'BASE TABLE'",
            [self.schema_name],
        )
        return sorted(str(name) for name in found.column(0).to_pylist())

    def columns(self, mart: str) -> list[str]:
        """The mart's columns in order; :class:`MissingTableError` when it does not exist."""
        found = self._columns(mart)
        if not found:
            raise MissingTableError(
                f"no mart {self.qualified(mart)} in {self.location}: run `{BUILD_COMMAND}`"
            )
        return found

    def exists(self, mart: str) -> bool:
        return bool(self._columns(mart))

    def read_mart(self, mart: str, columns: Sequence[str] | None = None) -> pa.Table:
        """The mart whole, or only ``columns`` (each must exist: see :meth:`columns`)."""
        present = self.columns(mart)
        wanted = list(dict.fromkeys(columns)) if columns is not None else present
        unknown = [c for c in wanted if c not in present]
        if unknown:
            raise PipelineError(f"mart {self.qualified(mart)} has no column {', '.join(unknown)}")
        if not wanted:
            return pa.table({})
        return self.query(f"select {', '.join(map(quoted, wanted))} from {self.qualified(mart)}")

    def publication(self) -> Publication | None:
        """What the published area serves (None when nothing is published yet)."""
        if self.area != "published" or not self.exists(PUBLICATION):
            return None
        rows = self.read_mart(PUBLICATION).sort_by("mart").to_pylist()
        if not rows:
            return None
        first = rows[0]
        return Publication(
            run_id=str(first["run_id"]),
            published_at=first["published_at"],
            data_run_id=first["data_run_id"],
            rows={str(r["mart"]): int(r["row_count"]) for r in rows},
        )

    def _columns(self, mart: str) -> list[str]:
        if not self._available():
            return []
        found = self.query(
            f"select column_name from {self._information_schema()}.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [self.schema_name, mart],
        )
        return [str(name) for name in found.column(0).to_pylist()]

    def _available(self) -> bool:
        """Whether the area can hold anything yet (a DuckDB file may not exist)."""
        return True

    @abstractmethod
    def _information_schema(self) -> str: ...

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def quoted(name: str) -> str:
    """An identifier quoted for SQL (DuckDB and Trino alike)."""
    return '"' + name.replace('"', '""') + '"'


def sql_text(text: str) -> str:
    """``text`` for the inside of a SQL string literal."""
    return text.replace("'", "''")


def require_built(built: Sequence[str], required: Sequence[str]) -> None:
    """Refuse to publish when the build area lacks a mart that must be served."""
    missing = [name for name in required if name not in built]
    if missing:
        raise PipelineError(f"cannot publish: the build area has no {', '.join(missing)}")
