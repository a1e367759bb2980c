"""The `lakehouse sources` commands: the file and REST sources landed beside CDC
(`docs/sources.md`). Like every command group, it imports the package inside its
commands (see `lakehouse.cli.main`)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from lakehouse.cli.console import console, progress_bar
from lakehouse.cli.options import AsJson, DataDir, settings_for

app = typer.Typer(
    help="Files and REST APIs landed beside CDC, through the same contracts.",
    no_args_is_help=True,
)


@app.command("list")
def sources_list(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """The declared sources: their kind, table and where they are read."""
    from lakehouse.cdc.sources import load_sources

    settings = settings_for(data_dir)
    rows = [
        {
            "name": s.name,
            "kind": s.kind,
            "table": s.contract.lake_name,
            "reads": str(s.options.get("bucket_url") or s.options.get("base_url")),
        }
        for s in load_sources(settings)
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if not rows:
        console.print(f"no source declared in {escape(str(settings.sources_file))}")
    for row in rows:
        console.print(
            f"{escape(row['name'])}  {row['kind']}  -> {escape(row['table'])}  "
            f"({escape(row['reads'])})"
        )


@app.command("run")
def sources_run(
    data_dir: DataDir = None,
    source: Annotated[
        list[str] | None, typer.Option(help="only this source (repeat for more)")
    ] = None,
) -> None:
    """Land what is new in every declared source (or those named), then apply silver."""
    from lakehouse.cdc.sources import run_sources

    settings = settings_for(data_dir)
    with progress_bar() as progress:
        reports = run_sources(settings, names=source or None, progress=progress)
    print_sources(reports)


def print_sources(reports: list[Any]) -> None:
    if not reports:
        return
    from rich.table import Table

    table = Table(title="sources")
    for col in ("source", "table", "rows read", "landed", "duplicates", "dead letters", "rows"):
        table.add_column(col, justify="left" if col in ("source", "table") else "right")
    for r in reports:
        table.add_row(
            escape(r.name),
            escape(r.table),
            f"{r.rows:,}",
            f"{r.landed:,}",
            f"{r.duplicates:,}",
            f"[red]{r.rejected:,}" if r.rejected else "0",
            f"{r.applied.rows:,}" if r.applied else "",
        )
    console.print(table)
