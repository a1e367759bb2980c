"""The `lakehouse dlq` commands: the dead letters, listed and landed again. Like every
command group, it imports the package inside its commands (see `lakehouse.cli.main`)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape

from lakehouse.cli.console import console
from lakehouse.cli.options import AsJson, DataDir, settings_for

app = typer.Typer(
    help="The dead-letter table: events that could not be landed.", no_args_is_help=True
)


@app.command("list")
def dlq_list(
    data_dir: DataDir = None,
    topic: Annotated[str | None, typer.Option(help="only this topic")] = None,
    limit: Annotated[int, typer.Option(help="rows to show")] = 50,
    as_json: AsJson = False,
) -> None:
    """Dead letters with their topic, offset and reason."""
    from rich.table import Table

    from lakehouse.cdc.replay import dead_letters

    rows = dead_letters(settings_for(data_dir, existing=True), topic).to_pylist()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    table = Table(title=f"{len(rows):,} dead letters")
    for col in ("topic", "offset", "reason", "failed at"):
        table.add_column(col, justify="right" if col == "offset" else "left")
    for row in rows[:limit]:
        table.add_row(
            escape(row["topic"]), str(row["offset"]), escape(row["reason"]), str(row["failed_at"])
        )
    console.print(table)


@app.command("replay")
def dlq_replay(
    data_dir: DataDir = None,
    topic: Annotated[str | None, typer.Option(help="only this topic")] = None,
) -> None:
    """Land the dead letters again, after the contract or the data was fixed."""
    from lakehouse.cdc.replay import replay

    report = replay(settings_for(data_dir, existing=True), topic)
    for name in sorted(report.replayed.keys() | report.still_failing.keys()):
        console.print(
            f"{escape(name)}: [green]{report.replayed[name]:,} landed[/], "
            f"{report.still_failing[name]:,} still failing"
        )
    if not report.replayed and not report.still_failing:
        console.print("no dead letters")
