"""The `lakehouse features` commands: the feature store (Feast, `feature_repo/`) on the
published feature tables. Like every command group, it imports the package inside its
commands (Feast alone takes about 9 s to load)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from lakehouse.cli.console import console, progress_bar
from lakehouse.cli.options import DataDir, settings_for

app = typer.Typer(
    help="The feature store: export the published feature tables for Feast, apply the "
    "repository feature_repo/, materialize the online store.",
    no_args_is_help=True,
)

End = Annotated[
    datetime | None,
    typer.Option(help="materialize up to this time, UTC (default: now)"),
]


def _show(exported: dict[str, int]) -> None:
    table = Table("feature table", "rows", title="exported as Parquet")
    for name, rows in sorted(exported.items()):
        table.add_row(name, f"{rows:,}")
    console.print(table)


@app.command("export")
def features_export(data_dir: DataDir = None) -> None:
    """Write each published feature table as <data_dir>/features/<table>.parquet."""
    from lakehouse.features import export

    settings = settings_for(data_dir, existing=True)
    with progress_bar() as progress:
        exported = export(settings, progress)
    _show(exported)


@app.command("apply")
def features_apply(data_dir: DataDir = None) -> None:
    """Export the feature tables, then `feast apply` the repository with the settings."""
    from lakehouse.features import apply

    settings = settings_for(data_dir, existing=True)
    with progress_bar() as progress:
        exported = apply(settings, progress)
    _show(exported)
    console.print(f"[green]applied[/] feature_repo/ (registry in {settings.features_dir})")


Start = Annotated[
    datetime | None,
    typer.Option(
        help="load rows from this time, UTC (default: incremental, from the last run or, "
        "the first time, --end minus each view's TTL)"
    ),
]


def _utc(moment: datetime | None) -> datetime | None:
    from datetime import UTC

    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


@app.command("materialize")
def features_materialize(data_dir: DataDir = None, end: End = None, start: Start = None) -> None:
    """Export the feature tables, then `feast materialize-incremental` up to --end (or
    `feast materialize` from --start)."""
    from lakehouse.features import materialize

    settings = settings_for(data_dir, existing=True)
    with progress_bar() as progress:
        exported = materialize(settings, _utc(end), progress, start=_utc(start))
    _show(exported)
    online = "SQLite" if settings.profile == "local" else "Redis"
    console.print(f"[green]materialized[/] into the online store ({online})")
