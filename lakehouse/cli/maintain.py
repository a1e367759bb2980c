"""`lakehouse maintain`: compact, checkpoint and vacuum the lake's tables, trim the landed
change events, and show what was done. `lakehouse.cli.main` registers it at the top level;
the package loads inside the command (deltalake: `lakehouse --help` stays fast)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lakehouse.cli.console import console, progress_bar
from lakehouse.cli.options import DataDir, settings_for

if TYPE_CHECKING:
    from lakehouse.pipeline.maintain import MaintenanceReport


def maintain(
    data_dir: DataDir = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show what is due and why; change nothing")
    ] = False,
    retention_hours: Annotated[
        int | None,
        typer.Option(
            help="vacuum files unused for longer than this (default: "
            "maintenance_retention_hours); refused below maintenance_min_retention_hours",
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="list the tables where nothing was due too")
    ] = False,
) -> None:
    """Compact small files, checkpoint and vacuum every lake table as its metrics say, and
    trim the change-event log and Kafka topics of what landed past its retention."""
    from lakehouse.pipeline.maintain import maintain as run

    settings = settings_for(data_dir, existing=True)
    with progress_bar() as progress:
        report = run(settings, dry_run=dry_run, retention_hours=retention_hours, progress=progress)
    print_maintenance(report, show_all=show_all)


def print_maintenance(report: MaintenanceReport, *, show_all: bool = False) -> None:
    rows = report.records if show_all else report.actions
    verb = "would do (dry run)" if report.dry_run else "did"
    table = Table(title=f"maintenance {verb}, retention {report.policy.retention_hours} h")
    for column, justify in (
        ("table", "left"),
        ("action", "left"),
        ("files", "right"),
        ("MB live", "right"),
        ("MB stored", "right"),
        ("version", "right"),
        ("seconds", "right"),
        ("why", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in rows:
        table.add_row(
            escape(f"{r.layer}.{r.table_name}"),
            r.action,
            _change(r.files_before, r.files_after, "{:,}"),
            _change(r.live_bytes_before / 2**20, r.live_bytes_after / 2**20, "{:,.1f}"),
            _change(r.disk_bytes_before / 2**20, r.disk_bytes_after / 2**20, "{:,.1f}"),
            _change(r.version_before, r.version_after, "{:,}"),
            f"{r.seconds:.2f}",
            escape(r.reason),
        )
    console.print(table)
    idle = len({(r.layer, r.table_name) for r in report.records if r.action == "none"})
    console.print(
        f"{len(report.actions):,} actions; nothing due on {idle:,} tables and logs; "
        f"{report.seconds:.1f} s"
        + ("" if report.dry_run else "; recorded in quality.table_maintenance")
    )


def _change(before: float, after: float, fmt: str) -> str:
    if before == after:
        return fmt.format(before)
    return f"{fmt.format(before)} → {fmt.format(after)}"
