"""The published marts' contract with their readers: the schema they are served in, and
the marts a region's readers may read (those that carry a ``region`` column).

One list, read from the dbt project (a mart whose documented columns include ``region``),
for every layer that scopes readers to a region: the per-region published DuckDB files on
``local`` and Trino's row filters on ``stack``. A mart without a region column (weekly
aggregates over every region, stock, data health) is not a region's to read at all.

It sits with the contracts, below every stage, because the publisher, Trino's access
rules and the consumers all read it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import yaml

from lakehouse.settings import DBT_PROJECT_DIR, REGION_NAME_PATTERN

PUBLISHED_SCHEMA = "marts"  # where readers find the audited marts, on both engines
# where the ML jobs find the audited feature tables (dbt's models/features), on both
# engines: beside the marts, never in a region's published file nor a region user's rules
PUBLISHED_FEATURES_SCHEMA = "features"
REGION_COLUMN = "region"
REGION_NAME = re.compile(REGION_NAME_PATTERN)


def region_marts(project_dir: Path = DBT_PROJECT_DIR) -> tuple[str, ...]:
    """The marts (dbt models under ``models/marts``) with a ``region`` column, sorted."""
    return _region_marts(project_dir.resolve())


@cache
def _region_marts(project_dir: Path) -> tuple[str, ...]:
    found: set[str] = set()
    for path in sorted((project_dir / "models" / "marts").rglob("*.yml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for model in doc.get("models") or []:
            columns = {str(c.get("name", "")).lower() for c in model.get("columns") or []}
            if REGION_COLUMN in columns:
                found.add(str(model["name"]))
    return tuple(sorted(found))


def region_filter(region: str) -> str:
    """The row filter of a region, as SQL (DuckDB and Trino alike)."""
    if not REGION_NAME.fullmatch(region):
        raise ValueError(f"not a region name: {region!r}")
    return f"{REGION_COLUMN} = '{region}'"
