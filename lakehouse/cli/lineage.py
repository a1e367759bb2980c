"""`lakehouse lineage <mart>`: where a published mart came from (docs/lineage.md). It
imports the package inside the command (see `lakehouse.cli.main`)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from lakehouse.cli.console import console
from lakehouse.cli.options import AsJson, DataDir, settings_for

if TYPE_CHECKING:
    from lakehouse.lineage.query import LakeInput, MartLineage


def lineage(
    mart: Annotated[str, typer.Argument(help="a published mart, e.g. mart_sales_daily")],
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Where a published mart came from: its build run, the dbt models, the lake tables
    at the Delta versions they read, and the source positions the lander landed in them."""
    from lakehouse.lineage.query import mart_lineage

    found = mart_lineage(settings_for(data_dir, existing=True), mart)
    if as_json:
        sys.stdout.write(json.dumps(found.to_dict(), indent=2) + "\n")
        return
    console.print(_tree(found))


def _tree(found: MartLineage) -> object:
    from rich.tree import Tree

    root = Tree(
        f"[bold]{escape(found.mart)}[/]: publication {escape(found.publication_id)} "
        f"({escape(found.outcome)}, {escape(found.published_at)})"
    )
    build = root.add(f"build run [bold]{escape(found.build_run)}[/]")
    models = build.add(f"{len(found.models)} dbt models")
    for model in found.models:
        models.add(
            f"{escape(model.model)} [dim]{escape(model.status)}[/] ← "
            + escape(
                ", ".join(
                    name.rsplit("/", 2)[-2] + "." + name.rsplit("/", 1)[-1] if "/" in name else name
                    for name in model.inputs
                )
            )
        )
    lake = build.add(f"{len(found.lake)} lake tables read")
    for item in found.lake:
        _lake_node(lake, item)
    return root


def _lake_node(parent: object, item: LakeInput) -> None:
    read = (
        f"version {item.version}"
        if item.version is not None
        else f"a version in {item.version_at_start}..{item.version_at_end}"
    )
    node = parent.add(  # type: ignore[attr-defined]
        f"[bold]{escape(item.layer)}.{escape(item.table)}[/] at {read} "
        f"[dim](read by {escape(', '.join(sorted(set(item.read_by))))})[/]"
    )
    if not item.lander_runs:
        node.add("[yellow]no lander run recorded up to this version[/]")
        return
    first, last = item.offsets or (0, 0)
    runs = node.add(
        f"{len(item.lander_runs)} lander runs, offsets {first:,}..{last:,} of "
        f"{escape(item.lander_runs[-1].topic)}"
    )
    for run in item.lander_runs[-5:]:
        runs.add(
            f"{escape(run.landed_at)}: offsets {run.first_offset:,}..{run.last_offset:,}, "
            f"commit positions {run.commit_pos[0]}..{run.commit_pos[1]}, "
            f"event positions {run.event_pos[0]}..{run.event_pos[1]} → bronze "
            f"v{run.bronze_version}, silver v{run.silver_version}"
        )
    if len(item.lander_runs) > 5:
        runs.add(f"[dim]... and {len(item.lander_runs) - 5} earlier (--json lists all)[/]")
